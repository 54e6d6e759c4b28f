"""One report per lab: the question, the answer, the comparison table, McNemar's test between
configurations tested on the same samples, curves side by side, the deliverables the lab file
asks for, then each run in detail. Written to ``OUT/report.html`` (and its Markdown twin) from
the run directories alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from . import lab_deliverables as deliver
from . import plots
from .lab_table import COLUMNS, lab_rows, model_facts
from .multiples import lr_multiples, lr_ranges_differ, small_multiples
from .paired_tests import mcnemar_section
from .rundata import RunData

LOG = logging.getLogger("trainlab")


def _what(spec, sweep) -> str:
    """The recipe and overrides of one configuration, in words (what differs is what names it)."""
    recipe = (spec.recipe or sweep.recipe).get("run", {}).get("name", "recipe")
    own = {k: v for k, v in spec.overrides.items() if k != "train.seed" and sweep.overrides.get(k) != v}
    return f"{recipe}.yaml" + ("; " + ", ".join(f"{k}={_short(v)}" for k, v in own.items()) if own else "")


def _short(v) -> str:
    text = str(v)
    if text.endswith("/checkpoints/best.pt") and "/runs/" in text:  # a lab's run:NAME
        return "best.pt of " + Path(text).parent.parent.name.removeprefix("config=")
    return text if len(text) <= 48 else "…" + text[-45:]


def _groups(sweep, specs, lab) -> tuple[dict, dict, dict]:
    """configuration -> [(spec, run dir)] of finished runs, its description, and the helper runs."""
    groups, what, helpers = {}, {}, {}
    for s in specs:
        d = sweep.out / "runs" / s.name
        if not (d / "done.json").is_file() or not (d / "metrics.jsonl").is_file():
            continue
        cfg = s.labels.get("config") or " · ".join(str(v) for v in s.labels.values()) or s.cell
        if lab["roles"].get(cfg) == "helper":
            helpers[cfg] = d
            continue
        groups.setdefault(cfg, []).append(d)
        what[cfg] = _what(s, sweep)
    return groups, what, helpers


def _wall_minutes(dirs) -> float:
    total = 0.0
    for d in dirs:
        try:
            total += json.loads((d / "done.json").read_text(encoding="utf-8")).get("seconds", 0.0)
        except (OSError, ValueError):
            pass
    return total / 60


def write_lab_report(sweep, lab: dict, specs: list, argv: str | None = None) -> Path | None:
    from .report import write_report

    groups, what, helpers = _groups(sweep, specs, lab)
    if not groups:
        return None
    out = sweep.out / "lab"
    out.mkdir(parents=True, exist_ok=True)
    dirs = [d for ds in groups.values() for d in ds]
    by_dir = {d: c for c, ds in groups.items() for d in ds}
    single = {c: ds[0] for c, ds in groups.items()}
    all_dirs = {**single, **helpers}
    labels = [d.name.removeprefix("config=") for d in dirs]
    minutes = _wall_minutes([*dirs, *helpers.values()])

    def sections(doc, runs: list[RunData], models: dict):
        data = {}
        for r in runs:
            data.setdefault(by_dir[r.path], []).append(r)
        # parameters and file size from the summaries the report made of each checkpoint (loaded once)
        facts = {c: model_facts(models[rs[0].label][0]) for c, rs in data.items()}
        _head(doc, lab, sweep, minutes, argv)
        table = lab_rows(data, what, facts, lab["deliverables"].get("columns") or COLUMNS)
        rows = table.rows
        _answer(doc, table)
        doc.heading("Comparison", 2)
        doc.para(table.how, note=True)
        doc.table(table.headers, rows, fit=True)
        missing = [s.name for s in specs if not (sweep.out / "runs" / s.name / "done.json").is_file()]
        if missing:
            doc.para(f"Not finished, so not in the table: {', '.join(missing)} (each run's sweep.log in "
                     f"{sweep.out / 'runs'} says why; the same command resumes them).", note=True)
        if helpers:
            doc.para("Not ranked (runs the others build on): " + ", ".join(
                f"{c} ({_what(next(s for s in specs if s.labels.get('config') == c), sweep)})" for c in helpers)
                + ".", note=True)
        # one run per configuration (its first seed), best first, named as the table names them
        mcnemar_section(doc, [data[c][0] for c in table.configs], list(table.configs))
        _curves(doc, data, runs, lab["deliverables"].get("curves", "multiples"))
        _deliverables(doc, lab, all_dirs, table.configs[0] if rows else None, sweep.out, out)

    html, _ = write_report(dirs, sweep.out / "report.html", title=f"trainlab lab: {lab['title']}",
                           sections=sections, labels=labels)
    return html


def _head(doc, lab, sweep, minutes, argv) -> None:
    if lab.get("question"):
        doc.para(lab["question"])
    stated = f" (stated in the lab file: about {lab['minutes']} minutes on 2 CPU cores)" if lab.get("minutes") else ""
    doc.para(f"Variant: {lab['variant']}{stated}. The runs took {minutes:.1f} minutes of wall time in all. "
             f"Folder: {sweep.out.resolve()}. Starting the same command again skips finished runs and resumes "
             f"a cut-off one from its last.pt.", note=True)
    doc.pre(argv or f"trainlab lab {lab['file']}" + (" --quick" if lab["variant"] == "quick" else ""))


def _answer(doc, table) -> None:
    if not table.rows:
        return
    doc.heading("Answer", 2)
    at = {c: 2 + i for i, c in enumerate(table.cols)}
    v, t = at.get("valid"), at.get("test")
    best = table.rows[0]
    text = f"Choice: {best[1]}" + (f" — {table.headers[v]} {best[v]}" if v else "") + \
        (f"; {table.headers[t]} {best[t]}" if t else "")
    if len(table.rows) > 1:
        text += f". Runner-up: {table.rows[1][1]}" + (f" ({table.rows[1][v]})" if v else "")
        text += ". " + _noise(table.valid[0], table.valid[1], best[1], table.scale)
    doc.para(text + " Chosen on the validation split; the test figures are reported, not used to choose.")


def _noise(first: tuple, second: tuple, name: str, scale: float) -> str:
    """Whether the gap between the first two is beyond the spread over seeds (or unknown)."""
    (m1, s1), (m2, s2) = first, second
    if m1 is None or m2 is None:
        return ""
    gap = abs(m1 - m2) * scale
    if s1 is None or s2 is None:
        return (f"The gap is {gap:.2f}; with one run per configuration the spread over seeds is unknown "
                f"(`--seeds 3` runs each configuration three times and measures it).")
    spread = max(s1, s2) * scale
    verdict = "beyond" if gap > 2 * spread else "within"
    return (f"The gap ({gap:.2f}) is {verdict} the spread over seeds (2 x the larger std, {2 * spread:.2f}), "
            f"so {name} is {'the better' if verdict == 'beyond' else 'not clearly better than the runner-up'}.")


def _curves(doc, data: dict, runs: list[RunData], style: str) -> None:
    first = runs[0]
    key = first.monitor.split(".", 1)[1]
    doc.heading("Curves side by side", 2)
    doc.para("One panel per configuration, shared axes: train (solid), valid (dashed) and test (dotted) where "
             "the run evaluated the test split each epoch.", note=True)
    for metric in dict.fromkeys([key, "loss"]):
        if any(metric in r.metrics for r in runs):
            doc.image(f"multiples_{metric}.png", small_multiples(data, metric), f"{metric} per configuration")
    if style == "overlay" or len(data) <= 4:
        for metric in dict.fromkeys([key, "loss"]):
            doc.image(f"overlay_{metric}.png", plots.curve_figure([rs[0] for rs in data.values()], metric),
                      f"{metric}, configurations overlaid", half=True)
    firsts = [rs[0] for rs in data.values()]
    if any(r.series("train", "lr")[0] for r in firsts):
        if lr_ranges_differ(firsts):  # one linear axis would flatten the smaller rates to zero
            doc.image("lab_lr.png", lr_multiples(data), "learning rate per step, one panel per configuration")
        else:
            doc.image("lab_lr.png", plots.lr_figure(firsts), "learning rate per step")
    doc.image("lab_timing.png", plots.timing_figure(firsts), "time per epoch and throughput")


def _deliverables(doc, lab, run_dirs: dict, best: str | None, sweep_out: Path, out: Path) -> None:
    d = lab["deliverables"]
    base = Path(".")  # files are named relative to where trainlab runs, like data.root
    steps = (("diff", lambda v: deliver.diff_section(doc, v, run_dirs, out)),
             ("predict", lambda v: deliver.predict_section(doc, v, run_dirs, best, base, out)),
             ("layers", lambda v: deliver.layers_section(doc, v, run_dirs, out)),
             ("generate", lambda v: deliver.generate_section(doc, v, run_dirs, out)),
             ("devices", lambda v: deliver.devices_section(doc, v, run_dirs, out)),
             ("tensorboard", lambda v: deliver.tensorboard_section(doc, run_dirs, sweep_out)))
    for key, step in steps:
        if d.get(key):
            try:
                step(d[key])
            except Exception as e:  # noqa: BLE001 - the runs are the result; say what could not be made
                LOG.warning("lab deliverable %s not made: %s", key, e)
                doc.para(f"{key}: not made ({type(e).__name__}: {e})", note=True)
