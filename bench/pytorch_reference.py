"""PyTorch's figures for the same work as bench/main.ts, on the same GPU (CUDA events, medians).

Usage (on the GPU machine): python3 bench/pytorch_reference.py [--json FILE] [--quick]
f32 with TF32 off, as the toolkit computes; CUDA-event medians after a sustained warm-up
(bench/torch_timing.py); the teacher is loaded with transformers from data/.
"""
import argparse, json, time
import torch
from torch_timing import FULL, QUICK, time_sustained

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
opts = QUICK if args.quick else FULL
dev = "cuda"


def time_median(fn):
    return time_sustained(fn, **opts)


results = []
for n in ([512] if args.quick else [1024, 2048, 4096]):
    a = torch.full((n, n), 0.5, device=dev)
    b = torch.full((n, n), 0.25, device=dev)
    for layout, fn in (("nn", lambda: a @ b), ("nt", lambda: a @ b.T)):
        t = time_median(fn)
        results.append({"name": f"matmul_f32_{layout}_{n}", **t, "tflops": 2 * n**3 / (t["ms"] / 1e3) / 1e12})

# Device copy: the bandwidth a memory-bound kernel can reach (read + write), 1 GiB.
src = torch.empty(2**28, device=dev)
dst = torch.empty_like(src)
t = time_median(lambda: dst.copy_(src))
results.append({"name": "device_copy_1GiB", **t, "gb_per_s": 2 * src.numel() * 4 / (t["ms"] / 1e3) / 1e9})
del src, dst

from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("data/brown-llama-6m", dtype=torch.float32, attn_implementation="eager").to(dev).eval()
B, T = (2, 64) if args.quick else (16, 256)
ids = (torch.arange(B * T, device=dev) * 7919 % model.config.vocab_size).view(B, T)
with torch.no_grad():
    t = time_median(lambda: model(ids))
results.append({"name": f"brown_llama_6m_forward_B{B}_T{T}", **t, "tokens_per_s": B * T / (t["ms"] / 1e3)})

report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}
text = json.dumps(report, indent=2)
if args.json:
    open(args.json, "w").write(text)
print(text)
