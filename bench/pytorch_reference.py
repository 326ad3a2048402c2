"""PyTorch's figures for the same work as bench/main.ts, on the same GPU (CUDA events, medians).

Usage (on the GPU machine): python3 bench/pytorch_reference.py [--json FILE] [--quick]
f32 with TF32 off, as the toolkit computes; the teacher is loaded with transformers from data/.
"""
import argparse, json, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
reps = 3 if args.quick else 10
dev = "cuda"


def time_median(fn):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    return sorted(ts)[len(ts) // 2]


results = []
for n in ([512] if args.quick else [1024, 2048, 4096]):
    a = torch.full((n, n), 0.5, device=dev)
    b = torch.full((n, n), 0.25, device=dev)
    ms = time_median(lambda: a @ b)
    results.append({"name": f"matmul_f32_{n}", "ms": ms, "tflops": 2 * n**3 / (ms / 1e3) / 1e12})

from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("data/brown-llama-6m", dtype=torch.float32, attn_implementation="eager").to(dev).eval()
B, T = (2, 64) if args.quick else (16, 256)
ids = (torch.arange(B * T, device=dev) * 7919 % model.config.vocab_size).view(B, T)
with torch.no_grad():
    ms = time_median(lambda: model(ids))
results.append({"name": f"brown_llama_6m_forward_B{B}_T{T}", "ms": ms, "tokens_per_s": B * T / (ms / 1e3)})

report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}
text = json.dumps(report, indent=2)
if args.json:
    open(args.json, "w").write(text)
print(text)
