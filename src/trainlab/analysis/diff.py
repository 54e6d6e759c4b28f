"""``trainlab diff CKPT_A CKPT_B``: where two checkpoints disagree on a split, keyed by sample id.

Both checkpoints predict the same split (checkpoint A's data config plus data.* overrides),
each with its own normalisation statistics. Predictions are joined on the sample id (a file
path or 'mnist:test:17'), never on loader position, and written as CSV, a JSON summary with
McNemar's test, and a contact sheet of the first disagreements.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic
from .. import config as config_mod
from ..errors import ConfigError, DataError
from .stats import mcnemar


@dataclass
class DiffResult:
    a: str
    b: str
    split: str
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @property
    def disagreements(self) -> list[dict]:
        return [r for r in self.rows if not r["agree"]]

    def text(self) -> str:
        s, m = self.summary, self.summary["mcnemar"]
        lines = [f"A = {self.a}", f"B = {self.b}",
                 f"{self.split} split, {s['samples']:,} samples: agreement {s['agreement'] * 100:.2f}% "
                 f"({s['disagreements']:,} disagreements)",
                 f"accuracy A {s['accuracy_a'] * 100:.2f}%   B {s['accuracy_b'] * 100:.2f}%",
                 f"A right, B wrong: {m['b']}   A wrong, B right: {m['c']}   both wrong: {s['both_wrong']}",
                 f"McNemar ({m['method']}): statistic {m['statistic']:.3f}, p = {m['p_value']:.4g}"
                 + ("  (the accuracies differ at the 5% level)" if m["p_value"] < 0.05 else "")]
        lines += [f"{k}: {v}" for k, v in self.files.items()]
        return "\n".join(lines)


def _predict(model, cfg, device, split: str, path) -> tuple[dict[str, tuple[int, float, int]], object]:
    """(sample id -> (predicted class, its probability, true class), the data bundle), with the data
    built through the one build path from the checkpoint's own training statistics."""
    from ..build import build_parts
    from ..engine.evaluate import predict

    try:
        parts = build_parts(cfg, device, model=model, data_meta=model.trainlab_meta)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    if split not in parts.loaders:
        raise ConfigError(f"--split {split}: the data has no such split (have {', '.join(parts.loaders)})")
    bundle = parts.bundle
    if model.class_names != bundle.class_names:
        raise DataError(f"{path}: its classes {model.class_names[:5]}... differ from the data's "
                        f"{bundle.class_names[:5]}... (data.name={cfg.data.name})")
    p = predict(model.to(device), parts.task, parts.loaders[split], device, cfg.train.precision)
    data = bundle.splits[split]
    conf, pred = p["probs"].max(1)
    return {data.sample_id(i): (y, c, t) for i, y, c, t in
            zip(p["index"].tolist(), pred.tolist(), conf.tolist(), p["target"].tolist())}, bundle


def _label(ckpt: Path) -> str:
    ckpt = Path(ckpt)
    run = ckpt.parent.parent.name if ckpt.parent.name == "checkpoints" else ckpt.parent.name
    return f"{run}_{ckpt.stem}"


def diff_checkpoints(a, b, *overrides: str, split: str = "test", out=None, sheet_size: int = 48,
                     trust_class_path: bool = False, force: bool = False) -> DiffResult:
    from ..api import load
    from ..engine.runtime import setup_runtime
    from ..outputs import choose_output

    out = choose_output(out, f"diff_{_label(a)}_vs_{_label(b)}", force, is_dir=True)  # checked before the work
    bad = [o for o in overrides if not o.split("=", 1)[0].startswith(("data.", "train.device", "train.precision"))]
    if bad:
        raise ConfigError(f"diff accepts data.*, train.device and train.precision overrides, not: {', '.join(bad)}")
    model_a, model_b = load(a, trust_class_path=trust_class_path), load(b, trust_class_path=trust_class_path)
    for path, model in ((a, model_a), (b, model_b)):
        task = model.trainlab_config.task.name
        if task not in ("classification", "video"):
            raise ConfigError(f"{path}: a {task} checkpoint; trainlab diff compares the predictions of two "
                              f"classifiers (image or video) on the same samples")
    cfg = config_mod.load(model_a.trainlab_config, list(overrides))
    device = setup_runtime(cfg, distributed_ok=False)
    (pa, bundle), (pb, _) = _predict(model_a, cfg, device, split, a), _predict(model_b, cfg, device, split, b)
    data, names = bundle.splits[split], bundle.class_names
    rows = []
    for i in range(len(data)):  # split order, so "the first N disagreements" is stable
        sid = data.sample_id(i)
        (ya, ca, t), (yb, cb, _) = pa[sid], pb[sid]
        rows.append({"id": sid, "position": i, "true": names[t], "pred_a": names[ya], "conf_a": ca,
                     "pred_b": names[yb], "conf_b": cb, "agree": ya == yb,
                     "correct_a": ya == t, "correct_b": yb == t})
    result = DiffResult(str(a), str(b), split, rows, _summary(rows))
    out.mkdir(parents=True, exist_ok=True)
    result.files["predictions"] = _write_csv(rows, out / f"predictions_{split}.csv")
    # the lab's deliverable: the samples the two disagree on, alone, by file name
    result.files["disagreements"] = _write_csv(result.disagreements, out / f"disagreements_{split}.csv")
    result.files["summary"] = out / "summary.json"
    atomic.write_text(result.files["summary"], json.dumps({"a": str(a), "b": str(b), "split": split, **result.summary},
                                                  indent=2), encoding="utf-8")
    if result.disagreements and sheet_size > 0:
        from .contact_sheet import contact_sheet

        result.files["contact_sheet"] = contact_sheet(result.disagreements[:sheet_size], data,
                                                      out / "disagreements.png", len(result.disagreements),
                                                      (_label(a), _label(b)))
    return result


def _summary(rows: list[dict]) -> dict:
    n = len(rows)
    b = sum(r["correct_a"] and not r["correct_b"] for r in rows)
    c = sum(r["correct_b"] and not r["correct_a"] for r in rows)
    return {"samples": n, "agreement": sum(r["agree"] for r in rows) / n,
            "disagreements": sum(not r["agree"] for r in rows),
            "accuracy_a": sum(r["correct_a"] for r in rows) / n, "accuracy_b": sum(r["correct_b"] for r in rows) / n,
            "both_wrong": sum(not r["correct_a"] and not r["correct_b"] for r in rows), "mcnemar": mcnemar(b, c)}


def _write_csv(rows: list[dict], path: Path) -> Path:
    with atomic.atomic_open(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "true", "pred_a", "conf_a", "pred_b", "conf_b", "agree", "correct_a", "correct_b"])
        for r in rows:
            w.writerow([r["id"], r["true"], r["pred_a"], f"{r['conf_a']:.4f}", r["pred_b"], f"{r['conf_b']:.4f}",
                        int(r["agree"]), int(r["correct_a"]), int(r["correct_b"])])
    return path
