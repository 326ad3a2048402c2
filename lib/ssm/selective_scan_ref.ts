/**
 * Plain-loop references (float64) of the Mamba-1 selective scan: the forward, its reverse-time adjoint
 * (every input's gradient) and the one-token step. These are the specification the kernels in
 * `kernels/selective_scan*.wgsl` are tested against.
 *
 * Ground truth: `selective_scan_ref` (`mamba_ssm/ops/selective_scan_interface.py`) and
 * `selective_state_update_ref` (`mamba_ssm/ops/triton/selective_state_update.py`) of state-spaces/mamba;
 * method.md §2.1. Shapes use the paper's letters, outermost first: u, δ, z (B, D, L); A (D, N);
 * B, C (B, G, N, L) (G = 1 is the ungrouped (B, N, L) layout; channel d uses group ⌊d/(D/G)⌋);
 * D skip, δ bias (D); states (B, D, N).
 *
 * @module
 */

/** Sizes of a scan: batch, channels D, length L, state N, groups G of B and C (1 when ungrouped). */
export interface ScanDims {
  /** Batch size (the paper's B; spelt out to differ from the input B). */
  batch: number;
  /** Channels. */
  D: number;
  /** Sequence length. */
  L: number;
  /** State size. */
  N: number;
  /** Groups of B and C; D must be a multiple of G. */
  G: number;
}

/** Inputs of {@linkcode selectiveScanRef}, flat row-major arrays in the layouts of the module doc. */
export interface ScanRefInputs {
  /** Sizes. */
  dims: ScanDims;
  /** Input u (B, D, L). */
  u: ArrayLike<number>;
  /** Raw time step δ (B, D, L), before bias and softplus. */
  delta: ArrayLike<number>;
  /** A (D, N), negative. */
  A: ArrayLike<number>;
  /** B (B, G, N, L). */
  B: ArrayLike<number>;
  /** C (B, G, N, L). */
  C: ArrayLike<number>;
  /** Skip D (D). */
  D?: ArrayLike<number>;
  /** Gate z (B, D, L): out ← out · silu(z). */
  z?: ArrayLike<number>;
  /** δ bias (D), added before the softplus. */
  deltaBias?: ArrayLike<number>;
}

/** Options of the references: the softplus flag and the state entering the scan. */
export interface ScanRefOptions {
  /** δ ← softplus(δ + bias) (threshold 20, as the CUDA kernels); default false, as the reference. */
  deltaSoftplus?: boolean;
  /** State before t = 0 (B, D, N); zeros when absent. */
  initialState?: ArrayLike<number>;
}

/** Gradients of Σ out · dy (+ Σ lastState · dLastState), in the layouts of the inputs. */
export interface ScanRefGrads {
  u: Float64Array;
  delta: Float64Array;
  A: Float64Array;
  B: Float64Array;
  C: Float64Array;
  /** Present when the input D was given. */
  D?: Float64Array;
  /** Present when z was given. */
  z?: Float64Array;
  /** Present when the δ bias was given. */
  deltaBias?: Float64Array;
  /** Present when an initial state was given. */
  initialState?: Float64Array;
}

/** softplus with the threshold of torch and the CUDA kernels: x above 20. */
function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** δ of channel (b, d) after bias and softplus, and d δ / d δ_raw. */
function stepSizes(inp: ScanRefInputs, softplusOn: boolean, b: number, d: number) {
  const { D, L } = inp.dims;
  const dt = new Float64Array(L);
  const ddt = new Float64Array(L);
  for (let t = 0; t < L; t++) {
    const raw = inp.delta[(b * D + d) * L + t] + (inp.deltaBias ? inp.deltaBias[d] : 0);
    dt[t] = softplusOn ? softplus(raw) : raw;
    ddt[t] = softplusOn && raw <= 20 ? sigmoid(raw) : 1;
  }
  return { dt, ddt };
}

/** Offset of B[b, g(d), n, 0] / C[…] (channel d uses group ⌊d/(D/G)⌋). */
function bcOffset(dims: ScanDims, b: number, d: number, n: number): number {
  const g = Math.floor(d / (dims.D / dims.G));
  return ((b * dims.G + g) * dims.N + n) * dims.L;
}

/**
 * The selective scan, as `selective_scan_ref`:
 *   δ ← softplus(δ + δ_bias) (the softplus when `deltaSoftplus`)
 *   x_t = exp(δ_t A) ⊙ x_{t−1} + δ_t B_t u_t   (x_{−1} = initial state or 0)
 *   y_t = Σ_n x_t[n] C_t[n] + D u_t;  out_t = y_t · silu(z_t) when z is given.
 * Returns out (B, D, L) and the last state x_{L−1} (B, D, N).
 */
