"""A run directory read back for reports: config, environment, metrics, test details.

Metrics are discovered from metrics.jsonl rather than named here, so a language-model run
(loss, ppl) reports the same way as an image run (loss, acc1, acc5). Reading stops at the
run directory: nothing here imports data or needs the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..directions import direction, read_task_record
from ..errors import DataError

OVERFIT_RULE = ("flagged when validation loss stays above its minimum for 2 or more epochs and ends at least "
                "3% above it while training loss keeps falling")
BOOKKEEPING = {"time", "epoch", "step", "split", "seconds", "samples", "samples_per_s", "tokens", "tokens_per_s",
               "lr", "best_epoch",
               "checkpoint", "skipped_batches"}
SPLITS = ("train", "valid", "test")


@dataclass
class RunData:
    path: Path
    label: str
    config: dict
    env: dict
    command: str
    records: list[dict]               # per-epoch evaluations
    final: dict | None                # the test evaluation of the best checkpoint
    eval_test: dict | None
    metrics: list[str] = field(default_factory=list)
    task: dict | None = None          # task.json: the task's metrics and whether each is better high or low

    @classmethod
    def load(cls, path: str | Path, label: str | None = None) -> "RunData":
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: not a run directory (no such folder)")
        mfile = path / "metrics.jsonl"
        if not mfile.is_file():
            raise DataError(f"{path}: no metrics.jsonl; is this a trainlab run directory? "
                            f"(a run writes it after its first epoch)")
        rows = []
        for n, line in enumerate(mfile.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{mfile}, line {n}: not JSON ({e.msg})") from None
        final = next((r for r in reversed(rows) if r.get("split") == "test" and "checkpoint" in r), None)
        records = [r for r in rows if r is not final and r.get("split") in SPLITS]
        metrics = []
        for r in rows:
            metrics += [k for k, v in r.items() if k not in BOOKKEEPING and k not in metrics
                        and isinstance(v, (int, float)) and not isinstance(v, bool)]
        eval_test = _json(path / "eval_test.json")
        if eval_test and 0 < len(eval_test.get("per_class") or []) <= 5:
            metrics = [m for m in metrics if m != "acc5"]  # top-5 of 5 classes or fewer is always 100%
        return cls(path, label or path.name, _yaml(path / "config.yaml"), _json(path / "env.json") or {},
                   _text(path / "command.txt"), records, final, eval_test, metrics, read_task_record(path))

    # ------------------------------------------------------------------ derived facts
    @property
    def monitor(self) -> str:
        return (self.config.get("train") or {}).get("monitor", "valid.loss")

    @property
    def unit(self) -> str:
        """What the task counts: 'samples', or 'tokens' for a language model (task.json, else the records)."""
        if self.task and self.task.get("unit"):
            return self.task["unit"]
        return "tokens" if any("tokens_per_s" in r for r in self.records) else "samples"

    def direction(self, metric: str) -> str:
        """'max' or 'min': what this run's task declared for ``metric``."""
        return direction(metric, self.task["metrics"] if self.task else None, str(self.path))

    def series(self, split: str, metric: str) -> tuple[list[int], list[float]]:
        pts = [(r["epoch"], r[metric]) for r in self.records if r["split"] == split and metric in r]
        return [p[0] for p in pts], [p[1] for p in pts]

    @property
    def epochs(self) -> int:
        return max((r["epoch"] for r in self.records), default=0)

    @property
    def best_epoch(self) -> int | None:
        if self.final and self.final.get("best_epoch"):
            return self.final["best_epoch"]
        split, key = self.monitor.split(".", 1)
        xs, ys = self.series(split, key)
        if not ys:
            return None
        pick = min if self.direction(self.monitor) == "min" else max
        return xs[ys.index(pick(ys))]

    def best_value(self) -> float | None:
        split, key = self.monitor.split(".", 1)
        xs, ys = self.series(split, key)
        return ys[xs.index(self.best_epoch)] if self.best_epoch in xs else None

    def overfitting_epoch(self) -> int | None:
        """The epoch after which the model overfits (``OVERFIT_RULE``), or None."""
        found = self.overfitting()
        return found[0] if found else None

    def overfitting(self) -> tuple[int, float, int] | None:
        """(epoch of the valid-loss minimum, relative rise at the last epoch, epochs after it), when
        validation loss stays above that minimum for at least 2 epochs and ends at least 3% above it
        while training loss keeps falling: one higher epoch is within the noise of an evaluation."""
        vx, vy = self.series("valid", "loss")
        train = dict(zip(*self.series("train", "loss")))
        if len(vy) < 3:
            return None
        i = vy.index(min(vy))
        after, e, last = vy[i + 1:], vx[i], vx[-1]
        if len(after) < 2 or not all(v > vy[i] for v in after) or vy[i] <= 0:
            return None
        rise = after[-1] / vy[i] - 1
        if rise < 0.03 or e not in train or last not in train or not train[last] < train[e]:
            return None
        return e, rise, len(after)

    def train_seconds(self) -> float:
        return sum(r.get("seconds", 0.0) for r in self.records if r["split"] == "train")

    def wall_seconds(self) -> float | None:
        times = [r["time"] for r in self.records if "time" in r]
        first = self.records[0] if self.records else None
        if not times or first is None:
            return None
        return max(times) - min(times) + (first.get("seconds", 0.0) if first["split"] == "train" else 0.0)

    def checkpoint(self) -> Path | None:
        for name in ("best.pt", "last.pt"):
            p = self.path / "checkpoints" / name
            if p.is_file():
                return p
        return None


def _yaml(p: Path) -> dict:
    if not p.is_file():
        return {}
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise DataError(f"{p}: not valid YAML ({e})") from None


def _json(p: Path):
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e.msg})") from None


def _text(p: Path) -> str:
    return p.read_text(encoding="utf-8").strip() if p.is_file() else ""


def run_labels(paths: list[Path]) -> list[str]:
    """Short unique names: the folder name, with parents added while two runs share it."""
    paths = [Path(p).resolve() for p in paths]
    depth = 1
    while depth < 6:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
        depth += 1
    return [str(p) for p in paths]
