"""CUDA-event timing under sustained load, the PyTorch side of bench/timing.ts.

The GPU's clocks ramp up only after some time of continuous work, so each measurement runs the work
once (compilation, allocator), then in batches of k back-to-back calls until >= warm_ms of GPU time has
passed, then reports the median per-call time of `samples` batches (k chosen so a batch takes
>= sample_ms), and beside it `ms_single`: single calls with a synchronize after each. Work slower than
one second per call gets 3 samples of one call and no singles, to keep a run within minutes.
"""
import math
import torch

FULL = dict(warm_ms=1500.0, sample_ms=20.0, samples=10, singles=5)
QUICK = dict(warm_ms=100.0, sample_ms=5.0, samples=3, singles=2)


def _batch(fn, k):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(k):
        fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e)


def time_sustained(fn, warm_ms, sample_ms, samples, singles):
    """Median GPU milliseconds per call of fn after a sustained warm-up, with the details."""
    fn()
    torch.cuda.synchronize()
    per = _batch(fn, 1)
    warm, calls = per, 1
    slow = per > 1000.0
    choose = lambda ms: max(1, math.ceil(sample_ms / max(ms, 1e-3)))
    while warm < warm_ms:
        k = choose(per)
        t = _batch(fn, k)
        warm += t
        calls += k
        per = t / k
    k = 1 if slow else choose(per)
    n = 3 if slow else samples
    ts = sorted(_batch(fn, k) / k for _ in range(n))
    single = sorted(_batch(fn, 1) for _ in range(0 if slow else singles))
    return {
        "ms": ts[len(ts) // 2],
        "ms_min": ts[0],
        "ms_max": ts[-1],
        "ms_single": single[len(single) // 2] if single else None,
        "calls_per_sample": k,
        "samples": n,
        "warm_gpu_ms": warm,
        "warm_calls": calls,
    }
