"""The report's embeddings section: the 2-D map of ``trainlab embed`` (RUN/embeddings/), read from its cache.

Each point is a test sample placed by t-SNE of its penultimate-layer features, coloured by its true class;
a mistake is drawn as a black-edged cross in the colour of its true class. Nothing is computed here but
the figure: the features, the map and TensorBoard's projector files were written by ``trainlab embed``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ._doc import Doc
from .rundata import RunData

LEGEND_MAX = 20  # more classes: colours from a continuous map, no legend
POINT_COLUMNS = ["index", "sample_id", "target", "target_name", "pred", "pred_name", "correct", "x", "y"]


def points_csv(rows: list[dict]) -> str:
    """points.csv's text: one row per sample (its split position, id, classes, map coordinates)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=POINT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "x": f"{r['x']:.5g}", "y": f"{r['y']:.5g}"})
    return buf.getvalue()


def read_points(folder: Path) -> list[dict]:
    """points.csv back as dicts with numbers."""
    with open(folder / "points.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("index", "target", "pred", "correct"):
            r[k] = int(r[k])
        r["x"], r["y"] = float(r["x"]), float(r["y"])
    return rows


def embedding_section(doc: Doc, run: RunData, level: int) -> bool:
    folder = run.path / "embeddings"
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        rows = read_points(folder)
    except (OSError, ValueError, KeyError):
        return False
    if not rows:
        return False
    wrong = sum(1 for r in rows if not r["correct"])
    doc.heading(f"Embeddings ({meta.get('split', 'test')} split, penultimate layer)", level)
    shown = f"{meta['samples']:,} of {meta['of']:,}" if meta.get("of", 0) > meta.get("samples", 0) else \
        f"all {meta.get('samples', len(rows)):,}"
    dims = meta.get("feature_dims")
    kept = (f"; reduced to {meta['stored_dims']} principal components keeping {meta['variance_kept']:.0%} of the "
            f"variance" if meta.get("stored_dims") != dims else "")
    doc.para(f"{shown} samples, {dims} features each{kept}, mapped to 2-D by {meta.get('method', 't-SNE')}; "
             f"colour: true class; crosses: the {wrong:,} mistakes. Distances between far-apart clusters mean "
             f"little in t-SNE; neighbourhoods do. 3-D PCA/t-SNE/UMAP with thumbnails: tensorboard --logdir "
             f"{(folder / 'projector').resolve()} (Projector tab).", note=True)
    doc.image(f"{run.label}_embedding.png", scatter_figure(rows, meta.get("class_names")),
              "t-SNE map of the penultimate features, coloured by true class, mistakes marked")
    return True


def scatter_figure(rows: list[dict], class_names: list[str] | None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import _png

    n_cls = max(max(r["target"], r["pred"]) for r in rows) + 1
    names = class_names or [str(i) for i in range(n_cls)]
    cmap = plt.get_cmap("tab10" if n_cls <= 10 else "tab20" if n_cls <= LEGEND_MAX else "turbo")
    colour = (lambda c: cmap(c)) if n_cls <= LEGEND_MAX else (lambda c: cmap(c / max(1, n_cls - 1)))
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 6))
    size = 10 if len(rows) > 1000 else 18
    ok = [r for r in rows if r["correct"]]
    bad = [r for r in rows if not r["correct"]]
    ax.scatter([r["x"] for r in ok], [r["y"] for r in ok], s=size, c=[colour(r["target"]) for r in ok],
               alpha=0.75, linewidths=0)
    if bad:  # on top, larger: a cross in the colour of the true class
        ax.scatter([r["x"] for r in bad], [r["y"] for r in bad], s=size * 4, marker="X",
                   c=[colour(r["target"]) for r in bad], edgecolors="black", linewidths=0.7)
    present = sorted({r["target"] for r in rows})
    handles = [Line2D([], [], marker="o", ls="", color=colour(c), label=names[c]) for c in present] \
        if n_cls <= LEGEND_MAX else []
    if bad:
        handles.append(Line2D([], [], marker="X", ls="", markerfacecolor="white", markeredgecolor="black",
                              markersize=8, label=f"mistake ({len(bad)})"))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of the penultimate-layer features", fontsize=10)
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
                  title="true class" if n_cls <= LEGEND_MAX else None, title_fontsize=8)
    fig.tight_layout()
    return _png(fig)
