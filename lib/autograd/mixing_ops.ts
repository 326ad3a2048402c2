/**
 * The differentiable SSD mixing matrix: the tape rule of `ssdMixingMatrixForward` (lib/mixing), for
 * MOHAWK's stage 1 ("matrix orientation"), which minimises ‖M_student − M_teacher‖_F per layer and head.
 *
 * @module
 */
import {
  type SsdMixingInputs,
  ssdMixingMatrixBackward,
  ssdMixingMatrixForward,
} from "../mixing/ssd_mixing.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { record } from "./tape.ts";

/**
 * M (B, H, T, T) = (C Bᵀ) ∘ exp(segsum(A)) ∘ dt_s (+ D on the diagonal); under a recording tape its
 * backward gives A, B, C, dt and D their gradients with the kernel's own backward.
 *
 * @example
 * ```ts ignore
 * const tape = new GradTape();
 * const M = tape.run(() => ssdMixingMatrix({ A, B, C, dt }));
 * ```
 */
export function ssdMixingMatrix(inp: SsdMixingInputs): Tensor {
  const M = ssdMixingMatrixForward(inp);
  const { A, B, C, dt, D } = inp;
  const present = [A, B, C, ...(dt ? [dt] : []), ...(D ? [D] : [])];
  return record([A, B, C, dt, D], M, present, (g, saved) => {
    const [a, b, c] = saved;
    let k = 3;
    const again = { A: a, B: b, C: c, dt: dt ? saved[k++] : undefined, D: D ? saved[k++] : undefined };
    const d = ssdMixingMatrixBackward(again, g);
    return [d.A, d.B, d.C, d.dt, d.D];
  });
}
