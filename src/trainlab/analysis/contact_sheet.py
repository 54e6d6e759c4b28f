"""A contact sheet: disagreeing images in a grid, true / A / B labels under each one."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import atomic

RIGHT, WRONG = "#1a7f37", "#cf222e"
NAME_CHARS = 14  # what fits under a thumbnail at this font size, with "A: " and " (0.54)" beside it


def _fit(name: str) -> str:
    """A class name short enough for one line under a thumbnail: Tiny-ImageNet's 'Egyptian cat,
    tabby' style names keep their first synonym, then are cut with an ellipsis."""
    first = re.sub(r"\s*\(n\d{8}\)$", "", name)  # a WordNet id in brackets: the table beside names it
    first = first.split(",")[0].strip() or name
    return first if len(first) <= NAME_CHARS else first[:NAME_CHARS - 1] + "…"


def contact_sheet(rows: list[dict], data, path: Path, total: int, names: tuple[str, str] = ("A", "B"),
                  cols: int = 8) -> Path:
    """``rows``: diff rows (with 'position' in ``data``); ``total``: all disagreements, for the title;
    ``names``: what A and B are (checkpoint labels)."""
    n = len(rows)
    cols = min(cols, n)
    lines = math.ceil(n / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(1.55 * cols, 2.05 * lines + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, rows):
        img = data.images[r["position"]]  # uint8 [C, H, W], or a clip's [T, C, H, W]
        if img.dim() == 4:  # a clip: its first and last frame side by side, so the motion shows
            last = int(data.lengths[r["position"]]) - 1 if hasattr(data, "lengths") else len(img) - 1
            img = torch.cat([img[0], img[max(last, 0)]], dim=2)
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(img[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(_short(r["id"]), fontsize=6.5, color="#555555")
        for k, (text, ok) in enumerate((
                (f"true: {_fit(r['true'])}", None),
                (f"A: {_fit(r['pred_a'])} ({r['conf_a']:.2f})", r["correct_a"]),
                (f"B: {_fit(r['pred_b'])} ({r['conf_b']:.2f})", r["correct_b"]))):
            ax.text(0.5, -0.06 - 0.17 * k, text, transform=ax.transAxes, ha="center", va="top", fontsize=7,
                    color="black" if ok is None else RIGHT if ok else WRONG,
                    fontweight="bold" if ok is None else "normal")
    height = 2.05 * lines + 0.6
    fig.suptitle(f"first {n} of {total} disagreements: A = {names[0]}, B = {names[1]}\n"
                 f"(green = correct, red = wrong; the model's probability in brackets)", fontsize=10, y=1.0)
    fig.subplots_adjust(hspace=0.95, wspace=0.15, top=1 - 0.75 / height)
    atomic.savefig(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _short(text: str, width: int = 22) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]
