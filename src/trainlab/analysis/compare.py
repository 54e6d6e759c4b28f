"""Several runs side by side: the config keys that differ, and a ranking on the monitor."""

from __future__ import annotations

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


GENERIC = ("name", "size", "root", "weights", "dir")  # keys that say little without their section


def labels_by_difference(runs: list[RunData], most: int = 3) -> list[str] | None:
    """Names for runs compared side by side, from what differs between them, never a timestamp:
    the recipe's name where recipes differ, then, among runs of one recipe, up to ``most`` keys that
    differ as ``key=value`` (the key's last part where that is unambiguous). None where two runs
    would share a name (their configs are the same): the folder names then tell them apart."""
    recipes = [(r.config.get("run") or {}).get("name", "run") for r in runs]
    out = list(recipes) if len(set(recipes)) > 1 else [""] * len(runs)
    for recipe in set(recipes):
        group = [i for i, x in enumerate(recipes) if x == recipe]
        if len(group) < 2:
            continue
        members = [runs[i] for i in group]
        diff = [k for k in differing_keys(members) if not k.startswith("run.")]
        tails = [k.rsplit(".", 1)[-1] for k in diff]
        short = {k: t if tails.count(t) == 1 and t not in GENERIC else k for k, t in zip(diff, tails)}
        for i, r in zip(group, members):
            f = flatten(r.config)
            bits = [f"{short[k]}={_short(f.get(k))}" for k in diff[:most]]
            bits += [f"+{len(diff) - most} more"] if len(diff) > most else []
            out[i] = ": ".join(x for x in (out[i], ", ".join(bits)) if x)
    return out if all(out) and len(set(out)) == len(out) else None


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
    mode = runs[0].direction(monitor)
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
