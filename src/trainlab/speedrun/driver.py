"""The speedrun driver: N seeded runs of a target's recipe, then its baseline, then the summary
(``speedrun.json`` / ``speedrun.md``). The package docstring says what is timed and how."""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch

from .. import __version__, atomic
from ..errors import ConfigError
from ..tracking.env import cpu_model
from .baselines import run_reference
from .roofline import roofline_lines, run_roofline
from .targets import TARGETS, recipe_path

LOG = logging.getLogger("trainlab")


def _load() -> list | None:
    """1/5/15-minute load averages: on a shared machine they say how far to trust a timing."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def _roofline(run) -> Optional[dict]:
    """The run's roofline; a failure to measure it is a warning, never the loss of the runs' results."""
    try:
        return run_roofline(run, torch.get_num_threads())
    except Exception as e:  # noqa: BLE001 - the figure is extra; the speedrun's results must survive
        LOG.warning("speedrun: no roofline for %s (%s: %s)", run.dir, type(e).__name__, e)
        return None


def speedrun(name: str, runs: int = 1, overrides: tuple = (), out: Optional[str | Path] = None,
             baseline: str = "same-time", baseline_seconds: Optional[float] = None,
             first_seed: int = 0) -> dict:
    """Run target ``name`` ``runs`` times, then its baseline; returns (and writes) the summary."""
    from ..api import train
    from ..config import load as load_config

    if name not in TARGETS:
        raise ConfigError(f"unknown speedrun '{name}'; choose from {', '.join(TARGETS)}")
    if baseline not in ("same-time", "to-target", "none"):
        raise ConfigError(f"--baseline {baseline!r}: choose same-time, to-target or none")
    if runs < 1:
        raise ConfigError(f"--runs {runs}: a speedrun needs at least one run")
    target = TARGETS[name]
    recipe = recipe_path(target)
    out = Path(out) if out else Path("runs") / "speedrun" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds runs; a speedrun starts from scratch, choose another folder")
    load_before = _load()
    default_threads = torch.get_num_threads()  # the baseline runs on torch's default, as its script does
    results = []
    for seed in range(first_seed, first_seed + runs):
        run = train(str(recipe), *overrides, f"train.seed={seed}", f"run.dir={out / f'seed{seed}'}",
                    "run.progress=false")
        value = run.test.get(target.metric)
        if value is None:
            raise ConfigError(f"{recipe}: the final test has no '{target.metric}' (has {', '.join(run.test)})")
        results.append({"seed": seed, target.metric: value, **run.timing, "dir": str(run.dir),
                        "roofline": _roofline(run),
                        "met": target.met(value) and run.timing["fit_s"] <= target.budget_s})
        LOG.info("speedrun %s seed %d: test %s %.4f in %.1f s of training", name, seed, target.metric, value,
                 run.timing["fit_s"])
    cfg = load_config(str(recipe), list(overrides))
    summary = {
        "target": name, **asdict(target), "recipe": str(recipe), "overrides": list(overrides), "runs": results,
        "metric_stats": _stats([r[target.metric] for r in results]),
        "fit_s_stats": _stats([r["fit_s"] for r in results]),
        "data_s_stats": _stats([r["data_s"] for r in results]),
        "met": sum(r["met"] for r in results),
        "hardware": {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                     "trainlab": __version__, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                     "load_before": load_before, "load_after_runs": _load()},
    }
    if baseline != "none":
        seconds = baseline_seconds or summary["fit_s_stats"]["mean"]
        ref = run_reference(target.baseline, cfg.data.root,
                            seconds=seconds if baseline == "same-time" else None,
                            goal=target.goal if baseline == "to-target" else None, mode=target.mode,
                            max_seconds=baseline_seconds or max(4 * target.budget_s, 1800.0), threads=default_threads)
        summary["reference"] = {"mode": baseline, **ref}
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "speedrun.json", json.dumps(summary, indent=2))
    text = format_summary(summary)
    atomic.write_text(out / "speedrun.md", text + "\n")
    summary["text"], summary["dir"] = text, str(out)
    return summary


def format_summary(s: dict) -> str:
    m, better = s["metric"], (">=" if s["mode"] == "max" else "<=")
    ms, fs, ds = s["metric_stats"], s["fit_s_stats"], s["data_s_stats"]
    hw = s["hardware"]
    lines = [f"# speedrun {s['target']}: test {m} {better} {s['goal']} within {s['budget_s']:g} s of training",
             "", f"recipe {s['recipe']} {' '.join(s['overrides'])}".rstrip(),
             f"hardware: {hw['cpu']}{', ' + hw['cuda'] if hw['cuda'] else ''}; {hw['threads']} threads; "
             f"torch {hw['torch']}; trainlab {hw['trainlab']}; load average before {hw.get('load_before')}, "
             f"after the runs {hw.get('load_after_runs')}", "",
             f"| seed | test {m} | train s (first step to final test) | of which first step s | data s |",
             "|---|---|---|---|---|"]
    for r in s["runs"]:
        lines.append(f"| {r['seed']} | {r[m]:.4f} | {r['fit_s']:.1f} | {r['first_step_s']} | {r['data_s']:.1f} |")
    lines += [f"| mean ± std | {ms['mean']:.4f} ± {ms['std']:.4f} | {fs['mean']:.1f} ± {fs['std']:.1f} | | "
              f"{ds['mean']:.1f} |", "",
              f"goal met (test {m} {better} {s['goal']} and train <= {s['budget_s']:g} s): "
              f"{s['met']}/{len(s['runs'])} runs; {m} range {ms['min']:.4f}..{ms['max']:.4f}"]
    lines += roofline_lines(s["runs"])
    b = s.get("reference")
    if b:
        lines += ["", f"baseline: {b['describe']}"]
        if b["mode"] == "same-time":
            lines.append(f"in the same {b['train_s']:.1f} s ({b['steps']} steps, {b['epochs_completed']} full "
                         f"epochs) the reference reaches test {m} {b['metric']:.4f}; trainlab {ms['mean']:.4f}")
            if m.startswith("acc"):
                lines.append(f"error-rate ratio reference / trainlab: "
                             f"{(1 - b['metric']) / max(1 - ms['mean'], 1e-9):.2f}x")
            else:
                lines.append(f"{m} ratio reference / trainlab: {b['metric'] / ms['mean']:.2f}x")
        elif b["reached_goal_s"] is not None:
            lines.append(f"the reference reaches test {m} {b['metric']:.4f} {better} {s['goal']} after "
                         f"{b['reached_goal_s']:.1f} s ({b['epochs_completed']} epochs): "
                         f"time-to-target ratio {b['reached_goal_s'] / fs['mean']:.2f}x")
        else:
            lines.append(f"the reference did not reach {s['goal']} in {b['train_s']:.0f} s (test {m} "
                         f"{b['metric']:.4f}): time-to-target ratio > {b['train_s'] / fs['mean']:.1f}x")
    return "\n".join(lines)
