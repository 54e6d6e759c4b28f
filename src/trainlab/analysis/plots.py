"""Report figures (matplotlib, Agg): curves per metric, learning rate, timing, confusion matrix.

Every function returns PNG bytes, so the HTML can embed them and the Markdown can write them
beside itself. Accuracies are drawn in percent; the y label names the unit.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .rundata import RunData  # noqa: E402

SPLIT_COLOURS = {"train": "#1f77b4", "valid": "#ff7f0e", "test": "#2ca02c"}
SPLIT_STYLES = {"train": "-", "valid": "--", "test": ":"}
LABELS = {"loss": "loss (cross-entropy, nats)", "acc1": "top-1 accuracy (%)",
          "acc5": "top-5 accuracy (%)", "ppl": "perplexity (lower is better)",
          "perplexity": "perplexity (lower is better)"}


def percent(metric: str) -> bool:
    return metric.startswith("acc")


def metric_label(metric: str) -> str:
    return LABELS.get(metric, metric)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def curve_figure(runs: list[RunData], metric: str) -> bytes:
    """One metric over epochs: splits of one run, or the runs overlaid (colour = run)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    scale = 100.0 if percent(metric) else 1.0
    single = len(runs) == 1
    colours = plt.get_cmap("tab10")
    for i, run in enumerate(runs):
        for split in ("train", "valid", "test"):
            xs, ys = run.series(split, metric)
            if not xs:
                continue
            colour = SPLIT_COLOURS[split] if single else colours(i % 10)
            label = split if single else f"{run.label} {split}"
            ax.plot(xs, [y * scale for y in ys], SPLIT_STYLES[split], color=colour, label=label,
                    marker="o" if len(xs) < 15 else None, ms=3)
        if run.final and metric in run.final and run.best_epoch:
            ax.plot([run.best_epoch], [run.final[metric] * scale], "*", ms=13,
                    color=SPLIT_COLOURS["test"] if single else colours(i % 10), mec="black",
                    label="test (best checkpoint)" if single else f"{run.label} test (best checkpoint)")
        if single:
            _mark_epochs(ax, run)
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"{metric}: {runs[0].label}" if single else f"{metric}: {len(runs)} runs")
    _epoch_axis(ax)
    _legend_outside(ax)
    return _png(fig)


def _legend_outside(ax) -> None:
    """Beside the plot, never over the curves."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def _mark_epochs(ax, run: RunData) -> None:
    if run.best_epoch:
        ax.axvline(run.best_epoch, color="#2ca02c", lw=1, alpha=0.7,
                   label=f"best epoch {run.best_epoch} ({run.monitor})")
    onset = run.overfitting_epoch()
    if onset:
        # a shaded span, not a line: it often starts at the best epoch, whose line would hide it
        ax.axvspan(onset, run.epochs, color="#d62728", alpha=0.08,
                   label=f"overfitting after epoch {onset} (valid loss rises, train loss falls)")


def lr_per_step(run: RunData) -> tuple[list[float], list[float]] | None:
    """(epoch position, learning rate) at every optimizer step, recomputed from the run's schedule
    (a function of the step count), so warmup and a decay to zero show; None for a plateau
    schedule (its cuts depend on the metric) or a run whose steps per epoch are unknown."""
    sched, optim = (run.config.get(k) or {} for k in ("schedule", "optim"))
    firsts = [r["step"] for r in run.records if r["split"] == "train" and r["epoch"] == 1]
    epochs = (run.config.get("train") or {}).get("epochs")
    if sched.get("name") in (None, "plateau") or not firsts or not epochs or not optim.get("lr"):
        return None
    import torch

    from ..config import ScheduleConfig
    from ..engine.schedules import Schedule

    spe, max_steps = firsts[0], (run.config.get("train") or {}).get("max_steps")
    total = min(spe * epochs, max_steps) if max_steps else spe * epochs
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=optim["lr"])
    schedule = Schedule(opt, ScheduleConfig(**sched), optim["lr"], spe, total)
    return [s / spe for s in range(total + 1)], [schedule.lr_at(s) for s in range(total + 1)]


def lr_figure(runs: list[RunData]) -> bytes:
    """The learning rate at every step (linear axis), or at each epoch end where it cannot be
    recomputed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for run in runs:
        steps = lr_per_step(run)
        if steps is not None:
            ax.plot(*steps, lw=1.5, label=f"{run.label} (per step)")
        else:
            xs, ys = run.series("train", "lr")
            ax.plot(xs, ys, marker="o" if len(xs) < 15 else None, ms=3, label=f"{run.label} (epoch ends)")
    ax.set_ylabel("learning rate")
    ax.set_ylim(bottom=0)
    ax.set_title("learning rate")
    _epoch_axis(ax)
    _legend_outside(ax)
    return _png(fig)


def timing_figure(runs: list[RunData]) -> bytes:
    """Seconds per training epoch and training throughput (samples/s, or tokens/s for language
    models), per epoch."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    units = sorted({run.unit for run in runs})
    for run in runs:
        xs, secs = run.series("train", "seconds")
        rx, rate = run.series("train", f"{run.unit}_per_s")
        a.plot(xs, secs, marker="o" if len(xs) < 15 else None, ms=3, label=run.label)
        b.plot(rx, rate, marker="o" if len(rx) < 15 else None, ms=3, label=run.label)
    unit = " or ".join(units)
    a.set_ylabel("training time per epoch (s)")
    b.set_ylabel(f"training throughput ({unit}/s)")
    a.set_ylim(bottom=0)
    b.set_ylim(bottom=0)
    for ax, title in ((a, "time per epoch"), (b, f"{unit} per second")):
        _epoch_axis(ax)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def confusion_figure(matrix: list[list[int]], class_names: list[str]) -> bytes:
    """Rows = true class, columns = predicted; colour = share of the true class, text = count."""
    import numpy as np

    cm = np.asarray(matrix, dtype=float)
    n = len(cm)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(max(4.5, 0.45 * n + 2), 14)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    from matplotlib.colors import PowerNorm

    # a power scale so that a 1% confusion is visible next to a 99% diagonal
    im = ax.imshow(share * 100, cmap="Blues", norm=PowerNorm(0.3, vmin=0, vmax=100))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of the true class")
    if n <= 30:
        ticks = list(range(n))
        ax.set_xticks(ticks, [class_names[i] for i in ticks], rotation=90 if n > 12 else 0, fontsize=8)
        ax.set_yticks(ticks, [class_names[i] for i in ticks], fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7 if n > 10 else 9,
                            color="white" if share[i, j] > 0.5 else "black")
    index = "" if n <= 30 else " (index in the per-class table)"
    ax.set_xlabel("predicted class" + index)
    ax.set_ylabel("true class" + index)
    ax.set_title("confusion matrix (test split, best checkpoint)")
    return _png(fig)
