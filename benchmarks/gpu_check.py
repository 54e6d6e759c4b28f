"""The GPU check: everything that needs a GPU in one prepared run, each step time-boxed, one summary.

    bash benchmarks/gpu_check.sh --out DIR [--data DIR] [--wheels DIR]   # sets up its Python, then this
    python benchmarks/gpu_check.py --out DIR [--data DIR] [--dry-run] [--plan-only] [--only a,b] [--budget S]

Steps, in order of importance (a GPU machine may be lent only briefly): the environment, the
CUDA-marked tests, ``trainlab speedrun cifar10`` with airbench94's settings (compiled, bf16; the
first step, where compilation happens, shown apart), bf16 / fp16 autocast and ``train.compile``
on the MNIST and CIFAR speed recipes (short, ``train.max_steps``), DDP with nccl across every
GPU, ``trainlab bench devices`` and the image-throughput ratio against the reference pipeline.
A step that fails or runs out of time is recorded and the next one starts; steps left when
``--budget`` is spent are listed as not run. ``DIR/gpu_check_summary.md`` is rewritten after
every step (a killed check still leaves what it measured); ``DIR/gpu_check.log`` holds every output.
``--dry-run`` runs the same plan on CPU with tiny settings and generated data (compile off).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_check_plan import DEPENDENCIES, Context, plan  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    name: str
    what: str
    status: str = "planned"  # planned | ok | failed | timeout | skipped | not run
    seconds: float = 0.0
    note: str = ""
    figures: dict = field(default_factory=dict)
    commands: list = field(default_factory=list)
    tail: str = ""


def run_command(cmd: list[str], timeout: float, env: dict) -> tuple[int | None, str]:
    """(exit code or None on timeout, output). The command runs in its own process group, all of
    which (torchrun's workers, a loader's processes) is killed when it runs out of time."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 0.1))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out or ""


def run_step(step, ctx: Context, log) -> Result:
    res = Result(step.name, step.what, commands=[" ".join(c) for c in step.commands], note=step.note)
    if step.skip:
        res.status, res.note = "skipped", step.skip
        return res
    t0 = time.perf_counter()
    outputs = []
    for cmd in step.commands:
        left = min(step.timeout_s - (time.perf_counter() - t0), ctx.deadline - time.time())
        if left < 1:
            res.status = "timeout"
            break
        log.write(f"\n===== {step.name}: {' '.join(cmd)}\n")
        code, out = run_command(cmd, left, {**os.environ, **step.env})
        log.write(out)
        log.flush()
        outputs.append(out)
        if code is None:
            res.status, res.note = "timeout", f"stopped after {step.timeout_s:.0f} s (its time box) or the budget"
            break
        if code != 0:
            res.status, res.note = "failed", f"exit code {code}: {' '.join(cmd[:6])}"
            break
    else:
        res.status = "ok"
    res.seconds = round(time.perf_counter() - t0, 1)
    text = "\n".join(outputs)
    res.tail = "\n".join(text.strip().splitlines()[-(60 if res.status != "ok" else 20):])
    if step.figures is not None:
        try:
            res.figures = step.figures(text)
        except Exception as e:  # a step's figures missing is recorded, never fatal
            res.figures = {"figures": f"not read: {type(e).__name__}: {e}"}
    return res


def _figures_cell(figs: dict) -> str:
    return "; ".join(f"{k} {v}" for k, v in figs.items() if not isinstance(v, (list, dict)))[:400]


def write_summary(path: Path, results: list[Result], header: dict) -> None:
    lines = ["# trainlab GPU check", ""] + [f"- {k}: {v}" for k, v in header.items()] + [
        "", "| step | status | s | figures | note |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.status} | {r.seconds} | {_figures_cell(r.figures)} | {r.note} |")
    for r in results:
        lines += ["", f"## {r.name}: {r.status}", "", r.what, ""] + [f"    {c}" for c in r.commands]
        tables = {k: v for k, v in r.figures.items() if isinstance(v, (list, dict))}
        if tables:
            lines += ["", "```json", json.dumps(tables, indent=1), "```"]
        if r.tail:
            lines += ["", "```", r.tail, "```"]
    data = {"header": header, "steps": [vars(r) for r in results]}
    lines += ["", "## All of it as JSON", "", "```json", json.dumps(data, indent=1), "```", ""]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)


def missing_dependencies() -> list[str]:
    """The declared dependencies (pip names) whose module this Python cannot import."""
    import importlib.util

    return [pip for pip, module in DEPENDENCIES.items() if importlib.util.find_spec(module) is None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu-check", help="folder of the summary and the log")
    ap.add_argument("--data", default=os.environ.get("TRAINLAB_SHARED_DATA", str(REPO.parent / "shared" / "data")),
                    help="folder holding mnist/ and cifar10-jpg/ (default ../shared/data)")
    ap.add_argument("--work", default=None, help="scratch folder of the runs (default a fresh /tmp folder)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all steps together")
    ap.add_argument("--only", default=None, help="comma-separated step names")
    ap.add_argument("--dry-run", action="store_true", help="the same plan on CPU with tiny settings")
    ap.add_argument("--plan-only", action="store_true", help="write the plan, run nothing")
    ap.add_argument("--missing", action="store_true", help="print the declared dependencies not installed")
    args = ap.parse_args(argv)
    if args.missing:
        print(" ".join(missing_dependencies()))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or f"/tmp/trainlab-gpu-check-{os.getpid()}")
    ctx = Context(python=sys.executable, data=Path(args.data), work=work, dry=args.dry_run,
                  deadline=time.time() + args.budget)
    steps = plan(ctx)
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in {s.name for s in steps}]
        if unknown:
            ap.error(f"--only: unknown step(s) {', '.join(unknown)}; steps: {', '.join(s.name for s in steps)}")
        steps = [s for s in steps if s.name in wanted]
    header = {"mode": "dry run (CPU, tiny settings)" if ctx.dry else "GPU check", "started": time.strftime("%F %T %Z"),
              "python": sys.executable, "data": str(ctx.data), "work": str(work), "budget_s": args.budget,
              "setup": os.environ.get("GPU_CHECK_SETUP", "not reported (gpu_check.py run directly)")}
    summary = out / "gpu_check_summary.md"
    results = [Result(s.name, s.what, status="skipped" if s.skip else "planned", note=s.skip or s.note,
                      commands=[" ".join(c) for c in s.commands]) for s in steps]
    write_summary(summary, results, header)
    for line in (f"{r.name:28s} {r.status:8s} {' | '.join(r.commands)}" for r in results):
        print(line)
    if args.plan_only:
        return 0
    with open(out / "gpu_check.log", "a", encoding="utf-8") as log:
        for i, step in enumerate(steps):
            if time.time() > ctx.deadline - 1 and not step.skip:
                results[i].status, results[i].note = "not run", "the budget was spent"
            else:
                results[i] = run_step(step, ctx, log)
            print(f"{step.name}: {results[i].status} ({results[i].seconds} s) {_figures_cell(results[i].figures)}",
                  flush=True)
            write_summary(summary, results, header)
    header["finished"] = time.strftime("%F %T %Z")
    write_summary(summary, results, header)
    print(f"summary: {summary}")
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
