/**
 * AdamW with global-norm gradient clipping, entirely on the GPU (`kernels/optim.wgsl`): the norm is
 * reduced into a small stats buffer that the update reads, so a step needs no readback; `gradNorm()`
 * exposes the norm tensor for the occasional logging read.
 *
 * Parameter groups follow the usual rule: no weight decay for biases, norm weights and the SSM's
 * A_log, D and dt_bias (`isNoDecay`). Frozen parameters (by name pattern) get no gradient at all.
 *
 * @module
 */
import { ShapeError } from "../errors.ts";
import { dispatch, groupsFor, Params } from "../gpu/commands.ts";
import { Tensor } from "../tensor/tensor.ts";

/** AdamW settings (PyTorch's defaults except the learning rate, which the schedule sets). */
export interface AdamWOptions {
  /** (β₁, β₂), default (0.9, 0.999). */
  betas?: [number, number];
  /** ε, default 1e-8. */
  eps?: number;
  /** Decoupled weight decay for the decaying group, default 0.01. */
  weightDecay?: number;
  /** Clip the global gradient norm to this (≤ 0 or undefined: no clipping). */
  maxGradNorm?: number;
}

/** Names that get no weight decay: biases, norm weights, A_log, D, dt_bias. */
export function isNoDecay(name: string): boolean {
  return /\.bias$|norm|(^|\.)A_log$|(^|\.)D$|dt_bias$/.test(name);
}

/** Glob-like pattern (`*` any run of characters, `?` one) → RegExp matching a whole name. */
export function namePattern(pattern: string): RegExp {
  const esc = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${esc}$`);
}

/**
 * Marks parameters trainable or frozen: with `train` patterns only matching names train; names
 * matching a `freeze` pattern never do. Returns the trainable [name, tensor] pairs.
 */
export function selectTrainable(
  params: [string, Tensor][],
  opts: { train?: string[]; freeze?: string[] } = {},
): [string, Tensor][] {
  const train = opts.train?.map(namePattern);
  const freeze = (opts.freeze ?? []).map(namePattern);
  const out: [string, Tensor][] = [];
  for (const [name, t] of params) {
    const on = (!train || train.some((r) => r.test(name))) && !freeze.some((r) => r.test(name));
    t.requiresGrad = on;
    if (!on) {
      t.grad?.dispose();
      t.grad = null;
    } else out.push([name, t]);
  }
  return out;
}

interface Slot {
  name: string;
  param: Tensor;
  m: Tensor;
  v: Tensor;
  decay: boolean;
}

/** AdamW over named parameters. */
export class AdamW implements Disposable {
  readonly #slots: Slot[];
  readonly #opts: Required<AdamWOptions>;
  readonly #partials: Tensor;
  /** (norm, clip scale, t, 1 − β₁ᵗ, 1 − β₂ᵗ) on the GPU; t counts applied (not skipped) updates. */
  readonly #stats: Tensor;

  /** An optimizer for `params` ([name, tensor] pairs, e.g. from `selectTrainable`). */
  constructor(params: [string, Tensor][], opts: AdamWOptions = {}) {
    this.#opts = {
      betas: opts.betas ?? [0.9, 0.999],
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 0.01,
      maxGradNorm: opts.maxGradNorm ?? 0,
    };
    this.#slots = params.map(([name, param]) => ({
      name,
      param,
      m: Tensor.zeros(param.shape),
      v: Tensor.zeros(param.shape),
      decay: !isNoDecay(name),
    }));
    const blocks = this.#slots.reduce((n, s) => n + Math.ceil(s.param.size / 4096), 0);
    this.#partials = Tensor.zeros([Math.max(1, blocks)]);
    this.#stats = Tensor.zeros([5]);
  }

  /**
   * Updates applied so far (t of the bias corrections): steps skipped for non-finite gradients do
   * not count. The count lives on the GPU (the skip is decided there), so this reads it back.
   */
  async steps(): Promise<number> {
    return (await this.#stats.toArray())[2];
  }

  /** Sets the applied-update count (resuming from a checkpoint): t and its bias corrections. */
  setSteps(t: number): void {
    const [b1, b2] = this.#opts.betas;
    const stats = new Float32Array(5);
    stats.set([t, 1 - b1 ** t, 1 - b2 ** t], 2);
    this.#stats.write(stats);
  }

  /** The moment tensors by parameter name (for checkpoints): `name.exp_avg`, `name.exp_avg_sq`. */
  state(): [string, Tensor][] {
    return this.#slots.flatMap((s) =>
      [[`${s.name}.exp_avg`, s.m], [`${s.name}.exp_avg_sq`, s.v]] as [string, Tensor][]
    );
  }

  /** (global gradient norm before clipping, clip scale, …) of the last step, on the GPU. */
  gradNorm(): Tensor {
    return this.#stats;
  }

  /**
   * One update with learning rate `lr` from the parameters' `.grad` (then freed). A parameter
   * without a gradient this step is skipped.
   */
  update(lr: number): void {
    const o = this.#opts;
    const [b1, b2] = o.betas;
    const live = this.#slots.filter((s) => s.param.grad);
    // 1. global norm → stats (norm, scale)
    let slot = 0;
    for (const s of live) {
      const g = s.param.grad!;
      if (g.size !== s.param.size) {
        throw new ShapeError("adamw", `gradient of ${s.name} has ${g.size} values`);
      }
      const blocks = Math.ceil(g.size / 4096);
      dispatch(
        { file: "optim.wgsl", entry: "sum_squares" },
        [null, g.buffer, null, null, this.#partials.buffer],
        new Params().u32(g.size, 0, slot, 0),
        [Math.min(blocks, 65535), Math.ceil(blocks / 65535)],
      );
      slot += blocks;
    }
    dispatch(
      { file: "optim.wgsl", entry: "clip_scale" },
      [null, null, null, null, this.#partials.buffer, this.#stats.buffer],
      new Params().u32(0, 0, 0, slot).f32v(0, b1, b2, 0, 0, 1 - b1, 1 - b2, o.maxGradNorm),
      [1],
    );
    // 2. the update (bias corrections from stats, as clip_scale left them)
    for (const s of live) {
      const [gx, gy] = groupsFor(s.param.size, 256);
      dispatch(
        { file: "optim.wgsl", entry: "adamw" },
        [s.param.buffer, s.param.grad!.buffer, s.m.buffer, s.v.buffer, null, this.#stats.buffer],
        new Params().u32(s.param.size, gx * 256, 0, 0).f32v(
          lr,
          b1,
          b2,
          o.eps,
          s.decay ? o.weightDecay : 0,
          0,
          0,
          0,
        ),
        [gx, gy],
      );
      s.param.grad!.dispose();
      s.param.grad = null;
    }
  }

  /** Frees the moments. */
  dispose(): void {
    for (const s of this.#slots) {
      s.m.dispose();
      s.v.dispose();
    }
    this.#partials.dispose();
    this.#stats.dispose();
  }

  /** `using opt = new AdamW(…)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Linear warmup to `peak`, then cosine decay to `minLr` at `total` steps (step counted from 0). */
export function warmupCosine(
  step: number,
  opts: { peak: number; warmup: number; total: number; minLr?: number },
): number {
  const min = opts.minLr ?? 0;
  if (opts.warmup > 0 && step < opts.warmup) return opts.peak * (step + 1) / opts.warmup;
  const span = Math.max(1, opts.total - opts.warmup);
  const t = Math.min(1, (step - opts.warmup) / span);
  return min + (opts.peak - min) * 0.5 * (1 + Math.cos(Math.PI * t));
}
