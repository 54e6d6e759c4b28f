"""The report's training-dynamics section, from dynamics.jsonl (the opt-in ``dynamics`` callback)."""

from __future__ import annotations

import json
import math

from ._doc import Doc
from .rundata import RunData

DEAD_RATIO, EXPLODING_RATIO, SPIKE = 1e-6, 1e-1, 100.0


def read_dynamics(run: RunData) -> list[dict]:
    path = run.path / "dynamics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return out


def findings(records: list[dict]) -> list[str]:
    """Dead layers (gradient 0 or steps below 1e-6 of the weights in most measurements) and exploding
    ones (a step above 10% of the weights, or a gradient 100 x the layer's median)."""
    notes = []
    for layer in records[0]["grad_norm"]:
        g = [r["grad_norm"].get(layer, 0.0) for r in records]
        u = [r["update_ratio"].get(layer, 0.0) for r in records]
        dead = sum(1 for a, b in zip(g, u) if a == 0 or b < DEAD_RATIO)
        med = sorted(g)[len(g) // 2]
        if dead * 2 > len(records):
            notes.append(f"{layer}: dead or frozen in {dead} of {len(records)} measurements (gradient 0 or update "
                         f"below {DEAD_RATIO:g} of the weights)")
        worst = max(u)
        spikes = [r["step"] for r, a in zip(records, g) if med > 0 and a > SPIKE * med]
        if worst > EXPLODING_RATIO or spikes:
            notes.append(f"{layer}: exploding: largest update {worst:.3g} of the weights"
                         + (f", gradient spikes over {SPIKE:g} x its median at steps {spikes[:5]}" if spikes else ""))
    return notes


def dynamics_section(doc: Doc, run: RunData, level: int) -> None:
    records = read_dynamics(run)
    if not records:
        return
    doc.heading("Training dynamics (per layer)", level)
    every = records[1]["step"] - records[0]["step"] if len(records) > 1 else records[0]["step"]
    doc.para(f"{len(records)} measurements, every {every} steps, of {len(records[0]['grad_norm'])} layers "
             f"({run.path / 'dynamics.jsonl'}): the gradient norm and the update-to-weight ratio "
             f"|w_after - w_before| / |w_before| (around 1e-3 is healthy).", note=True)
    notes = findings(records)
    doc.para("Flagged: " + "; ".join(notes) + "." if notes else "No dead or exploding layers.", note=not notes)
    doc.image(f"{run.label}_dynamics.png", heatmaps(records), "gradient norm and update ratio per layer and step")


def heatmaps(records: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import _png

    names = list(records[0]["grad_norm"])
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(12, max(2.6, 0.28 * len(names) + 1.4)), sharey=True)
    for ax, key, title in ((axes[0], "grad_norm", "log10 gradient norm"),
                           (axes[1], "update_ratio", "log10 update / weight")):
        grid = [[math.log10(max(r[key].get(n, 0.0), 1e-12)) for r in records] for n in names]
        im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest",
                       extent=(steps[0], steps[-1], len(names) - 0.5, -0.5))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        fig.colorbar(im, ax=ax, fraction=0.04)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels([n[-28:] for n in names], fontsize=7)
    return _png(fig)
