/** A test draft that agrees with its source model on some tokens only. */
import { LlamaModel } from "../../lib/models/llama.ts";
import { Rng } from "../../lib/random.ts";

/** The model in `dir` with N(0, 0.02²) noise (seed 1) on its LM head: a draft with partial acceptance. */
export async function perturbedDraft(dir: string): Promise<LlamaModel> {
  const draft = await LlamaModel.load(dir);
  const w = draft.lmHead.parts[0];
  const rng = new Rng(1);
  w.write(((await w.toArray()) as Float32Array).map((v) => v + 0.02 * rng.normal()));
  return draft;
}
