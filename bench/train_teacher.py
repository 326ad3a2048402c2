"""PyTorch twin of bench/train_teacher.ts: the same model shape, the same batches (start offsets from
the data file), the same optimizer and schedule, timed on the same GPU. f32, TF32 off, eager.

Usage: python3 bench/train_teacher.py --data brown.safetensors [--steps N] [--json FILE]
"""
import argparse, json, math, struct, time
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--steps", type=int)
p.add_argument("--json")
p.add_argument("--compile", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype={"I32": np.int32, "F32": np.float32}[v["dtype"]]).reshape(v["shape"])
    return out, meta


data, meta = read_safetensors(args.data)
ids = torch.from_numpy(data["train"].astype(np.int64)).cuda()
val = torch.from_numpy(data["validation"].astype(np.int64)).cuda()
starts = torch.from_numpy(data["starts"].astype(np.int64)).cuda()
max_steps, B = starts.shape
T = int(meta.get("seq", 256))
steps = min(args.steps or max_steps, max_steps)

from transformers import LlamaConfig, LlamaForCausalLM

cfg = LlamaConfig.from_pretrained("data/brown-llama-6m")
torch.manual_seed(0)
model = LlamaForCausalLM(cfg).cuda().float()
model.config._attn_implementation = "eager"
decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "norm" in n)]
no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "norm" in n]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-3, betas=(0.9, 0.95))
peak, warm, lo = 2e-3, 100, 2e-4


def lr_at(s):
    if s < warm:
        return peak * (s + 1) / warm
    t = min(1.0, (s - warm) / max(1, steps - warm))
    return lo + (peak - lo) * 0.5 * (1 + math.cos(math.pi * t))


offs = torch.arange(T + 1, device="cuda")
fwd = torch.compile(model) if args.compile else model
times = []
torch.cuda.synchronize()
t0 = time.time()
tw = t0
for s in range(steps):
    w = ids[starts[s].unsqueeze(1) + offs]  # (B, T+1)
    for g in opt.param_groups:
        g["lr"] = lr_at(s)
    logits = fwd(w[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if (s + 1) % 50 == 0:
        torch.cuda.synchronize()
        now = time.time()
        times.append(50 * B * T / (now - tw))
        tw = now
torch.cuda.synchronize()
seconds = time.time() - t0
model.eval()
with torch.no_grad():
    n = (val.numel() - 1) // 256
    tot = 0.0
    for i in range(0, n, 16):
        k = min(16, n - i)
        x = val[i * 256:(i + k) * 256].view(k, 256)
        y = val[i * 256 + 1:(i + k) * 256 + 1].view(k, 256)
        lg = model(x).logits.float()
        tot += torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1), reduction="sum").item()
    val_loss = tot / (n * 256)
times = sorted(times[1:] or times)
report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "compile": args.compile, "steps": steps, "batch": B, "seq": T,
          "seconds": seconds, "tokens_per_s_median": times[len(times) // 2], "ms_per_step": seconds * 1000 / steps,
          "final_train_loss": loss.item(), "val_loss": val_loss, "val_ppl": math.exp(val_loss)}
text = json.dumps(report, indent=2)
if args.json:
    open(args.json, "w").write(text)
print(text)
