"""The chunked Mamba-2 SSD in plain PyTorch (intra-chunk block, chunk states, inter-chunk recurrence,
off-diagonal outputs), shared by bench/pytorch_ssm.py (the kernel's reference timing) and
bench/pytorch_steps.py (the hybrid's Mamba-2 layer). Written from the maths in
../shared/design/method.md §2 (not copied from the reference code).
"""
import torch
import torch.nn.functional as F


def segsum(a):
    # a (..., T) → (..., T, T) with S[i, j] = Σ_{k=j+1..i} a_k below the diagonal, −∞ above
    T = a.shape[-1]
    x = a[..., None].expand(*a.shape, T)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), -1)
    x = x.masked_fill(~mask, 0)
    s = torch.cumsum(x, dim=-2)
    return s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device)), -torch.inf)


def ssd_chunked(X, A, B, C, Q=64):
    # X (b, l, h, p); A (b, l, h); B, C (b, l, h, n) → Y (b, l, h, p), final state (b, h, p, n)
    b, l, h, pdim = X.shape
    c = l // Q
    X, B, C = (t.reshape(b, c, Q, *t.shape[2:]) for t in (X, B, C))
    A = A.reshape(b, c, Q, h).permute(0, 3, 1, 2)            # (b, h, c, Q)
    Acum = torch.cumsum(A, dim=-1)
    L = torch.exp(segsum(A))                                  # (b, h, c, Q, Q)
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, L, X)
    decay = torch.exp(Acum[..., -1:] - Acum)                  # (b, h, c, Q)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    chunk_decay = torch.exp(segsum(F.pad(Acum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    new_states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)
    states, final = new_states[:, :-1], new_states[:, -1]
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(Acum))
    return (Y_diag + Y_off).reshape(b, l, h, pdim), final
