"""Greedy decoding speed of the bundled teacher in transformers on the same GPU (bench/speculative.ts's
reference): batch 1, the prompt "The jury said", N new tokens, alone and with assisted generation
(transformers' speculative decoding) using the teacher's first two layers as the assistant.

    python3 bench/pytorch_generate.py [N]   # JSON on stdout
"""
import json, sys, time
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

N = int(sys.argv[1]) if len(sys.argv) > 1 else 256
dev = "cuda"
path = "data/brown-llama-6m"
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(dev).eval()
cfg = AutoConfig.from_pretrained(path)
cfg.num_hidden_layers = 2
draft = AutoModelForCausalLM.from_pretrained(path, config=cfg, dtype=torch.float32).to(dev).eval()
ids = tok("The jury said", return_tensors="pt").input_ids
ids = torch.cat([torch.zeros((1, 1), dtype=ids.dtype), ids], dim=1).to(dev)  # BOS (id 0), as the toolkit


def run(**kw):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=N, min_new_tokens=N, do_sample=False, **kw)
    torch.cuda.synchronize()
    return out, N / (time.perf_counter() - t0)


with torch.no_grad():
    for _ in range(2):
        run()
        run(assistant_model=draft)
    plain = max((run() for _ in range(3)), key=lambda r: r[1])
    assisted = max((run(assistant_model=draft) for _ in range(3)), key=lambda r: r[1])
print(json.dumps({
    "torch": torch.__version__,
    "device": torch.cuda.get_device_name(0),
    "new_tokens": N,
    "teacher_tokens_per_s": plain[1],
    "teacher_assisted_early_exit_2_tokens_per_s": assisted[1],
    "assisted_equals_plain": bool(torch.equal(plain[0], assisted[0])),
}, indent=2))
