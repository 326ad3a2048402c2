"""PyTorch's greedy decoding of the toolkit's own checkpoints, alone and speculative, on the same GPU
(bench/speculative_fused.ts's reference for issue #7): the distilled hybrid target (attention and
Mamba-2 layers, MambaInLlama's layout) and small Llama drafts, read from the directories the bench
saved, with the same weights in f32 (TF32 off).

transformers has no class for a Llama/Mamba-2 hybrid, so the model is written here in eager PyTorch,
the same maths as lib/models (method.md §3.9):
- attention layers: RoPE (HF's rotate-half), grouped KV heads, a preallocated KV cache;
- Mamba-2 layers: zxbcdt = in_proj(u) with rows [z | x | B | C | dt]; a depthwise causal conv of
  width 4 with bias and SiLU whose state is the last 3 inputs; x and B repeated from the KV heads;
  dt = softplus(dt + dt_bias), A = -exp(A_log); h = exp(A dt) h + (dt x) B^T, y = h C + D x;
  gated RMSNorm (y * silu(z), per group of d_inner / ngroups), out_proj.
Plain decoding keeps the argmax on the GPU and feeds it back without a host round trip (one sync at
the end). Speculative decoding is the usual greedy loop: K draft steps, the target scores
[t_last, d_1..d_K] in one pass (attention over the K + 1 rows at once, the Mamba-2 layers step through
them keeping each step's state), the longest matching prefix plus the target's next token is kept,
and the caches roll back (KV length; the kept step's conv and SSM state). One host sync a round
reads the accepted count, as transformers' assisted generation does.

Every output is checked against the toolkit's greedy tokens (`toolkit_tokens` in the prompts file):
PyTorch's plain and speculative outputs must equal each other; their agreement with the toolkit's is
reported (float rounding may flip a near-tie after many tokens).

    python3 bench/pytorch_speculative.py --dir DIR [--ks 1,2,3] [--reps 2] [--device cuda]
        [--drafts A,B] [--prompts N]

DIR (written by bench/speculative_fused.ts --save-models DIR): target/, drafts/NAME/, prompts.json
({"prompt_ids": [[...]], "toolkit_tokens": [[...]], "new_tokens": N}). JSON lines on stdout, each
as soon as it is measured: plain decoding (with the agreement), then one per draft and K.
"""
import argparse, json, math, os, struct, time
import torch
import torch.nn.functional as F