export function selectiveScanRef(
  inp: ScanRefInputs,
  opts: ScanRefOptions = {},
): { y: Float64Array; lastState: Float64Array } {
  const { batch, D, L, N } = inp.dims;
  const y = new Float64Array(batch * D * L);
  const lastState = new Float64Array(batch * D * N);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < D; d++) {
      const { dt } = stepSizes(inp, opts.deltaSoftplus ?? false, b, d);
      const row = (b * D + d) * L;
      const acc = new Float64Array(L);
      for (let n = 0; n < N; n++) {
        const a = inp.A[d * N + n];
        const bc = bcOffset(inp.dims, b, d, n);
        let x = opts.initialState ? opts.initialState[(b * D + d) * N + n] : 0;
        for (let t = 0; t < L; t++) {
          x = Math.exp(dt[t] * a) * x + dt[t] * inp.B[bc + t] * inp.u[row + t];
          acc[t] += x * inp.C[bc + t];
        }
        lastState[(b * D + d) * N + n] = x;
      }
      for (let t = 0; t < L; t++) {
        const o = acc[t] + (inp.D ? inp.D[d] * inp.u[row + t] : 0);
        y[row + t] = inp.z ? o * inp.z[row + t] * sigmoid(inp.z[row + t]) : o;
      }
    }
  }
  return { y, lastState };
}

/**
 * Gradients of Σ_{b,d,t} out · dy (+ Σ lastState · dLastState) with respect to every input, by the
 * reverse-time adjoint of the scan. Per channel, with a_t = exp(δ_t A) and o_t = y_t + D u_t:
 *   gate:   dz_t = dy_t · o_t · silu'(z_t),  silu'(z) = σ(z)(1 + z(1 − σ(z)))
 *           dō_t = dy_t · silu(z_t)   (the gradient reaching y_t and the skip)
 *   skip:   dD += dō_t u_t;  du_t += dō_t D
 *   adjoint g_t[n] = ∂/∂x_t[n]:  g_{L−1} = dō_{L−1} C_{L−1}[n] + dLast[n]
 *           g_t = dō_t C_t[n] + a_{t+1} g_{t+1}   (x_{t+1} = a_{t+1} x_t + …)
 *   dC_t[n] += dō_t x_t[n];  dB_t[n] += g_t[n] δ_t u_t;  du_t += Σ_n g_t[n] δ_t B_t[n]
 *   dδ_t = Σ_n g_t[n] (A[n] a_t x_{t−1}[n] + B_t[n] u_t);  dA[n] += Σ_t g_t[n] δ_t a_t x_{t−1}[n]
 *   d x_{−1} = a_0 g_0   (the initial state's gradient)
 *   softplus: dδ_raw = dδ · σ(δ_raw) (1 above the threshold 20);  dδ_bias = Σ_{b,t} dδ_raw.
 * B and C gradients sum over the channels of a group.
 */
