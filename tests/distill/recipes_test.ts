/**
 * The recipes' stage plans (lib/distill/recipes.ts): MambaInLlama's stepwise order and freezing,
 * MOHAWK's stages and token split, end-to-end KD/SFT/DPO, and the errors of impossible plans.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { MOHAWK_SPLIT, parseRecipe, planRecipe } from "../../lib/distill/recipes.ts";

Deno.test("recipes: stepwise converts one layer per stage in MambaInLlama's order, mixers only", () => {
  // 6 layers, attention kept at 1, 3, 5 (50%): the order converts 0, 2, 4 (even layers first).
  const s = planRecipe({ recipe: "stepwise", numLayers: 6, attentionLayers: [1, 3, 5], tokens: 3000 });
  assert.deepEqual(s.map((x) => x.newLayers), [[0], [2], [4]]);
  assert.deepEqual(s.map((x) => x.attentionLayers), [[1, 2, 3, 4, 5], [1, 3, 4, 5], [1, 3, 5]]);
  assert.deepEqual(s.map((x) => x.name), ["stepwise-01-layer0", "stepwise-02-layer2", "stepwise-03-layer4"]);
  for (const st of s) {
    assert.equal(st.tokens, 1000);
    assert.deepEqual(st.train, ["model.layers.*.mamba.*"]);
    assert.equal(st.ceWeight, 1);
    assert.equal(st.klWeight, 0.1);
    assert.equal(st.klReduction, "batchmean");
  }
  // 0% attention of 8 layers: 0, 2, 4, 6, then 1, 5, then 3, then 7.
  const all = planRecipe({ recipe: "stepwise", numLayers: 8, attentionLayers: [], tokens: 8 });
  assert.deepEqual(all.map((x) => x.newLayers[0]), [0, 2, 4, 6, 1, 5, 3, 7]);
  // layers an earlier student already converted are not converted again
  const more = planRecipe({
    recipe: "stepwise",
    numLayers: 8,
    attentionLayers: [7],
    alreadyMamba: [0, 2, 4, 6],
    tokens: 30,
  });
  assert.deepEqual(more.map((x) => x.newLayers[0]), [1, 5, 3]);
});

Deno.test("recipes: MOHAWK stages, their split of the budget, and leaving stages out", () => {
  const s = planRecipe({ recipe: "mohawk", numLayers: 4, attentionLayers: [3], tokens: 1000 });
  assert.deepEqual(s.map((x) => x.kind), ["matrix", "hidden", "distill"]);
  assert.deepEqual(s.map((x) => x.tokens), [100, 200, 700]);
  assert.deepEqual(s[0].newLayers, [0, 1, 2]);
  assert.deepEqual(s[1].newLayers, []);
  assert.deepEqual(s[0].train, ["model.layers.*.mamba.*"]);
  assert.equal(s[2].train, undefined); // stage 3 trains everything
  assert.equal(s[2].klWeight, 1);
  assert.equal(s[2].ceWeight, 0);
  // without stage 1 the budget is split between the stages that remain, in proportion
  const no1 = planRecipe({
    recipe: "mohawk",
    numLayers: 4,
    attentionLayers: [3],
    tokens: 900,
    mohawkStages: [2, 3],
  });
  assert.deepEqual(no1.map((x) => x.name), ["mohawk-2-hidden", "mohawk-3-kd"]);
  assert.deepEqual(no1.map((x) => x.tokens), [200, 700]);
  assert.deepEqual(no1[0].newLayers, [0, 1, 2]);
  assert.equal(MOHAWK_SPLIT[1] + MOHAWK_SPLIT[2] + MOHAWK_SPLIT[3], 1);
  assert.throws(
    () => planRecipe({ recipe: "mohawk", numLayers: 2, attentionLayers: [0, 1], tokens: 10 }),
    (e) => e instanceof UsageError && /at least one Mamba layer/.test(e.message),
  );
  assert.throws(
    () => planRecipe({ recipe: "mohawk", numLayers: 2, attentionLayers: [1], tokens: 10, mohawkStages: [4] }),
    UsageError,
  );
});

Deno.test("recipes: kd, sft and dpo are one end-to-end stage; bad names and budgets are usage errors", () => {
  const kd = planRecipe({ recipe: "kd", numLayers: 4, attentionLayers: [1, 3], tokens: 64 });
  assert.equal(kd.length, 1);
  assert.deepEqual(kd[0].newLayers, [0, 2]);
  assert.equal(kd[0].train, undefined);
  assert.equal(kd[0].klWeight, 1);
  const sft = planRecipe({ recipe: "sft", numLayers: 4, attentionLayers: [1, 3], tokens: 64 });
  assert.equal(sft[0].klWeight, 0);
  assert.equal(
    planRecipe({ recipe: "dpo", numLayers: 4, attentionLayers: [1, 3], tokens: 64 })[0].kind,
    "dpo",
  );
  assert.equal(parseRecipe("kd"), "kd");
  assert.throws(
    () => parseRecipe("magic"),
    (e) => e instanceof UsageError && /mohawk, stepwise/.test(e.message),
  );
  assert.throws(() => planRecipe({ recipe: "kd", numLayers: 4, attentionLayers: [], tokens: 0 }), UsageError);
  assert.throws(
    () => planRecipe({ recipe: "stepwise", numLayers: 2, attentionLayers: [0, 1], tokens: 10 }),
    UsageError,
  );
});
