/**
 * Writes the Brown token ids and a fixed list of batch start offsets to one safetensors file, so that
 * `bench/train_teacher.ts` (Deno) and `bench/train_teacher.py` (PyTorch) train on identical batches
 * on a machine without the corpus package.
 *
 *   deno run -A bench/prepare_train_data.ts OUT.safetensors [--steps 1400] [--batch 32] [--seq 256] [--seed 0]
 *
 * @module
 */
import { parseFlags } from "../lib/cli/args.ts";
import { loadBrownIds } from "../lib/data/brown.ts";
import { writeSafetensors } from "../lib/io/safetensors.ts";
import { loadTokenizer } from "../lib/io/tokenizer.ts";
import { DEFAULT_MODEL_DIR } from "../lib/models/default_model.ts";
import { Rng } from "../lib/random.ts";

const [out, ...rest] = Deno.args;
const f = parseFlags("prepare", rest, { steps: "number", batch: "number", seq: "number", seed: "number" });
const steps = (f.steps as number) ?? 1400;
const batch = (f.batch as number) ?? 32;
const seq = (f.seq as number) ?? 256;
const tok = await loadTokenizer(DEFAULT_MODEL_DIR);
const ids = await loadBrownIds(tok, { tokenizerKey: "brown-llama-6m/tokenizer.json" });
const rng = new Rng((f.seed as number) ?? 0);
const starts = Int32Array.from({ length: steps * batch }, () => rng.int(ids.train.length - seq - 1));
await writeSafetensors(out, {
  train: { dtype: "I32", shape: [ids.train.length], data: ids.train },
  validation: { dtype: "I32", shape: [ids.validation.length], data: ids.validation },
  starts: { dtype: "I32", shape: [steps, batch], data: starts },
}, { seq: String(seq) });
console.log(`wrote ${out}: ${ids.train.length} train ids, ${steps}×${batch} windows of ${seq}`);
