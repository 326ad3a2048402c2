"""PyTorch's times for the training steps of bench/steps.ts, same shapes, same GPU (CUDA events).

- llama_train: transformers' LlamaForCausalLM forward, mean next-token CE, backward, AdamW (every
  parameter, gradient clipping at 1).
- distill: the teacher's forward under no_grad, the 50% hybrid student's forward + backward,
  CE + 0.1 * F.kl_div(log_softmax(s), softmax(t), reduction="batchmean") (MambaInLlama's train_hybrid.py),
  AdamW over the Mamba-2 mixers (or every parameter with train "all"), clipping at 1.
The student is the teacher's LlamaForCausalLM with the converted layers' self_attn replaced by a
Mamba-2 mixer written here in plain PyTorch (in_proj -> z | x | B | C | dt, depthwise causal conv1d,
the chunked SSD of bench/pytorch_ssm.py, D skip, gated RMSNorm, out_proj; x and B repeated from the KV
heads as in MambaInLlama). Weights are random or copied; only the shapes matter for the time.
f32, TF32 off; attention "sdpa" (transformers' default) unless the row says "eager".
Models: brown-llama-6m (data/, max_position_embeddings raised to 4096) and a random model with
Llama-3.2-1B's shapes (tied embeddings). "compiled" rows wrap both models in torch.compile.

Usage: python3 bench/pytorch_steps.py [--json FILE] [--quick] [--only 6m|1b]
"""
import argparse, copy, gc, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_timing import FULL, QUICK, time_sustained
from torch_ssd import ssd_chunked

p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
p.add_argument("--only")
p.add_argument("--no-compile", action="store_true")
args = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
opts = QUICK if args.quick else FULL
ONE_SHOT = dict(warm_ms=0.0, sample_ms=0.0, samples=1, singles=0)
WALL = 10 if args.quick else 30  # brown-llama-6m rows: wall-clock steps after the CUDA-event timing

from transformers import LlamaConfig, LlamaForCausalLM


class Mamba2Mixer(nn.Module):
    """MambaInLlama's Mamba-2 layer shapes: d_inner = H*P, d_xb = Hkv*P, d_state = P, ngroups = H."""

    def __init__(self, d_model, H, Hkv, P, eps=1e-5):
        super().__init__()
        self.H, self.Hkv, self.P, self.eps = H, Hkv, P, eps
        d_inner, d_xb = H * P, Hkv * P
        self.d_inner, self.d_xb = d_inner, d_xb
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * d_xb + H, bias=False)
        conv = d_inner + 2 * d_xb
        self.conv1d = nn.Conv1d(conv, conv, 4, groups=conv, padding=3, bias=True)
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.A_log = nn.Parameter(torch.zeros(H))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, hidden_states, *a, **k):
        u = hidden_states
        b, l, _ = u.shape
        H, Hkv, P = self.H, self.Hkv, self.P
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.d_inner + 2 * self.d_xb, H], dim=-1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :l].transpose(1, 2))
        x, Bm, C = torch.split(xBC, [self.d_xb, self.d_xb, self.d_inner], dim=-1)
        x = x.reshape(b, l, Hkv, P).repeat_interleave(H // Hkv, dim=2)
        Bm = Bm.reshape(b, l, Hkv, P).repeat_interleave(H // Hkv, dim=2)
        C = C.reshape(b, l, H, P)
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        y = ssd_chunked(x * dt[..., None], A * dt, Bm, C)[0] + x * self.D[:, None]
        y = (y.reshape(b, l, self.d_inner) * F.silu(z)).reshape(b, l, H, P)
        y = (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)).reshape(b, l, self.d_inner) * self.norm
        return self.out_proj(y), None


def hybrid_of(teacher, attn_layers):
    s = copy.deepcopy(teacher)
    c = s.config
    for i, layer in enumerate(s.model.layers):
        if i not in attn_layers:
            layer.self_attn = Mamba2Mixer(c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim).to(dev)
    return s


def batch_of(B, T, V):
    ids = (torch.arange(B * T + 1, device=dev) * 7919 + 13) % V
    return ids[:-1].view(B, T).contiguous(), ids[1:].view(B * T).contiguous()


def llama_step(model, x, y):
    params = [p for p in model.parameters()]
    for q in params:
        q.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)

    def step():
        logits = model(x).logits
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def distill_step(teacher, student, x, y, train, compiled=False):
    mixer = {id(q) for m in student.modules() if isinstance(m, Mamba2Mixer) for q in m.parameters()}
    params = []
    for q in student.parameters():
        on = train == "all" or id(q) in mixer
        q.requires_grad_(on)
        if on:
            params.append(q)
    for q in teacher.parameters():
        q.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    t_model = torch.compile(teacher) if compiled else teacher
    s_model = torch.compile(student) if compiled else student
    B = x.shape[0]

    def step():
        with torch.no_grad():
            t_logits = t_model(x).logits
        s_logits = s_model(x).logits
        V = s_logits.shape[-1]
        ce = F.cross_entropy(s_logits.view(-1, V), y)
        kl = F.kl_div(F.log_softmax(s_logits, -1), F.softmax(t_logits, -1), reduction="batchmean")
        loss = ce + 0.1 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


results = []