def read_safetensors(path, device):
    """{name: f32 tensor} from a safetensors file (F32, F16 or BF16, widened to f32)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = bytearray(data[a:b])
        kind = meta["dtype"]
        if kind == "F32":
            t = torch.frombuffer(raw, dtype=torch.float32)
        elif kind == "F16":
            t = torch.frombuffer(raw, dtype=torch.float16).float()
        elif kind == "BF16":  # the upper half of an f32
            t = (torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16).view(torch.float32)
        else:
            raise ValueError(f"{path}: {name} is {kind}, expected F32, F16 or BF16")
        out[name] = t.reshape(meta["shape"]).to(device)
    return out


class Model:
    """A Llama model or a Llama/Mamba-2 hybrid, for batch-1 greedy decoding with caches."""

    def __init__(self, d, device, capacity):
        cfg = json.load(open(f"{d}/config.json"))
        mpath = f"{d}/mamba_config.json"
        m = json.load(open(mpath)) if os.path.exists(mpath) else None
        self.w = read_safetensors(f"{d}/model.safetensors", device)
        self.L = cfg["num_hidden_layers"]
        self.Hq, self.Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.Hq
        self.eps = cfg["rms_norm_eps"]
        rope = cfg.get("rope_parameters") or {}
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        self.attn = set(m["attn_layers"]) if m else set(range(self.L))
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        inv = 1.0 / theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd)
        ang = torch.arange(capacity, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos().float().to(device), ang.sin().float().to(device)
        self.cap, self.dev = capacity, device
        if m:
            s = m["ssm_cfg"]
            self.N = s["d_state"]
            self.P = s.get("headdim") or self.N
            self.d_inner, self.d_xb = m["d_inner"], m["d_xb"]
            self.H = self.d_inner // self.P
            self.hkv_m = self.d_xb // self.P
            self.groups = s.get("ngroups") or self.H
        self.reset()

    def reset(self):
        """Empty caches: K and V (2, Hkv, capacity, hd) per attention layer; conv (C, 3) and SSM (H, P, N) per Mamba layer."""
        self.pos = 0
        self.kv, self.conv, self.ssm = {}, {}, {}
        for i in range(self.L):
            if i in self.attn:
                self.kv[i] = torch.zeros(2, self.Hkv, self.cap, self.hd, device=self.dev)
            else:
                C = self.d_inner + 2 * self.d_xb
                self.conv[i] = torch.zeros(C, 3, device=self.dev)
                self.ssm[i] = torch.zeros(self.H, self.P, self.N, device=self.dev)

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):
        # x (heads, T, hd) at positions pos..pos+T-1, HF's rotate_half convention.
        T = x.shape[1]
        c, s = self.cos[pos:pos + T], self.sin[pos:pos + T]
        h = self.hd // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * c + rot * s

    def attention(self, i, u):
        """u (T, d) at positions pos..pos+T-1; writes K, V into the cache."""
        p = f"model.layers.{i}.self_attn"
        T = u.shape[0]
        q = (u @ self.w[f"{p}.q_proj.weight"].T).view(T, self.Hq, self.hd).transpose(0, 1)
        k = (u @ self.w[f"{p}.k_proj.weight"].T).view(T, self.Hkv, self.hd).transpose(0, 1)
        v = (u @ self.w[f"{p}.v_proj.weight"].T).view(T, self.Hkv, self.hd).transpose(0, 1)
        q, k = self.rope(q, self.pos), self.rope(k, self.pos)
        kv = self.kv[i]
        kv[0, :, self.pos:self.pos + T] = k
        kv[1, :, self.pos:self.pos + T] = v
        n = self.pos + T
        rep = self.Hq // self.Hkv
        K = kv[0, :, :n].repeat_interleave(rep, dim=0)
        V = kv[1, :, :n].repeat_interleave(rep, dim=0)
        s = (q @ K.transpose(1, 2)) / math.sqrt(self.hd)  # (Hq, T, n)
        if T > 1:
            row = torch.arange(T, device=self.dev)[:, None] + self.pos
            s = s.masked_fill(torch.arange(n, device=self.dev)[None, :] > row, float("-inf"))
        o = (s.softmax(-1) @ V).transpose(0, 1).reshape(T, self.Hq * self.hd)
        return o @ self.w[f"{p}.o_proj.weight"].T

    def mamba_steps(self, i, u):
        """u (T, d): the Mamba-2 layer stepped through T tokens; returns (out (T, d), [(conv, ssm)] after each step)."""
        p = f"model.layers.{i}.mamba"
        w = self.w
        di, dx, H, P, N = self.d_inner, self.d_xb, self.H, self.P, self.N
        zxbcdt = u @ w[f"{p}.in_proj.weight"].T
        z, xbc_in, dt_raw = zxbcdt[:, :di], zxbcdt[:, di:2 * di + 2 * dx], zxbcdt[:, 2 * di + 2 * dx:]
        cw = w[f"{p}.conv1d.weight"].reshape(di + 2 * dx, 4)
        cb = w[f"{p}.conv1d.bias"]
        dt = F.softplus(dt_raw + w[f"{p}.dt_bias"])  # (T, H)
        A = -torch.exp(w[f"{p}.A_log"])
        Dskip = w[f"{p}.D"]
        rep = H // self.hkv_m
        conv, h = self.conv[i], self.ssm[i]
        ys, states = [], []
        for t in range(u.shape[0]):
            window = torch.cat([conv, xbc_in[t, :, None]], dim=1)  # (C, 4), oldest first
            conv = window[:, 1:]
            xbc = F.silu((window * cw).sum(-1) + cb)
            x = xbc[:dx].view(self.hkv_m, P).repeat_interleave(rep, dim=0)  # (H, P)
            B = xbc[dx:2 * dx].view(self.hkv_m, N).repeat_interleave(rep, dim=0)  # (H, N)
            C = xbc[2 * dx:].view(H, N)
            h = torch.exp(A * dt[t])[:, None, None] * h + (dt[t][:, None] * x)[:, :, None] * B[:, None, :]
            y = (h @ C[:, :, None])[..., 0] + Dskip[:, None] * x  # (H, P)
            ys.append(y.reshape(di))
            states.append((conv, h))
        self.conv[i], self.ssm[i] = conv, h
        y = torch.stack(ys)  # (T, d_inner)
        g = y * F.silu(z)
        gs = di // self.groups
        g = g.view(-1, self.groups, gs)
        g = (g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)).reshape(-1, di) * w[f"{p}.norm.weight"]
        return g @ w[f"{p}.out_proj.weight"].T, states

    def forward(self, ids):
        """Logits (T, V) of ids (T,) at positions pos..; advances pos; returns the Mamba layers' per-step states."""
        w = self.w
        x = w["model.embed_tokens.weight"][ids]
        steps = {}
        for i in range(self.L):
            p = f"model.layers.{i}"
            hN = self.norm(x, w[f"{p}.input_layernorm.weight"])
            if i in self.attn:
                x = x + self.attention(i, hN)
            else:
                o, steps[i] = self.mamba_steps(i, hN)
                x = x + o
            hN = self.norm(x, w[f"{p}.post_attention_layernorm.weight"])
            g = hN @ w[f"{p}.mlp.gate_proj.weight"].T
            up = hN @ w[f"{p}.mlp.up_proj.weight"].T
            x = x + (F.silu(g) * up) @ w[f"{p}.mlp.down_proj.weight"].T
        self.pos += ids.shape[0]
        return self.norm(x, w["model.norm.weight"]) @ self.lm_head.T, steps

    def keep(self, n_total, steps, kept):
        """Roll back to n_total positions, keeping step `kept` (0-based) of the last forward's Mamba
        states (each forward leaves its last step's; KV entries past n_total are overwritten later)."""
        self.pos = n_total
        for i, st in steps.items():
            self.conv[i], self.ssm[i] = st[kept]


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@torch.no_grad()
def plain(target, prompt, n):
    """Greedy tokens and seconds (from after the prompt's forward, as the toolkit times)."""
    target.reset()
    logits, _ = target.forward(torch.tensor(prompt, device=target.dev))
    tok = logits[-1].argmax()
    sync()
    t0 = time.perf_counter()
    out = [tok]
    for _ in range(n - 1):
        logits, _ = target.forward(tok.view(1))
        tok = logits[-1].argmax()
        out.append(tok)
    toks = torch.stack(out).tolist()
    return toks, time.perf_counter() - t0