export function selectiveScanBackwardRef(
  inp: ScanRefInputs,
  dy: ArrayLike<number>,
  opts: ScanRefOptions & { dLastState?: ArrayLike<number> } = {},
): ScanRefGrads {
  const { batch, D, L, N } = inp.dims;
  const g: ScanRefGrads = {
    u: new Float64Array(batch * D * L),
    delta: new Float64Array(batch * D * L),
    A: new Float64Array(D * N),
    B: new Float64Array(inp.B.length),
    C: new Float64Array(inp.C.length),
    D: inp.D ? new Float64Array(D) : undefined,
    z: inp.z ? new Float64Array(batch * D * L) : undefined,
    deltaBias: inp.deltaBias ? new Float64Array(D) : undefined,
    initialState: opts.initialState ? new Float64Array(batch * D * N) : undefined,
  };
  const xs = new Float64Array(L + 1); // x_{t−1} at index t
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < D; d++) {
      const { dt, ddt } = stepSizes(inp, opts.deltaSoftplus ?? false, b, d);
      const row = (b * D + d) * L;
      // The forward's y (before skip and gate), needed only by the gate's gradient.
      const yScan = new Float64Array(L);
      const dOut = new Float64Array(L); // dō_t = ∂/∂y_t
      const dDelta = new Float64Array(L);
      for (let n = 0; n < N; n++) {
        const bc = bcOffset(inp.dims, b, d, n);
        let x = opts.initialState ? opts.initialState[(b * D + d) * N + n] : 0;
        for (let t = 0; t < L; t++) {
          x = Math.exp(dt[t] * inp.A[d * N + n]) * x + dt[t] * inp.B[bc + t] * inp.u[row + t];
          yScan[t] += x * inp.C[bc + t];
        }
      }
      for (let t = 0; t < L; t++) {
        const u = inp.u[row + t];
        const o = yScan[t] + (inp.D ? inp.D[d] * u : 0);
        if (inp.z) {
          const zt = inp.z[row + t];
          const s = sigmoid(zt);
          g.z![row + t] = dy[row + t] * o * s * (1 + zt * (1 - s));
          dOut[t] = dy[row + t] * zt * s;
        } else {
          dOut[t] = dy[row + t];
        }
        if (inp.D) {
          g.D![d] += dOut[t] * u;
          g.u[row + t] += dOut[t] * inp.D[d];
        }
      }
      for (let n = 0; n < N; n++) {
        const a = inp.A[d * N + n];
        const bc = bcOffset(inp.dims, b, d, n);
        xs[0] = opts.initialState ? opts.initialState[(b * D + d) * N + n] : 0;
        for (let t = 0; t < L; t++) {
          xs[t + 1] = Math.exp(dt[t] * a) * xs[t] + dt[t] * inp.B[bc + t] * inp.u[row + t];
        }
        let carry = opts.dLastState ? opts.dLastState[(b * D + d) * N + n] : 0; // a_{t+1} g_{t+1}
        for (let t = L - 1; t >= 0; t--) {
          const u = inp.u[row + t];
          const gt = carry + dOut[t] * inp.C[bc + t];
          const at = Math.exp(dt[t] * a);
          const ax = at * xs[t];
          g.C[bc + t] += dOut[t] * xs[t + 1];
          g.B[bc + t] += gt * dt[t] * u;
          g.u[row + t] += gt * dt[t] * inp.B[bc + t];
          dDelta[t] += gt * (a * ax + inp.B[bc + t] * u);
          g.A[d * N + n] += gt * dt[t] * ax;
          carry = at * gt;
        }
        if (g.initialState) g.initialState[(b * D + d) * N + n] = carry;
      }
      for (let t = 0; t < L; t++) {
        const raw = dDelta[t] * ddt[t];
        g.delta[row + t] = raw;
        if (g.deltaBias) g.deltaBias[d] += raw;
      }
    }
  }
  return g;
}

/** Inputs of {@linkcode selectiveStateUpdateRef}: one token per batch row. */
export interface StepRefInputs {
  /** Sizes (L is unused). */
  dims: Omit<ScanDims, "L">;
  /** State (B, D, N) before the step. */
  state: ArrayLike<number>;
  /** Input x (B, D). */
  x: ArrayLike<number>;
  /** Raw time step (B, D). */
  dt: ArrayLike<number>;
  /** A (D, N). */
  A: ArrayLike<number>;
  /** B (B, G, N). */
  B: ArrayLike<number>;
  /** C (B, G, N). */
  C: ArrayLike<number>;
  /** Skip D (D). */
  D?: ArrayLike<number>;
  /** Gate z (B, D). */
  z?: ArrayLike<number>;
  /** dt bias (D). */
  dtBias?: ArrayLike<number>;
}

/**
 * One token of the recurrence, as `selective_state_update_ref`:
 *   dt ← softplus(dt + dt_bias);  state ← state · exp(dt A) + dt B x
 *   y = Σ_n state C + D x;  y ← y · silu(z).
 * Returns y (B, D) and the new state (B, D, N); the inputs are not modified.
 */
export function selectiveStateUpdateRef(
  inp: StepRefInputs,
  opts: { dtSoftplus?: boolean } = {},
): { y: Float64Array; state: Float64Array } {
  const { batch, D, N, G } = inp.dims;
  const y = new Float64Array(batch * D);
  const state = Float64Array.from(inp.state);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < D; d++) {
      const bd = b * D + d;
      const raw = inp.dt[bd] + (inp.dtBias ? inp.dtBias[d] : 0);
      const dt = opts.dtSoftplus ? softplus(raw) : raw;
      const bc = (b * G + Math.floor(d / (D / G))) * N;
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const s = state[bd * N + n] * Math.exp(dt * inp.A[d * N + n]) + dt * inp.B[bc + n] * inp.x[bd];
        state[bd * N + n] = s;
        acc += s * inp.C[bc + n];
      }
      const o = acc + (inp.D ? inp.D[d] * inp.x[bd] : 0);
      y[bd] = inp.z ? o * inp.z[bd] * sigmoid(inp.z[bd]) : o;
    }
  }
  return { y, state };
}
