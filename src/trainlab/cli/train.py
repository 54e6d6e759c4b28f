"""`trainlab train` and `trainlab eval`: a run from a recipe, and a checkpoint's metrics."""

from __future__ import annotations

import json
import sys

from ..errors import ConfigError
from ._common import add_force, add_overrides, add_trust, positive_int, scalars


def add_train(sub):
    t = sub.add_parser("train", help="train from a recipe: trainlab train RECIPE.yaml [key=value ...]")
    t.add_argument("recipe")
    add_overrides(t, "dotted overrides such as optim.lr=3e-4 train.epochs=5")
    t.add_argument("--report", action="store_true", help="write the run's report (report.html) when it ends "
                                                         "and print how to open it")
    return t


def cmd_train(args) -> int:
    import os

    from .. import api, config
    from ..engine import distributed

    tc = config.load(args.recipe, args.overrides).train
    if tc.devices > 1 and not distributed.launched():  # train.devices=N: the same command under torchrun
        return distributed.relaunch(tc.devices, args.argv[1:], tc.device)
    run = api.train(args.recipe, *args.overrides, argv=args.argv)
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    last = {r["split"]: r for r in run.metrics}
    print(f"run directory: {run.dir}")
    if run.test:
        named = last["test"].get("split_name")
        print(f"test{f' = {named}' if named else ''} ({last['test'].get('weights') or 'best checkpoint'}): "
              f"{scalars(run.test)}")
    if args.report:
        from ..analysis.report import write_report

        html, _ = write_report([run.dir])
        print(f"report: {html}\n  open it: python -m webbrowser file://{html.resolve()}")
    return 0


def add_eval(sub):
    e = sub.add_parser("eval", help="evaluate a checkpoint: trainlab eval CKPT [data.key=value ...]")
    e.add_argument("checkpoint")
    add_overrides(e, "data.* overrides, e.g. data.root=PATH")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--out", help="JSON file for the results (default: beside the checkpoint)")
    e.add_argument("--predictions", help="per-sample results: a classification's CSV, a language model's "
                   "per-token summary (default beside the JSON: predictions.csv or token_losses.json, or the "
                   "next free -N name)")
    e.add_argument("--json", action="store_true", help="print the full JSON result")
    add_trust(e)
    add_force(e)
    return e


def cmd_eval(args) -> int:
    from .. import api

    result = api.evaluate(args.checkpoint, *args.overrides, split=args.split, out=args.out,
                          trust_class_path=args.trust_class_path, force=args.force, predictions=args.predictions)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    unit = "tokens" if "tokens" in result else "samples"
    split = result["split"] + (f" = {result['split_name']}" if result.get("split_name") else "")
    print(f"{args.checkpoint} on {split} ({result[unit]:,} {unit}): {scalars(result)}")
    if result.get("per_class"):
        print(f"{'class':>16} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        for r in result["per_class"]:
            print(f"{r['class'][:16]:>16} {r['precision']:9.4f} {r['recall']:9.4f} {r['f1']:9.4f} {r['support']:8d}")
    if "written_to" in result:
        print(f"written to {result['written_to']}")
    if "predictions_written_to" in result:
        print(f"per-sample results written to {result['predictions_written_to']}")
    return 0


def add_lr_find(sub):
    f = sub.add_parser("lr-find", help="learning-rate range test of a recipe: a plot and a suggested optim.lr")
    f.add_argument("recipe")
    add_overrides(f, "config overrides, e.g. data.root=PATH")
    f.add_argument("--start", type=float, default=1e-7, help="first LR of the sweep (default 1e-7)")
    f.add_argument("--end", type=float, default=10.0, help="last LR of the sweep (default 10)")
    f.add_argument("--steps", type=positive_int, default=100, help="optimizer steps at most (default 100)")
    f.add_argument("--out", help="PNG of the curve (default lr_find.png, or the next free lr_find-N.png)")
    add_force(f)
    return f


def cmd_lr_find(args) -> int:
    from ..api import lr_find

    if not 0 < args.start < args.end:
        raise ConfigError(f"--start {args.start} and --end {args.end}: need 0 < start < end")
    result = lr_find(args.recipe, *args.overrides, start_lr=args.start, end_lr=args.end, steps=args.steps,
                     out=args.out, force=args.force)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)
    print(f"{len(result['lrs'])} steps in {result['seconds']:.1f} s; {result['stopped']}")
    if result["suggestion"] is None:
        print("no suggestion: the loss did not fall over the sweep (widen --start/--end or add --steps)")
    else:
        print(f"suggested optim.lr={result['suggestion']:.3g} (steepest descent of the smoothed loss; its minimum "
              f"at {result['min_loss_lr']:.3g})")
    print(f"plot written to {result['plot']}")
    return 0