@torch.no_grad()
def speculative(target, draft, prompt, n, K):
    """Greedy speculative decoding: tokens, seconds, rounds, accepted drafts.

    At a round's start `last` (the newest token, at position base = target.pos) is not yet in the
    target's cache; `pending` holds the tokens the draft has not seen, ending with `last`."""
    target.reset()
    draft.reset()
    ids = torch.tensor(prompt, device=target.dev)
    logits, _ = target.forward(ids)
    draft.forward(ids[:-1])
    last = logits[-1].argmax().view(1)
    pending = torch.cat([ids[-1:], last])
    sync()
    t0 = time.perf_counter()
    out = [int(last)]
    rounds = accepted = 0
    while len(out) < n:
        base = target.pos
        dl, _ = draft.forward(pending)
        d = [dl[-1].argmax().view(1)]
        for _ in range(K - 1):
            dl, _ = draft.forward(d[-1])
            d.append(dl[-1].argmax().view(1))
        dk = torch.cat(d)  # d_1..d_K; the draft has seen up to d_{K-1} (position base + K - 1)
        tl, steps = target.forward(torch.cat([last, dk]))
        tt = tl.argmax(-1)  # the target's token after each prefix [last, d_1..d_i]
        r = int((tt[:K] == dk).int().cumprod(0).sum())  # the one host sync of a round
        rounds += 1
        accepted += r
        target.keep(base + r + 1, steps, r)  # through d_r, with step r's Mamba states
        last = tt[r:r + 1]
        if r == K:
            pending = torch.cat([dk[K - 1:], last])
        else:
            draft.pos = base + r + 1
            pending = last
        out += dk[:r].tolist() + [int(last)]
    sync()
    return out[:n], time.perf_counter() - t0, rounds, accepted


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--dir", required=True)
    a.add_argument("--ks", default="1,2,3,4,5,6")
    a.add_argument("--reps", type=int, default=2)
    a.add_argument("--drafts", help="comma-separated draft names (default: all in DIR/drafts)")
    a.add_argument("--prompts", type=int, help="only the first N prompts")
    a.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = a.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    spec = json.load(open(f"{args.dir}/prompts.json"))
    prompts, want, n = spec["prompt_ids"], spec["toolkit_tokens"], spec["new_tokens"]
    if args.prompts:
        prompts, want = prompts[:args.prompts], want[:args.prompts]
    cap = max(len(p) for p in prompts) + n + 16
    target = Model(f"{args.dir}/target", args.device, cap)
    names = sorted(os.listdir(f"{args.dir}/drafts")) if os.path.isdir(f"{args.dir}/drafts") else []
    if args.drafts:
        names = [nm for nm in args.drafts.split(",") if nm in names]
    drafts = {nm: Model(f"{args.dir}/drafts/{nm}", args.device, cap) for nm in names}
    for nm, d in drafts.items():
        if len(d.attn) != d.L:
            raise ValueError(f"draft {nm}: only attention-only drafts roll back by position here")
    ks = [int(k) for k in args.ks.split(",")]

    def over_prompts(fn):
        best = None
        for _ in range(args.reps):
            res = [fn(p) for p in prompts]
            toks = sum(len(r[0]) for r in res)
            secs = sum(r[1] for r in res)
            if best is None or toks / secs > best[0]:
                best = (toks / secs, res)
        return best

    plain(target, prompts[0], 16)  # warm-up
    rate, res = over_prompts(lambda p: plain(target, p, n))
    ref = [r[0] for r in res]
    agree = []
    for mine, theirs in zip(ref, want):
        k = 0
        while k < min(len(mine), len(theirs)) and mine[k] == theirs[k]:
            k += 1
        agree.append(k)
    head = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device,
        "new_tokens": n,
        "prompts": len(prompts),
        "plain_tokens_per_s": rate,
        "toolkit_agreement_tokens": agree,
    }
    print(json.dumps(head), flush=True)
    for nm, d in drafts.items():
        speculative(target, d, prompts[0], 16, 2)  # warm-up
        for K in ks:
            r_rate, r_res = over_prompts(lambda p: speculative(target, d, p, n, K))
            rounds = sum(x[2] for x in r_res)
            acc = sum(x[3] for x in r_res)
            print(json.dumps({
                "draft": nm, "K": K, "tokens_per_s": r_rate, "speedup": r_rate / rate,
                "acceptance_rate": acc / (rounds * K), "mean_accepted": acc / rounds,
                "equals_plain": all(x[0] == y for x, y in zip(r_res, ref)),
            }), flush=True)


if __name__ == "__main__":
    main()
