"""Figures of the error-analysis section: the reliability diagram and per-class accuracy bars."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .plots import _png  # noqa: E402


def calibration(rows: list[dict], n_bins: int = 15) -> tuple[float, list[dict]]:
    """(ECE, bins) of the top-1 probability: torchmetrics' calibration error on (confidence, correct),
    which is the multiclass top-label ECE, and per bin its count, mean confidence and accuracy."""
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    conf = torch.tensor([r["prob_pred"] for r in rows], dtype=torch.float64).clamp(0, 1)
    hit = torch.tensor([r["correct"] for r in rows])
    ece = float(binary_calibration_error(conf, hit, n_bins=n_bins, norm="l1"))
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    bins = []
    for b in range(n_bins):
        lo, hi = float(edges[b]), float(edges[b + 1])
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        n = int(inside.sum())
        bins.append({"lo": lo, "hi": hi, "count": n,
                     "confidence": float(conf[inside].mean()) if n else None,
                     "accuracy": float(hit[inside].double().mean()) if n else None})
    return ece, bins


def reliability_figure(bins: list[dict], ece: float) -> bytes:
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(5.2, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["hi"] - bins[0]["lo"]
    used = [b for b in bins if b["count"]]
    ax.bar([b["lo"] for b in used], [b["accuracy"] for b in used], width=width, align="edge", color="#4c72b0",
           edgecolor="white", label="accuracy in the bin")
    ax.bar([b["lo"] for b in used], [abs(b["confidence"] - b["accuracy"]) for b in used],
           bottom=[min(b["accuracy"], b["confidence"]) for b in used], width=width, align="edge", fill=False,
           hatch="///", edgecolor="#cf222e", lw=0.6, label="gap to the bin's mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="#555555", lw=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability diagram (ECE {ece * 100:.2f}%)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    axn.bar([b["lo"] for b in bins], [b["count"] for b in bins], width=width, align="edge", color="#8c8c8c")
    axn.set_yscale("log")
    axn.set_ylabel("samples")
    axn.set_xlabel("top-1 probability (confidence)")
    axn.set_xlim(0, 1)
    return _png(fig)


def per_class_figure(rows: list[dict], names: list[str]) -> bytes:
    n = len(names)
    right, total = [0] * n, [0] * n
    for r in rows:
        total[r["target"]] += 1
        right[r["target"]] += r["correct"]
    acc = [100 * a / t if t else 0.0 for a, t in zip(right, total)]
    overall = 100 * sum(right) / max(sum(total), 1)
    many = n > 40  # Tiny-ImageNet: 200 bars, sorted, without names
    order = sorted(range(n), key=lambda i: acc[i]) if many else list(range(n))
    fig, ax = plt.subplots(figsize=(max(5.2, min(14, 0.35 * n + 2)), 3.8))
    ax.bar(range(n), [acc[i] for i in order], color=["#cf222e" if acc[i] < overall else "#4c72b0" for i in order])
    ax.axhline(overall, color="#333333", ls="--", lw=1, label=f"overall {overall:.2f}%")
    if many:
        ax.set_xlabel(f"{n} classes, sorted by accuracy")
        ax.set_xticks([])
    else:
        ax.set_xticks(range(n))
        ax.set_xticklabels([names[i].split(",")[0][:14] for i in order], rotation=45 if n > 8 else 0,
                           ha="right" if n > 8 else "center", fontsize=8)
    lo = min(acc) if acc else 0
    ax.set_ylim(max(0, lo - 10), 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy per class (red: below overall)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
