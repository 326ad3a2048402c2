"""PyTorch's times for the Mamba kernels at research sizes, on the same GPU as bench/ssm.ts.

- Mamba-1 selective scan (B=4, L=2048, D=2048, N=16): the reference's semantics as an eager loop over
  L (how the official `selective_scan_ref` runs), forward and forward+backward.
- Mamba-2 SSD (B=4, L=2048, H=32, P=64, N=64, chunk 64): the chunked algorithm (intra-chunk block,
  chunk states, inter-chunk recurrence, off-diagonal outputs) in eager PyTorch, and under torch.compile.
Written here from the maths in ../shared/design/method.md §2 (not copied from the reference code).
f32, TF32 off; CUDA-event medians after a sustained warm-up (bench/torch_timing.py).

Usage: python3 bench/pytorch_ssm.py [--json FILE] [--quick]
"""
import argparse, json, time
import torch
import torch.nn.functional as F
from torch_timing import FULL, QUICK, time_sustained
from torch_ssd import ssd_chunked

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
opts = QUICK if args.quick else FULL


def time_ms(fn):
    return time_sustained(fn, **opts)


def selective_scan_loop(u, delta, A, B, C, D, z, delta_bias):
    # u, delta, z (b, d, l); A (d, n); B, C (b, n, l); D, delta_bias (d)
    delta = F.softplus(delta + delta_bias[:, None])
    dA = torch.exp(delta.unsqueeze(-1) * A[None, :, None, :])          # (b, d, l, n)
    dBu = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)   # (b, d, l, n)
    x = torch.zeros(u.shape[0], u.shape[1], A.shape[1], device=u.device)
    ys = []
    for t in range(u.shape[2]):
        x = dA[:, :, t] * x + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, t]))
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


results = []
g = torch.Generator(device=dev).manual_seed(0)
Bt, L, D, N = (1, 256, 256, 16) if args.quick else (4, 2048, 2048, 16)
u, delta, z = (torch.randn(Bt, D, L, device=dev, generator=g) for _ in range(3))
A = -torch.rand(D, N, device=dev, generator=g) - 0.5
Bm, Cm = (torch.randn(Bt, N, L, device=dev, generator=g) for _ in range(2))
Dv, bias = torch.ones(D, device=dev), torch.zeros(D, device=dev)
with torch.no_grad():
    t = time_ms(lambda: selective_scan_loop(u, delta, A, Bm, Cm, Dv, z, bias))
results.append({"name": f"selective_scan_fwd_eager_loop_B{Bt}_L{L}_D{D}_N{N}", **t})
ins = [t.clone().requires_grad_() for t in (u, delta, Bm, Cm)]
dy = torch.randn(Bt, D, L, device=dev, generator=g)
t = time_ms(lambda: torch.autograd.grad(selective_scan_loop(ins[0], ins[1], A, ins[2], ins[3], Dv, z, bias), ins, dy))
results.append({"name": f"selective_scan_fwdbwd_eager_loop_B{Bt}_L{L}_D{D}_N{N}", **t})

Bt, L, H, P, N = (1, 256, 4, 64, 64) if args.quick else (4, 2048, 32, 64, 64)
X = torch.randn(Bt, L, H, P, device=dev, generator=g)
Aa = -torch.rand(Bt, L, H, device=dev, generator=g) * 0.1
Bs, Cs = (torch.randn(Bt, L, H, N, device=dev, generator=g) for _ in range(2))
with torch.no_grad():
    t = time_ms(lambda: ssd_chunked(X, Aa, Bs, Cs))
results.append({"name": f"ssd_fwd_eager_chunked_B{Bt}_L{L}_H{H}_P{P}_N{N}", **t})
ins = [t.clone().requires_grad_() for t in (X, Aa, Bs, Cs)]
dY = torch.randn(Bt, L, H, P, device=dev, generator=g)
t = time_ms(lambda: torch.autograd.grad(ssd_chunked(*ins)[0], ins, dY))
results.append({"name": f"ssd_fwdbwd_eager_chunked_B{Bt}_L{L}_H{H}_P{P}_N{N}", **t})
try:
    compiled = torch.compile(ssd_chunked)
    with torch.no_grad():
        t = time_ms(lambda: compiled(X, Aa, Bs, Cs))
    results.append({"name": f"ssd_fwd_compiled_chunked_B{Bt}_L{L}_H{H}_P{P}_N{N}", **t})
    t = time_ms(lambda: torch.autograd.grad(compiled(*ins)[0], ins, dY))
    results.append({"name": f"ssd_fwdbwd_compiled_chunked_B{Bt}_L{L}_H{H}_P{P}_N{N}", **t})
except Exception as e:  # report, don't fail the whole benchmark
    results.append({"name": "ssd_fwd_compiled_chunked", "error": str(e)[:200]})

# The official fused kernels, when the GPU machine has mamba_ssm: the CUDA selective scan and the
# Triton chunked SSD (there X is scaled by dt inside; dt = -A_t with the head's A = -1 gives the same
# per-step log-decays, so the work matches).
try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    Bt1, L1, D1, N1 = (1, 256, 256, 16) if args.quick else (4, 2048, 2048, 16)
    su, sd, sz = (torch.randn(Bt1, D1, L1, device=dev, generator=g) for _ in range(3))
    sA = -torch.rand(D1, N1, device=dev, generator=g) - 0.5
    sB, sC = (torch.randn(Bt1, N1, L1, device=dev, generator=g) for _ in range(2))
    sD, sbias = torch.ones(D1, device=dev), torch.zeros(D1, device=dev)
    with torch.no_grad():
        t = time_ms(lambda: selective_scan_fn(su, sd, sA, sB, sC, sD, sz, sbias, delta_softplus=True))
    results.append({"name": f"selective_scan_fwd_official_cuda_B{Bt1}_L{L1}_D{D1}_N{N1}", **t})
    sins = [x.clone().requires_grad_() for x in (su, sd, sB, sC)]
    sdy = torch.randn(Bt1, D1, L1, device=dev, generator=g)
    t = time_ms(lambda: torch.autograd.grad(
        selective_scan_fn(sins[0], sins[1], sA, sins[2], sins[3], sD, sz, sbias, delta_softplus=True), sins, sdy))
    results.append({"name": f"selective_scan_fwdbwd_official_cuda_B{Bt1}_L{L1}_D{D1}_N{N1}", **t})
except Exception as e:
    results.append({"name": "selective_scan_official_cuda", "error": str(e)[:200]})
try:
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    dt = (-Aa).contiguous()
    Ah = -torch.ones(H, device=dev)
    with torch.no_grad():
        t = time_ms(lambda: mamba_chunk_scan_combined(X, dt, Ah, Bs, Cs, chunk_size=64))
    results.append({"name": f"ssd_fwd_official_triton_B{Bt}_L{L}_H{H}_P{P}_N{N}", **t})
    tins = [x.clone().requires_grad_() for x in (X, dt, Bs, Cs)]
    t = time_ms(lambda: torch.autograd.grad(
        mamba_chunk_scan_combined(tins[0], tins[1], Ah, tins[2], tins[3], chunk_size=64), tins, dY))
    results.append({"name": f"ssd_fwdbwd_official_triton_B{Bt}_L{L}_H{H}_P{P}_N{N}", **t})
except Exception as e:
    results.append({"name": "ssd_official_triton", "error": str(e)[:200]})

report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}
text = json.dumps(report, indent=2)
if args.json:
    open(args.json, "w").write(text)
print(text)
