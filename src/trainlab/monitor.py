"""Which way a monitored metric improves, from its name alone.

Kept free of torch so that reading run directories (reports, comparisons, sweeps' results)
can rank runs without importing the training stack.
"""

from __future__ import annotations

LOWER_IS_BETTER = ("loss", "ppl", "perplexity", "error")


def monitor_mode(metric: str) -> str:
    """'valid.loss' -> 'min', 'valid.acc1' -> 'max' (the last dotted part decides)."""
    return "min" if metric.split(".")[-1] in LOWER_IS_BETTER else "max"
