/**
 * `lab kernel selective-scan --input FILE --out FILE` and `lab kernel ssd --input FILE --out FILE
 * [--block N]`: run the Mamba kernels on any inputs in the fixtures' tensor names and layouts. When the
 * input holds `dy` / `dY`, the output also holds `grad_<name>` for every input.
 *
 * @module
 */
import { DataError, UsageError } from "../errors.ts";
import { initGpu } from "../gpu/device.ts";
import { type HostTensor, SafetensorsFile, writeSafetensors } from "../io/safetensors.ts";
import { selectiveScan, selectiveScanBackward, type SelectiveScanInputs } from "../ssm/selective_scan.ts";
import { ssdBackward, ssdChunked, type SsdInputs } from "../ssm/ssd.ts";
import { readTensors, Tensor } from "../tensor/tensor.ts";
import { intFlag, parseFlags, required } from "./args.ts";

async function readInputs(
  path: string,
): Promise<{ tensors: Map<string, Tensor>; meta: Record<string, string> }> {
  using f = await SafetensorsFile.open(path);
  const tensors = new Map<string, Tensor>();
  for (const name of f.names()) {
    const info = f.info(name);
    if (!["F32", "F16", "BF16", "F64"].includes(info.dtype)) {
      throw new DataError(path, `tensor "${name}" is ${info.dtype}; the kernels take float tensors`);
    }
    tensors.set(name, Tensor.from(await f.readF32(name), info.shape));
  }
  return { tensors, meta: f.metadata };
}

async function writeOutputs(
  path: string,
  out: [string, Tensor][],
  meta: Record<string, string>,
): Promise<void> {
  const values = await readTensors(out.map(([, t]) => t));
  const tensors: Record<string, HostTensor> = {};
  out.forEach(([name, t], i) =>
    tensors[name] = { dtype: "F32", shape: [...t.shape], data: values[i] as Float32Array }
  );
  await writeSafetensors(path, tensors, { format: "pt", producer: "mamba-distill-lab", ...meta });
}

function need(path: string, m: Map<string, Tensor>, name: string): Tensor {
  const t = m.get(name);
  if (!t) throw new DataError(path, `missing tensor "${name}"`);
  return t;
}

async function selectiveScanKernel(input: string, out: string): Promise<void> {
  const { tensors: m, meta } = await readInputs(input);
  const flag = meta.delta_softplus ?? "false";
  if (flag !== "true" && flag !== "false") {
    throw new DataError(input, `metadata delta_softplus must be "true" or "false", got "${flag}"`);
  }
  const inp: SelectiveScanInputs = {
    u: need(input, m, "u"),
    delta: need(input, m, "delta"),
    A: need(input, m, "A"),
    B: need(input, m, "B"),
    C: need(input, m, "C"),
    D: m.get("D"),
    z: m.get("z"),
    deltaBias: m.get("delta_bias"),
  };
  const opts = { deltaSoftplus: flag === "true", initialState: m.get("initial_state") };
  const { y, lastState } = selectiveScan(inp, opts);
  const outputs: [string, Tensor][] = [["y", y], ["last_state", lastState]];
  const dy = m.get("dy");
  if (dy) {
    const g = selectiveScanBackward(inp, dy, { ...opts, dLastState: m.get("d_last_state") });
    const names: [string, Tensor | undefined][] = [
      ["u", g.u],
      ["delta", g.delta],
      ["A", g.A],
      ["B", g.B],
      ["C", g.C],
      ["D", g.D],
      ["z", g.z],
      ["delta_bias", g.deltaBias],
      ["initial_state", g.initialState],
    ];
    for (const [n, t] of names) if (t) outputs.push([`grad_${n}`, t]);
  }
  await writeOutputs(out, outputs, { delta_softplus: flag });
}

async function ssdKernel(input: string, out: string, block: number): Promise<void> {
  const { tensors: m } = await readInputs(input);
  const X = need(input, m, "X");
  const init = m.get("initial_state");
  const [Bt, , H, P] = X.shape;
  const N = need(input, m, "B").shape[3];
  // The fixtures store the initial state as (B, 1, H, P, N); the kernel takes (B, H, P, N).
  const inp: SsdInputs = {
    X,
    A: need(input, m, "A"),
    B: need(input, m, "B"),
    C: need(input, m, "C"),
    initialState: init?.size === Bt * H * P * N ? init.view([Bt, H, P, N]) : init,
  };
  const { Y, finalState } = ssdChunked(inp, { blockLen: block });
  const outputs: [string, Tensor][] = [["Y", Y], ["final_state", finalState]];
  const dY = m.get("dY");
  if (dY) {
    const g = ssdBackward(inp, dY, { blockLen: block, dFinalState: m.get("d_final_state") });
    for (
      const [n, t] of [["X", g.X], ["A", g.A], ["B", g.B], ["C", g.C], [
        "initial_state",
        g.initialState,
      ]] as const
    ) {
      if (t) outputs.push([`grad_${n}`, t]);
    }
  }
  await writeOutputs(out, outputs, { block_len: String(block) });
}

/** `lab kernel selective-scan|ssd --input FILE --out FILE [--block N]`. */
export async function kernelCommand(args: string[]): Promise<void> {
  const [which, ...rest] = args;
  const cmd = `lab kernel ${which ?? ""}`.trim();
  if (which !== "selective-scan" && which !== "ssd") {
    throw new UsageError("lab kernel", `expected "selective-scan" or "ssd", got "${which ?? ""}"`);
  }
  const f = parseFlags(
    cmd,
    rest,
    which === "ssd" ? { input: "string", out: "string", block: "number" } : {
      input: "string",
      out: "string",
    },
  );
  const input = required(cmd, f, "input");
  const out = required(cmd, f, "out");
  await initGpu();
  if (which === "selective-scan") await selectiveScanKernel(input, out);
  else await ssdKernel(input, out, intFlag(cmd, f, "block", 64));
}
