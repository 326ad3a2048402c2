/**
 * The distillation recipes as lists of stages, with presets from method.md scaled to small models.
 *
 * | recipe   | stages (what trains)                                                                |
 * | -------- | ----------------------------------------------------------------------------------- |
 * | mohawk   | 1 matrix orientation, 2 hidden-state alignment (mixers only), 3 end-to-end KD (all) |
 * | stepwise | one stage per converted layer, MambaInLlama's order: CE + 0.1·KL (mixers only)     |
 * | kd       | end-to-end KD, CE + KL (all parameters)                                             |
 * | sft      | end-to-end next-token CE (all parameters)                                           |
 * | dpo      | DPO against the frozen starting student (all parameters)                            |
 *
 * Scaling: the reference recipes train 1B–8B models on billions of tokens with learning rates of
 * 8e-5 (stage 1) and 2e-5 (SFT/KD). For the 6M-parameter bundled teacher and budgets of a few
 * million tokens those rates barely move the weights, so the presets keep the reference's optimiser
 * shape (Adam β = (0.9, 0.98), cosine with warmup, the loss weights and reductions) and use learning
 * rates sized for small models. MOHAWK's token split is the paper's 80M : 160M : 2.76B (3% : 5% :
 * 92%), floored so that each alignment stage gets at least 10% of a small budget.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { AdamWOptions } from "../train/optim.ts";
import { stepwiseOrder } from "./plan.ts";

/** The recipes `lab distill --recipe` takes. */
export const RECIPES = ["mohawk", "stepwise", "kd", "sft", "dpo"] as const;

/** One of {@linkcode RECIPES}. */
export type RecipeName = typeof RECIPES[number];

/** What a stage trains on. */
export type StageKind = "matrix" | "hidden" | "distill" | "dpo";

/** One stage of a recipe. */
export interface StagePlan {
  /** Directory-safe name, e.g. `mohawk-2-hidden` or `stepwise-03-layer4`. */
  name: string;
  kind: StageKind;
  /** Layers that keep attention during this stage (all others are Mamba). */
  attentionLayers: number[];
  /** Layers converted at the start of this stage (new Mamba layers). */
  newLayers: number[];
  /** Tokens of this stage. */
  tokens: number;
  /** Name patterns of the parameters that train (undefined: all). */
  train?: string[];
  /** Loss weights (distill stages). */
  ceWeight?: number;
  klWeight?: number;
  klReduction?: "mean" | "batchmean";
  /** Learning rate peak and warmup fraction. */
  lr: number;
  warmupFraction: number;
  adamw: AdamWOptions;
}

/** Inputs of {@linkcode planRecipe}. */
export interface PlanOptions {
  recipe: RecipeName;
  /** Layers of the teacher. */
  numLayers: number;
  /** Layers that keep attention in the final student. */
  attentionLayers: number[];
  /** Layers already Mamba in the starting model (a `--student` of an earlier run). */
  alreadyMamba?: number[];
  /** Token budget of the whole run. */
  tokens: number;
  /** MOHAWK stages to run (default 1, 2, 3): the ablations leave stages out. */
  mohawkStages?: number[];
}

const MIXERS = ["model.layers.*.mamba.*"];
const ALIGN_ADAM: AdamWOptions = { betas: [0.9, 0.98], weightDecay: 0, maxGradNorm: 1 };
const E2E_ADAM: AdamWOptions = { betas: [0.9, 0.98], weightDecay: 0.01, maxGradNorm: 1 };

/** MOHAWK's share of the budget per stage: the paper's split, floored at 10% for the alignment stages. */
export const MOHAWK_SPLIT: Record<number, number> = { 1: 0.1, 2: 0.2, 3: 0.7 };

/** The stages of a recipe. */
export function planRecipe(o: PlanOptions): StagePlan[] {
  const keep = [...o.attentionLayers].sort((a, b) => a - b);
  const already = new Set(o.alreadyMamba ?? []);
  const converted = Array.from({ length: o.numLayers }, (_, i) => i).filter((i) => !keep.includes(i));
  const fresh = converted.filter((i) => !already.has(i));
  if (!(o.tokens > 0)) {
    throw new UsageError("lab distill", `the token budget must be positive, got ${o.tokens}`);
  }
  const base = { attentionLayers: keep, newLayers: [] as number[] };
  switch (o.recipe) {
    case "mohawk": {
      const stages = [...new Set(o.mohawkStages ?? [1, 2, 3])].sort();
      if (stages.length === 0 || stages.some((s) => ![1, 2, 3].includes(s))) {
        throw new UsageError("lab distill", `MOHAWK stages must be among 1, 2, 3, got ${stages.join(",")}`);
      }
      if (converted.length === 0 && stages.some((s) => s < 3)) {
        throw new UsageError("lab distill", "MOHAWK stages 1 and 2 need at least one Mamba layer");
      }
      const share = stages.reduce((s, k) => s + MOHAWK_SPLIT[k], 0);
      return stages.map((k, i) => ({
        ...base,
        newLayers: i === 0 ? fresh : [],
        name: `mohawk-${k}-${k === 1 ? "matrix" : k === 2 ? "hidden" : "kd"}`,
        kind: k === 1 ? "matrix" as const : k === 2 ? "hidden" as const : "distill" as const,
        tokens: Math.floor(o.tokens * MOHAWK_SPLIT[k] / share),
        train: k === 3 ? undefined : MIXERS,
        ceWeight: 0,
        klWeight: 1,
        klReduction: "mean" as const,
        lr: k === 3 ? 1e-3 : 3e-3,
        warmupFraction: 0.1,
        adamw: k === 3 ? E2E_ADAM : ALIGN_ADAM,
      }));
    }
    case "stepwise": {
      const order = stepwiseOrder(o.numLayers).filter((i) => fresh.includes(i));
      if (order.length === 0) {
        throw new UsageError(
          "lab distill",
          "the stepwise recipe needs at least one attention layer to convert",
        );
      }
      return order.map((layer, k) => {
        const stillAttention = new Set([...keep, ...order.slice(k + 1)]);
        return {
          name: `stepwise-${String(k + 1).padStart(2, "0")}-layer${layer}`,
          kind: "distill" as const,
          attentionLayers: [...stillAttention].sort((a, b) => a - b),
          newLayers: [layer],
          tokens: Math.floor(o.tokens / order.length),
          train: MIXERS,
          ceWeight: 1,
          klWeight: 0.1,
          klReduction: "batchmean" as const,
          lr: 2e-3,
          warmupFraction: 0.1,
          adamw: ALIGN_ADAM,
        };
      });
    }
    case "kd":
    case "sft":
      return [{
        ...base,
        newLayers: fresh,
        name: o.recipe,
        kind: "distill",
        tokens: o.tokens,
        ceWeight: 1,
        klWeight: o.recipe === "kd" ? 1 : 0,
        klReduction: "mean",
        lr: 1e-3,
        warmupFraction: 0.05,
        adamw: E2E_ADAM,
      }];
    case "dpo":
      return [{
        ...base,
        newLayers: fresh,
        name: "dpo",
        kind: "dpo",
        tokens: o.tokens,
        lr: 5e-5,
        warmupFraction: 0.1,
        adamw: { betas: [0.9, 0.999], weightDecay: 0, maxGradNorm: 1 },
      }];
  }
}

/** Parses `--recipe`. */
export function parseRecipe(name: string): RecipeName {
  if (!(RECIPES as readonly string[]).includes(name)) {
    throw new UsageError("lab distill", `--recipe must be one of ${RECIPES.join(", ")}, got "${name}"`);
  }
  return name as RecipeName;
}
