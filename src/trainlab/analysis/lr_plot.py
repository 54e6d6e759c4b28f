"""The figure of a learning-rate range test: loss against LR (log scale), the suggestion marked."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .plots import _png  # noqa: E402


def lr_find_figure(result: dict, title: str = "") -> bytes:
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    ax.plot(result["lrs"], result["losses"], color="#bbbbbb", lw=0.8, label="loss per step")
    ax.plot(result["lrs"], result["smoothed"], color="#1f77b4", lw=1.8, label="smoothed loss")
    ax.set_xscale("log")
    if result.get("suggestion"):
        s = result["suggestion"]
        ax.axvline(s, color="#cf222e", ls="--", lw=1.2, label=f"suggested LR {s:.2g} (steepest descent)")
    if result.get("min_loss_lr"):
        ax.axvline(result["min_loss_lr"], color="#888888", ls=":", lw=1, label=f"minimum at {result['min_loss_lr']:.2g}")
    finite = [v for v in result["smoothed"] if v == v]
    if finite:  # the divergence at the end would squash the curve
        lo, first = min(finite), finite[0]
        ax.set_ylim(lo - 0.05 * abs(first - lo) - 1e-3, max(first, lo) + 0.35 * abs(first - lo) + 1e-3)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(title or "learning-rate range test", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)
