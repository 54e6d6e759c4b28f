"""Several runs side by side: the config keys that differ, and a ranking on the monitor."""

from __future__ import annotations

from ..monitor import monitor_mode
from .rundata import RunData

# always different between runs and never the cause of a difference in results
IGNORED_KEYS = ("run.dir", "run.root", "run.progress", "train.resume", "train.device", "train.log_every_steps")


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (tree or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))  # an empty dict adds no key: absent and {} agree
        else:
            out[key] = v
    return out


def differing_keys(runs: list[RunData]) -> list[str]:
    flats = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flats))
    return [k for k in keys if k not in IGNORED_KEYS and len({repr(f.get(k)) for f in flats}) > 1]


def primary_metric(run: RunData) -> str | None:
    """The monitored metric if the test record has it, else the first non-loss metric."""
    key = run.monitor.split(".", 1)[-1]
    if run.final and key in run.final and key != "loss":
        return key
    for m in run.metrics:
        if m != "loss" and run.final and m in run.final:
            return m
    return "loss" if run.final and "loss" in run.final else None


def ranking(runs: list[RunData], params: dict[str, int | None]) -> tuple[list[str], list[list], str]:
    """(headers, rows best first, explanation). Ranked on the first run's monitor."""
    monitor = runs[0].monitor
    mode = monitor_mode(monitor)
    split, key = monitor.split(".", 1)

    def best(run):
        xs, ys = run.series(split, key)
        if not ys:
            return None
        return min(ys) if mode == "min" else max(ys)

    scored = [(best(r), r) for r in runs]
    missing = float("inf") if mode == "min" else float("-inf")
    scored.sort(key=lambda t: t[0] if t[0] is not None else missing, reverse=mode == "max")
    diff = differing_keys(runs)
    test_key = primary_metric(runs[0])
    pct = lambda m: m.split(".")[-1].startswith("acc")  # noqa: E731 - accuracies shown in percent
    scale = lambda m, v: None if v is None else round(v * 100, 2) if pct(m) else v  # noqa: E731
    unit = lambda m: " (%)" if pct(m) else ""  # noqa: E731
    headers = ["rank", "run", f"best {monitor}{unit(monitor)}", "best epoch",
               f"test {test_key}{unit(test_key or '')} (best checkpoint)", "epochs", "train time (s)",
               "parameters", *diff]
    rows = []
    for i, (value, r) in enumerate(scored, 1):
        flat = flatten(r.config)
        test = r.final.get(test_key) if r.final and test_key else None
        rows.append([i, r.label, scale(monitor, value), r.best_epoch, scale(test_key or "", test), r.epochs,
                     f"{r.train_seconds():,.1f}",
                     params.get(r.label), *[_short(flat.get(k)) for k in diff]])
    why = (f"Ranked on the best {monitor} over the epochs ({'lower' if mode == 'min' else 'higher'} is better); "
           f"the test column is the best checkpoint evaluated on the test split. "
           + (f"Config keys that differ: {', '.join(diff)}." if diff else "The runs' configs do not differ."))
    return headers, rows, why


def _short(v) -> str:
    text = "null" if v is None else str(v)
    return text if len(text) <= 40 else text[:37] + "..."
