"""Whether a metric is better high or low, as the task that produced it declared.

A run directory records its task's declaration in ``task.json`` (``{"name", "metrics": {name:
"max"|"min"}, "primary_metric", "unit"}``); readers of run directories (reports, sweep results)
ask here, and import no torch. Runs written before task.json existed carry no declaration: for
those alone the built-in tasks' metric names are known (``LEGACY``), and an unknown name is an
error rather than a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .errors import DataError

# the built-in tasks' declarations before task.json existed (classification, video, language_model)
LEGACY = {"loss": "min", "acc1": "max", "acc5": "max", "ppl": "min"}


def read_task_record(run_dir: str | Path) -> Optional[dict]:
    path = Path(run_dir) / "task.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable task record ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise DataError(f"{path}: not a task record (no 'metrics' mapping)")
    return record


def direction(metric: str, declared: Optional[dict] = None, where: str = "") -> str:
    """'max' or 'min' for ``metric`` ('valid.acc1' or 'acc1') from a task's declared metrics."""
    name = metric.split(".", 1)[1] if "." in metric else metric
    table = declared if declared is not None else LEGACY
    if name not in table:
        source = f"the task record of {where}" if declared is not None and where else "the task's declaration"
        raise DataError(f"'{metric}': {source} does not say whether '{name}' is better high or low "
                        f"(declared: {', '.join(table)})")
    return table[name]


def run_direction(run_dir: str | Path, metric: str) -> str:
    record = read_task_record(run_dir)
    return direction(metric, record["metrics"] if record else None, str(run_dir))
