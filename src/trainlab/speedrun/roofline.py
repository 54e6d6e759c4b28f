"""The roofline ratio of a speedrun: the FLOP/s its training step achieves against this machine's
peak, measured in the same run by a matrix-multiply microbenchmark at the same thread count.

achieved = mult-adds per sample (the summary's: conv, linear, recurrent, attention layers)
           x 2 FLOPs per mult-add x 3 (forward, and a backward about twice its cost) x samples/s;
peak     = 2 n^3 / t of the fastest n x n matrix product.
Memory-bound layers (batch norm, pooling, activations) count no mult-adds, so the ratio says how
much of the step's time does arithmetic at the machine's best rate.
"""

from __future__ import annotations

import statistics
import time
from typing import Optional

import torch

FLOPS_PER_MAC = 2
TRAIN_FACTOR = 3  # forward + backward (gradients of inputs and of weights)


def achieved_flops(macs_per_sample: float, samples_per_s: float) -> float:
    return FLOPS_PER_MAC * TRAIN_FACTOR * macs_per_sample * samples_per_s


def roofline(macs_per_sample: float, samples_per_s: float, peak_flops: float) -> dict:
    achieved = achieved_flops(macs_per_sample, samples_per_s)
    return {"macs_per_sample": macs_per_sample, "samples_per_s": samples_per_s, "achieved_gflops": achieved / 1e9,
            "peak_gflops": peak_flops / 1e9, "ratio": achieved / peak_flops}


def matmul_peak(threads: int, device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 1024,
                repeats: int = 5, products: int = 4) -> float:
    """FLOP/s of the fastest of ``repeats`` rounds of ``products`` n x n products on ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        best = float("inf")
        for _ in range(repeats + 1):  # the first round warms up
            if device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(products):
                a @ b
            if device != "cpu":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return FLOPS_PER_MAC * n ** 3 * products / best
    finally:
        torch.set_num_threads(before)


def run_roofline(run, threads: int) -> Optional[dict]:
    """The roofline of a finished run (best.pt's model and input shape, its training throughput)."""
    from ..analysis.anatomy import analyse
    from ..api import load
    from ..engine.checkpoint import load_checkpoint

    ckpt = run.best_checkpoint if run.best_checkpoint.exists() else run.dir / "checkpoints" / "last.pt"
    if not ckpt.exists():
        return None
    meta = load_checkpoint(ckpt, map_location="cpu").get("meta") or {}
    shape = meta.get("input_shape")
    rates = [r[k] for r in run.metrics if r["split"] == "train" for k in r if k.endswith("_per_s")]
    if not shape or not rates:
        return None
    macs = analyse(load(ckpt), shape, meta.get("input_dtype", "float")).macs  # an LM's input: token ids
    if any(k == "tokens_per_s" for r in run.metrics for k in r):  # an LM: mult-adds per token
        macs = macs / max(1, int(torch.tensor(shape).prod()))
    tc = run.config.train
    device = "cuda" if torch.cuda.is_available() and tc.device != "cpu" else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and tc.precision == "bf16" else torch.float32
    return roofline(macs, statistics.median(rates), matmul_peak(threads, device, dtype))


def roofline_lines(runs: list[dict]) -> list[str]:
    """The speedrun report's roofline line per run (runs without one are left out)."""
    out = []
    for r in runs:
        rf = r.get("roofline")
        if rf:
            out.append(f"roofline, seed {r['seed']}: {rf['macs_per_sample'] / 1e6:,.1f} M mult-adds x 2 x 3 x "
                       f"{rf['samples_per_s']:,.0f}/s = {rf['achieved_gflops']:,.1f} GFLOP/s achieved, against a "
                       f"matrix-multiply peak of {rf['peak_gflops']:,.1f} GFLOP/s measured in this run: "
                       f"{100 * rf['ratio']:.1f}% of the peak")
    return [""] + out if out else []
