"""PyTorch's times for causal GQA attention prefill, the other side of bench/attention.ts.

Same shapes: Llama-3.2-1B heads (H_q 32, H_kv 8, P 64) and brown-llama-6m's (8, 4, 32), B = 1..8,
L = 256..4096, f32 (TF32 off), forward and forward + backward:
- `sdpa`: K, V repeated over each group (transformers' sdpa_attention), then
  torch.nn.functional.scaled_dot_product_attention(is_causal=True) with the backend PyTorch picks
  for f32 (flash needs fp16/bf16, so normally the memory-efficient kernel; the backend that runs
  alone, trying flash, efficient, cudnn, math in that order, is reported as `backend`);
- `eager`: softmax(Q Kᵀ / √P + causal mask) V with K, V repeated over each group (LlamaAttention's
  eager path), skipped where its (B, H, L, L) scores would not fit.
FLOPs as bench/attention.ts counts them: 4·B·H_q·L²·P / 2 forward, 3.5× that forward + backward.
CUDA-event medians after a sustained warm-up (bench/torch_timing.py). Each row is printed as a JSON
line when measured (a run cut short keeps its rows); --json FILE gets the whole report at the end.

Usage: python3 bench/pytorch_attention.py [--json FILE] [--quick]
"""
import argparse, json, math, time
import torch
import torch.nn.functional as F
from torch_timing import FULL, QUICK, time_sustained

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
opts = QUICK if args.quick else FULL
SHAPES = [("llama-3.2-1b", 32, 8, 64), ("brown-llama-6m", 8, 4, 32)]
batches = [1, 8] if args.quick else [1, 2, 4, 8]
lengths = [2048, 4096, 1024, 512, 256]  # the shapes first (a run cut short keeps them)


def repeat_kv(q, k, v):
    group = q.shape[1] // k.shape[1]
    return k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)


def sdpa(q, k, v):
    # K, V repeated over each group first, as transformers' sdpa_attention does (the f32 kernels
    # besides `math` take no GQA layout)
    k, v = repeat_kv(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def eager(q, k, v):
    k, v = repeat_kv(q, k, v)
    L = q.shape[2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def backend_of(q, k, v):
    """Which SDPA backend runs for these inputs (tries each alone), or None."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return None
    for name, b in [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                    ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]:
        try:
            with sdpa_kernel([b]):
                sdpa(q, k, v)
            return name
        except RuntimeError:
            continue
    return None


results = []
g = torch.Generator(device=dev).manual_seed(0)
for L in lengths:
    for label, Hq, Hkv, P in SHAPES:
        for B in batches:
            q = torch.randn(B, Hq, L, P, device=dev, generator=g)
            k = torch.randn(B, Hkv, L, P, device=dev, generator=g)
            v = torch.randn(B, Hkv, L, P, device=dev, generator=g)
            dO = torch.randn(B, Hq, L, P, device=dev, generator=g)
            fwd_flops = 4 * B * Hq * L * L * P / 2
            fns = [("sdpa", sdpa)]
            if 4 * B * Hq * L * L * 4 <= 40e9:  # scores, probs and their grads held at once
                fns.append(("eager", eager))
            for path, fn in fns:
                for pass_ in ("fwd", "fwdbwd"):
                    name = f"attention_torch_{path}_{pass_}_B{B}_L{L}_Hq{Hq}_Hkv{Hkv}_P{P}"
                    try:
                        if pass_ == "fwd":
                            with torch.no_grad():
                                t = time_sustained(lambda: fn(q, k, v), **opts)
                        else:
                            ins = [x.clone().requires_grad_() for x in (q, k, v)]
                            t = time_sustained(lambda: torch.autograd.grad(fn(*ins), ins, dO), **opts)
                        flops = fwd_flops if pass_ == "fwd" else 3.5 * fwd_flops
                        row = {"name": name, "path": path, "pass": pass_, "B": B, "L": L, "Hq": Hq,
                               "Hkv": Hkv, "P": P, "flops": flops,
                               "tflop_per_s": flops / (t["ms"] / 1e3) / 1e12,
                               "tokens_per_s": B * L / (t["ms"] / 1e3), **t}
                        if path == "sdpa" and pass_ == "fwd":
                            row["backend"] = backend_of(q, k, v)
                        results.append(row)
                        print(json.dumps(row), flush=True)
                        if args.json:  # rewritten after every row, so a run cut short keeps its rows
                            open(args.json, "w").write(json.dumps({"device": torch.cuda.get_device_name(),
                                                                   "results": results}, indent=2))
                    except torch.cuda.OutOfMemoryError as e:
                        results.append({"name": name, "error": "out of memory"})
                    except Exception as e:  # report, don't fail the whole benchmark
                        results.append({"name": name, "error": str(e)[:200]})
                    torch.cuda.empty_cache()
            del q, k, v, dO

report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name(),
          "torch": torch.__version__, "method": opts, "results": results}
if args.json:
    open(args.json, "w").write(json.dumps(report, indent=2))
