"""McNemar's test between runs of a multi-run report that were tested on the same samples.

Each run's predictions.csv (its best checkpoint on the test split, one row per sample) is keyed
by sample id. Runs are paired only where their test sets are the same samples with the same
labels; a run whose test set differs, or that has no predictions.csv, is named as not
comparable, never compared. Among the runs of one test set: every pair when there are few, else
the best run against each other one. Read from the run directories alone (no torch, no data,
no model): the report never re-evaluates.
"""

from __future__ import annotations

from itertools import combinations

from ..predictions import read_csv
from ._doc import Doc
from .rundata import RunData
from .stats import mcnemar

ALL_PAIRS_UP_TO = 4  # runs on one test set: every pair up to this many (6 pairs), else the best against each
MAX_PAIRS = 24
ALPHA = 0.05


def _results(run: RunData) -> dict[str, tuple[str, int]] | None:
    """sample id -> (true class name, 1 if predicted right), or None without per-sample results."""
    path = run.path / "predictions.csv"
    if not path.is_file():
        return None
    return {r["sample_id"]: (r["target_name"], r["correct"]) for r in read_csv(path)} or None


def paired_tests(runs: list[RunData], labels: list[str] | None = None) -> dict:
    """``runs`` best first. {'pairs': [...], 'apart': [(label, why)], 'tested': runs with predictions}."""
    labels = labels or [r.label for r in runs]
    results = [(name, _results(r)) for name, r in zip(labels, runs)]
    tested = [(name, res) for name, res in results if res is not None]
    apart = [(name, "no predictions.csv (per-sample test results) in its run directory") for name, res in results
             if res is None]
    groups: dict[tuple, list] = {}
    for name, res in tested:
        groups.setdefault(tuple(sorted((sid, t) for sid, (t, _) in res.items())), []).append((name, res))
    pairs = []
    for members in groups.values():
        if len(members) == 1:
            apart.append((members[0][0], _why_apart(members[0], tested[0]) if members[0] is not tested[0]
                          else "no other run was tested on the same samples"))
            continue
        chosen = combinations(members, 2) if len(members) <= ALL_PAIRS_UP_TO else \
            ((members[0], m) for m in members[1:])
        pairs += [_pair(a, b) for a, b in chosen]
    return {"pairs": pairs, "apart": apart, "tested": len(tested)}


def _why_apart(run: tuple, ref: tuple) -> str:
    (_, res), (ref_name, ref_res) = run, ref
    shared = res.keys() & ref_res.keys()
    if len(shared) == len(res) == len(ref_res):
        other = sum(res[s][0] != ref_res[s][0] for s in shared)
        return f"the same {len(res):,} samples as {ref_name}, but {other:,} of them carry other labels"
    return (f"its test set differs from {ref_name}'s: {len(res):,} samples against {len(ref_res):,}, "
            f"{len(shared):,} in common")


def _pair(a: tuple, b: tuple) -> dict:
    (name_a, res_a), (name_b, res_b) = a, b
    right_a = sum(res_a[s][1] and not res_b[s][1] for s in res_a)
    right_b = sum(res_b[s][1] and not res_a[s][1] for s in res_a)
    n = len(res_a)
    return {"run_a": name_a, "run_b": name_b, "samples": n, "acc_a": sum(v[1] for v in res_a.values()) / n,
            "acc_b": sum(v[1] for v in res_b.values()) / n, **mcnemar(right_a, right_b)}


def verdict(p: dict, comparisons: int = 1) -> str:
    """The pair's result in words, at the 5% level (and whether it holds with Bonferroni's correction)."""
    n = p["b"] + p["c"]
    if n == 0:
        return "identical right/wrong on every sample"
    if 2 / 2 ** n >= ALPHA:  # even all n disagreements on one side would not be significant
        return f"too few disagreements ({n}) for any verdict at the 5% level"
    if p["p_value"] >= ALPHA:
        return f"no difference beyond chance on these {p['samples']:,} samples"
    better = p["run_a"] if p["b"] > p["c"] else p["run_b"]
    text = f"{better} is more accurate beyond chance"
    if comparisons > 1:
        text += " (holds with Bonferroni)" if p["p_value"] < ALPHA / comparisons else \
            f" (not below Bonferroni's {ALPHA / comparisons:.2g})"
    return text


def mcnemar_section(doc: Doc, runs: list[RunData], labels: list[str] | None = None, level: int = 2) -> bool:
    """The section, where at least two runs have per-sample test results; False (nothing added) otherwise."""
    found = paired_tests(runs, labels)
    if found["tested"] < 2:
        return False
    pairs, k = found["pairs"][:MAX_PAIRS], len(found["pairs"])
    doc.heading("Paired test on the same test samples (McNemar)", level)
    doc.para("Two runs tested on the same samples differ only where one is right and the other wrong: b "
             "counts the samples run A gets right and run B wrong, c the reverse. McNemar's test asks whether "
             "b and c differ more than fair coin tosses would (exact binomial below 25 disagreements, else "
             "chi-square with continuity correction; two-sided, 5% level). Samples are matched by id from each "
             "run's predictions.csv (best checkpoint, test split)."
             + (f" {k} comparisons: by chance alone about {k} x 5% of them could read 'beyond chance'; "
                f"Bonferroni's stricter reading compares each p with {ALPHA / k:.2g}." if k > 1 else ""), note=True)
    if pairs:
        doc.table(["run A", "run B", "test samples", "A acc (%)", "B acc (%)", "b: A right, B wrong",
                   "c: A wrong, B right", "test", "p", "verdict"],
                  [[p["run_a"], p["run_b"], p["samples"], round(p["acc_a"] * 100, 2), round(p["acc_b"] * 100, 2),
                    p["b"], p["c"], p["method"], f"{p['p_value']:.3g}", verdict(p, k)] for p in pairs], fit=True)
    if k > len(pairs):
        doc.para(f"{k - len(pairs)} more pairs not shown.", note=True)
    if found["apart"]:
        doc.para("Not comparable, so not tested: " + "; ".join(f"{name} ({why})" for name, why in found["apart"])
                 + ".", note=True)
    return True
