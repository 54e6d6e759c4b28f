"""Small multiples: one panel per configuration, on shared axes, so a grid of runs can be read
at a glance (the MNIST lab's 3 x 3 optimizers x schedules). Each panel draws the train, valid
and test curves of one metric; seeds of one configuration are drawn as their mean, with the
range over seeds shaded. One legend for the figure, outside the panels."""

from __future__ import annotations

import math
import statistics

from matplotlib.ticker import MaxNLocator

from .plots import SPLIT_COLOURS, SPLIT_STYLES, _png, metric_label, percent, plt
from .rundata import RunData


def _label_grid(axes, n: int, ylabel: str) -> None:
    """Hide the unused panels; epochs (integers) along the bottom row, the unit down the first column."""
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8.5)


def _mean_curve(runs: list[RunData], split: str, metric: str):
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for x, y in zip(*r.series(split, metric)):
            by_epoch.setdefault(x, []).append(y)
    xs = sorted(by_epoch)
    return xs, [statistics.fmean(by_epoch[x]) for x in xs], [min(by_epoch[x]) for x in xs], \
        [max(by_epoch[x]) for x in xs]


def small_multiples(groups: dict[str, list[RunData]], metric: str, cols: int = 3) -> bytes:
    """``groups``: panel title -> the runs (seeds) of that configuration, in the order to draw."""
    n = len(groups)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows + 0.4), sharex=True, sharey=True,
                             squeeze=False)
    scale = 100.0 if percent(metric) else 1.0
    drawn = {}
    for ax, (title, runs) in zip(axes.flat, groups.items()):
        for split in ("train", "valid", "test"):
            xs, mean, lo, hi = _mean_curve(runs, split, metric)
            if not xs:
                continue
            (line,) = ax.plot(xs, [y * scale for y in mean], SPLIT_STYLES[split], color=SPLIT_COLOURS[split],
                              marker="o" if len(xs) < 15 else None, ms=2.5, lw=1.4)
            if len(runs) > 1:
                ax.fill_between(xs, [y * scale for y in lo], [y * scale for y in hi], color=SPLIT_COLOURS[split],
                                alpha=0.15, lw=0)
            drawn[split] = line
        ax.set_title(title if len(title) <= 42 else title[:40] + "…", fontsize=8.5)
        ax.grid(alpha=0.3)
    _label_grid(axes, n, metric_label(metric))
    seeds = max(len(r) for r in groups.values())
    labels = [s + (f" (mean of {seeds} seeds, range shaded)" if seeds > 1 else "") for s in drawn]
    fig.legend(list(drawn.values()), labels, loc="upper center", ncol=3, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.7 * rows + 0.4)))
    return _png(fig)


def lr_ranges_differ(runs: list[RunData], factor: float = 10.0) -> bool:
    """True when the runs' peak learning rates differ by more than ``factor`` (one linear axis would
    flatten the smaller ones to zero)."""
    peaks = [max(r.series("train", "lr")[1] or [0.0]) for r in runs]
    peaks = [p for p in peaks if p > 0]
    return len(peaks) > 1 and max(peaks) / min(peaks) > factor


def lr_multiples(groups: dict[str, list[RunData]], cols: int = 3) -> bytes:
    """The learning rate at every step, one panel per configuration, each on its own linear axis."""
    from .plots import lr_per_step

    n = len(groups)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.3 * rows), sharex=True, squeeze=False)
    for ax, (title, runs) in zip(axes.flat, groups.items()):
        steps = lr_per_step(runs[0])
        xs, ys = steps if steps is not None else runs[0].series("train", "lr")
        ax.plot(xs, ys, lw=1.5, marker=None if steps is not None else "o", ms=3)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{title}" + ("" if steps is not None else " (epoch ends)"), fontsize=8.5)
        ax.grid(alpha=0.3)
    _label_grid(axes, n, "learning rate")
    fig.tight_layout()
    return _png(fig)
