"""A block diagram of the architecture with output shapes, drawn with matplotlib only.

One box per module at a chosen depth (the deepest at which the picture stays readable),
top to bottom in module order, with the output shape and parameter count beside it.
"""

from __future__ import annotations

from pathlib import Path

from .. import atomic
from .anatomy import Anatomy, Row

MAX_BOXES = 36


def diagram_rows(anatomy: Anatomy, max_boxes: int = MAX_BOXES) -> list[Row]:
    """The modules to draw, in the order the forward pass called them: at each depth the
    called modules of that depth plus shallower ones none of whose sub-modules was called (a ModuleList is never called itself); the
    deepest such set with at most ``max_boxes`` boxes."""
    called = [r for r in anatomy.rows if r.calls]
    deepest = max((r.depth for r in called), default=0)
    best = [anatomy.rows[0]]
    for depth in range(1, deepest + 1):
        rows = [r for r in called if 0 < r.depth <= depth and
                (r.depth == depth or not any(_inside(c, r) for c in called))]
        if len(rows) > max_boxes:
            break
        best = sorted(rows, key=lambda r: r.order) or best
    return best


def _inside(c: Row, parent: Row) -> bool:
    return c.name.startswith(parent.name + ".")


def _fmt(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def draw(anatomy: Anatomy, path: str | Path, max_boxes: int = MAX_BOXES) -> Path:
    """Write the diagram to ``path`` (.png or .svg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = diagram_rows(anatomy, max_boxes)
    n = len(rows) + 1  # the input box
    fig, ax = plt.subplots(figsize=(8.5, 0.62 * n + 0.9))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, n + 0.4)
    ax.axis("off")
    ax.set_title(f"{anatomy.model}: input [1, {', '.join(map(str, anatomy.input_shape))}], "
                 f"{anatomy.total_params:,} parameters", fontsize=11)
    boxes = [("input", f"[1, {', '.join(map(str, anatomy.input_shape))}]", "", "#e8e8e8")]
    for r in rows:
        colour = "#cfe2f3" if r.total_params else "#f3f3f3"
        if r.total_params and not r.total_trainable:
            colour = "#d9d9d9"  # frozen
        label = f"{r.name or anatomy.model}  ({r.kind})" + (f"  x{r.calls}" if r.calls > 1 else "")
        params = f"{_fmt(r.total_params)} params" if r.total_params else ""
        shape = f"[{', '.join(map(str, r.output))}]" if r.output else "-"
        boxes.append((label, shape, params, colour))
    for i, (label, shape, params, colour) in enumerate(boxes):
        y = n - 1 - i + 0.2
        ax.add_patch(FancyBboxPatch((0.2, y), 5.6, 0.5, boxstyle="round,pad=0.02", fc=colour, ec="#555555"))
        ax.text(0.35, y + 0.25, label, va="center", fontsize=8.5, family="monospace")
        ax.text(6.0, y + 0.25, shape, va="center", fontsize=8.5, family="monospace")
        ax.text(9.9, y + 0.25, params, va="center", ha="right", fontsize=8, color="#444444")
        if i:
            ax.annotate("", xy=(3.0, y + 0.52), xytext=(3.0, y + 0.98),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=0.8))
    ax.text(6.0, n + 0.15, "output shape", fontsize=8, color="#444444")
    ax.text(9.9, n + 0.15, "parameters", fontsize=8, color="#444444", ha="right")
    path = Path(path)
    atomic.savefig(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_png(anatomy: Anatomy, max_boxes: int = MAX_BOXES) -> bytes:
    """The diagram as PNG bytes (for reports)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return draw(anatomy, Path(d) / "model.png", max_boxes).read_bytes()
