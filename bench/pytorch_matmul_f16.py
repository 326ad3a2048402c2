"""PyTorch's times for the products of bench/matmul_f16.ts on the same GPU: square n^3 products
(n = 1024, 2048, 4096) in the NN (A @ B) and NT (A @ W^T) layouts.

- fp16 inputs, fp32 accumulation: torch.mm(a16, b16, out_dtype=torch.float32) where this PyTorch has
  `out_dtype` (an fp32 result, as kernels/matmul_f16.wgsl writes), else torch.matmul(a16, b16) with an
  fp16 result (the row says which). allow_fp16_reduced_precision_reduction = False keeps every partial
  sum in fp32. cuBLAS runs these on the tensor cores (HMMA, fp32 accumulate): the WebGPU kernel has no
  access to them (WGSL has no matrix instructions), so this is the hardware's fp16 path, not a like-for-
  like kernel comparison.
- fp32 inputs with TF32 off (CUDA cores, like kernels/matmul.wgsl) for reference.
CUDA-event medians after a sustained warm-up (bench/torch_timing.py). Each product is checked first
against a float64 product of the same (rounded) inputs on the GPU.

Usage: python3 bench/pytorch_matmul_f16.py [--json FILE] [--quick]
"""
import argparse, json, time
import torch
from torch_timing import FULL, QUICK, time_sustained

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true", help="quick timing options (same sizes)")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
dev = "cuda"
opts = QUICK if args.quick else FULL
g = torch.Generator(device=dev).manual_seed(0)


def _has_out_dtype():
    x = torch.ones(8, 8, device=dev, dtype=torch.float16)
    try:
        return torch.mm(x, x, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError):
        return False


OUT_F32 = _has_out_dtype()


def fp16_product(a16, b16):
    """fp16 x fp16 with fp32 accumulation; an fp32 result when torch.mm takes out_dtype."""
    if OUT_F32:
        return torch.mm(a16, b16, out_dtype=torch.float32), "float32"
    return torch.matmul(a16, b16), "float16"


results = []
for n in (1024, 2048, 4096):
    a = torch.rand(n, n, device=dev, generator=g) * 2 - 1
    b = torch.rand(n, n, device=dev, generator=g) * 2 - 1
    a16, b16 = a.half(), b.half()
    for layout in ("nn", "nt"):
        # NT: B stored (N, K), its transpose taken as a view (cuBLAS reads it transposed, no copy)
        bb16 = b16.t() if layout == "nt" else b16
        bb = b.t() if layout == "nt" else b
        ref16 = a16.double() @ bb16.double()
        c16, out_dtype = fp16_product(a16, bb16)
        err16 = ((c16.double() - ref16).abs().max() / (a16.double().abs() @ bb16.double().abs()).max()).item()
        t = time_sustained(lambda: fp16_product(a16, bb16), **opts)
        results.append({
            "name": f"torch_matmul_fp16_{layout}_{n}", **t, "tflops": 2 * n**3 / (t["ms"] / 1e3) / 1e12,
            "output_dtype": out_dtype, "accumulate": "float32", "tensor_cores": True, "max_rel_err": err16,
        })
        ref = a.double() @ bb.double()
        c = a @ bb
        err = ((c.double() - ref).abs().max() / (a.double().abs() @ bb.double().abs()).max()).item()
        t = time_sustained(lambda: a @ bb, **opts)
        results.append({
            "name": f"torch_matmul_fp32_{layout}_{n}", **t, "tflops": 2 * n**3 / (t["ms"] / 1e3) / 1e12,
            "tf32": False, "max_rel_err": err,
        })
        print(f"{layout} {n}: fp16 {results[-2]['tflops']:.1f} TFLOP/s ({out_dtype} out), "
              f"fp32 {results[-1]['tflops']:.1f} TFLOP/s", flush=True, file=__import__("sys").stderr)

report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name(),
          "torch": torch.__version__, "results": results}
text = json.dumps(report, indent=2)
if args.json:
    open(args.json, "w").write(text)
print(text)
