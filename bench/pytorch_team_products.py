"""PyTorch's times for the decoding products of bench/team_products.ts on the same GPU: F.linear of
M = 1, 2, 4, 7 rows (fp32, TF32 off: cuBLAS's GEMV/GEMM on the CUDA cores, like the WebGPU kernels) at
Llama-3.2-1B's shapes, and silu(x Wg^T) * (x Wu^T) for the MLP's gate and up. CUDA-event medians after
a sustained warm-up (bench/torch_timing.py); `weight_gb_per_s` is the weights' bytes over the time.

Usage: python3 bench/pytorch_team_products.py [--json FILE] [--quick]
"""
import argparse, json
import torch
import torch.nn.functional as F
from torch_timing import FULL, QUICK, time_sustained

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
opts = QUICK if args.quick else FULL
dev = "cuda"
g = torch.Generator(device=dev).manual_seed(0)
shapes = [("q_proj / o_proj", 2048, 2048, False), ("k_proj", 512, 2048, False),
          ("gate+up (swiglu)", 8192, 2048, True), ("down_proj", 2048, 8192, False),
          ("lm_head", 128256, 2048, False)]
rows = []
for name, N, K, swiglu in shapes:
    w = (torch.rand(N, K, device=dev, generator=g) - 0.5) * 0.1
    u = (torch.rand(N, K, device=dev, generator=g) - 0.5) * 0.1 if swiglu else None
    for M in [1, 2, 4, 7]:
        x = torch.rand(M, K, device=dev, generator=g) * 2 - 1
        fn = (lambda: F.silu(F.linear(x, w)) * F.linear(x, u)) if swiglu else (lambda: F.linear(x, w))
        t = time_sustained(fn, **opts)
        nbytes = (2 if swiglu else 1) * N * K * 4
        row = dict(product=name, M=M, N=N, K=K, ms=t["ms"], weight_gb_per_s=nbytes / (t["ms"] * 1e-3) / 1e9)
        rows.append(row)
        print(f"{name} M={M}: {t['ms'] * 1e3:.1f} us, {row['weight_gb_per_s']:.0f} GB/s of weights", flush=True)
    del w, u
out = dict(torch=torch.__version__, device=torch.cuda.get_device_name(), rows=rows)
s = json.dumps(out, indent=2)
if args.json:
    open(args.json, "w").write(s + "\n")
else:
    print(s)