def wall_ms(step, n):
    """Host wall-clock ms per step over n consecutive steps, one synchronize at the end."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e3


def run(name, make, B, T, o, wall_steps=0, **extra):
    try:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        step = make()
        t = time_sustained(step, **o)
        r = {"name": name, "batch": B, "seq": T, **extra, **t, "tokens_per_s": B * T / (t["ms"] / 1e3),
             "peak_bytes": torch.cuda.max_memory_allocated()}
        if wall_steps:
            w = wall_ms(step, wall_steps)
            r.update(wall_ms=w, tokens_per_s_wall=B * T / (w / 1e3))
        print(f"{name}: {t['ms']:.3f} ms, {r['tokens_per_s']:.0f} tokens/s", flush=True, file=__import__("sys").stderr)
    except Exception as e:  # report, don't fail the whole benchmark
        r = {"name": name, "error": str(e).split("\n")[0][:300]}
        print(f"{name}: FAILED {r['error']}", flush=True, file=__import__("sys").stderr)
    results.append(r)
    step = None
    gc.collect()  # an out-of-memory step's tensors go with its traceback
    torch.cuda.empty_cache()
    return r


def run_fallback(kind, make, B, T, o, **extra):
    """The row at B x T, and after a failure (out of memory) at B/2, B/4, ... down to 1."""
    b = B
    while b >= 1:
        x, y = batch_of(b, T, V)
        r = run(f"{kind}_1b_B{b}_T{T}" + ("_mixers" if kind == "distill" else "") + "_sdpa",
                lambda: make(x, y), b, T, o, **extra)
        if "error" not in r:
            return
        b //= 2


if args.only != "1b":
    cfg6 = LlamaConfig.from_pretrained("data/brown-llama-6m")
    cfg6.max_position_embeddings = 4096
    teachers = {impl: LlamaForCausalLM.from_pretrained("data/brown-llama-6m", config=copy.deepcopy(cfg6), dtype=torch.float32,
                                                       attn_implementation=impl).to(dev) for impl in ("sdpa", "eager")}
    V = cfg6.vocab_size
    students = {impl: hybrid_of(t, [1, 3, 5]) for impl, t in teachers.items()}
    x, y = batch_of(32, 256, V)
    for impl in ("eager", "sdpa"):
        run(f"distill_6m_B32_T256_mixers_{impl}", lambda: distill_step(teachers[impl], students[impl], x, y, "mixers"), 32, 256, opts, WALL, attn=impl)
    run("distill_6m_B32_T256_all_sdpa", lambda: distill_step(teachers["sdpa"], students["sdpa"], x, y, "all"), 32, 256, opts, WALL, attn="sdpa")
    if not args.no_compile:
        run("distill_6m_B32_T256_mixers_sdpa_compiled", lambda: distill_step(teachers["sdpa"], students["sdpa"], x, y, "mixers", compiled=True), 32, 256, opts, WALL, attn="sdpa", compiled=True)
    llama6 = copy.deepcopy(teachers["sdpa"])
    run("llama_train_6m_B32_T256_sdpa", lambda: llama_step(llama6, x, y), 32, 256, opts, WALL, attn="sdpa")
    for T in ([256, 1024, 4096] if args.quick else [256, 512, 1024, 2048, 4096]):
        B = 16384 // T
        x, y = batch_of(B, T, V)
        run(f"distill_6m_B{B}_T{T}_mixers_sdpa", lambda: distill_step(teachers["sdpa"], students["sdpa"], x, y, "mixers"), B, T, opts, WALL, attn="sdpa")
        run(f"llama_train_6m_B{B}_T{T}_sdpa", lambda: llama_step(llama6, x, y), B, T, opts, WALL, attn="sdpa")
    del teachers, students, llama6

if args.only != "6m":
    shape = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                 rms_norm_eps=1e-5, tie_word_embeddings=True)
    llama3 = {"rope_type": "llama3", "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
              "original_max_position_embeddings": 8192}
    try:  # transformers 5: rope_parameters; 4.x: rope_theta + rope_scaling
        cfg = LlamaConfig(**shape, rope_parameters={"rope_theta": 500000.0, **llama3})
        LlamaForCausalLM(LlamaConfig(**{**shape, "num_hidden_layers": 1, "vocab_size": 64},
                                     rope_parameters={"rope_theta": 500000.0, **llama3}))
    except Exception:
        cfg = LlamaConfig(**shape, rope_theta=500000.0, rope_scaling=llama3)
    with torch.device(dev):
        teacher = LlamaForCausalLM(cfg).float()
    student = hybrid_of(teacher, list(range(1, 16, 2)))
    V = cfg.vocab_size
    # as bench/steps.ts: 8 x 2048, then 256 ... 4096 at 16384 tokens per step (quick: 4096)
    shapes = [(8, 2048), (16, 256), (4, 1024), (1, 4096)] if args.quick else [(8, 2048), (64, 256), (32, 512), (16, 1024), (4, 4096)]
    for B, T in shapes:
        run_fallback("distill", lambda x, y: distill_step(teacher, student, x, y, "mixers"), B, T, ONE_SHOT, attn="sdpa")
    del student
    for B, T in ([(2, 2048), (16, 256), (4, 1024), (1, 4096)] if args.quick else [(8, 2048), (64, 256), (16, 1024), (4, 4096)]):
        run_fallback("llama_train", lambda x, y: llama_step(teacher, x, y), B, T, ONE_SHOT, attn="sdpa")

report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name(), "torch": torch.__version__,
          "results": results}
text = json.dumps(report, indent=2)
if args.json:
    open(args.json, "w").write(text)
print(text)
