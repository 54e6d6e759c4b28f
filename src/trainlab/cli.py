"""Command line: wiring only. Each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import ConfigError, TrainlabError

LOG = logging.getLogger("trainlab")


class _TqdmHandler(logging.StreamHandler):
    """Log lines that do not tear the progress bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break training
            self.handleError(record)


def _setup_logging(verbose: bool) -> None:
    handler = _TqdmHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.handlers[:] = [handler]
    LOG.setLevel(logging.DEBUG if verbose else logging.INFO)
    LOG.propagate = False


def cmd_train(args) -> int:
    import os

    from . import api, config
    from .engine import distributed

    tc = config.load(args.recipe, args.overrides).train
    if tc.devices > 1 and not distributed.launched():  # train.devices=N: the same command under torchrun
        return distributed.relaunch(tc.devices, args.argv[1:], tc.device)
    run = api.train(args.recipe, *args.overrides, argv=args.argv)
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    last = {r["split"]: r for r in run.metrics}
    print(f"run directory: {run.dir}")
    if run.test:
        print(f"test (best checkpoint, epoch {last['test'].get('best_epoch')}): {_scalars(run.test)}")
    return 0


def _scalars(result: dict) -> str:
    """'loss 0.1234  acc1 0.9500 ...': the headline metrics a task reported, in its order."""
    skip = {"seconds", "samples", "tokens", "samples_per_s", "tokens_per_s", "best_epoch", "epoch", "step"}
    return "  ".join(f"{k} {v:.4f}" for k, v in result.items()
                     if k not in skip and isinstance(v, float))


def cmd_eval(args) -> int:
    from . import api

    result = api.evaluate(args.checkpoint, *args.overrides, split=args.split, out=args.out)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    unit = "tokens" if "tokens" in result else "samples"
    print(f"{args.checkpoint} on {result['split']} ({result[unit]:,} {unit}): {_scalars(result)}")
    if result.get("per_class"):
        print(f"{'class':>16} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        for r in result["per_class"]:
            print(f"{r['class'][:16]:>16} {r['precision']:9.4f} {r['recall']:9.4f} {r['f1']:9.4f} {r['support']:8d}")
    if "written_to" in result:
        print(f"written to {result['written_to']}")
    return 0


def cmd_predict(args) -> int:
    from . import api
    from .inference.predict import list_inputs, predict_files, write_predictions_csv

    model = api.load(args.checkpoint, device=args.device)
    rows = predict_files(model, list_inputs(model, args.inputs), topk=args.topk)
    for r in rows:
        print(f"{r['path']}: " + ", ".join(f"{name} {p:.3f}" for name, p in r["top"]))
    out = write_predictions_csv(rows, args.out or "predictions.csv")
    print(f"{len(rows)} prediction(s) written to {out}")
    return 0


def cmd_generate(args) -> int:
    import itertools

    from . import api
    from .data.vocab import Vocab
    from .inference.generate import generate, write_stream

    model = api.load(args.checkpoint, device=args.device)
    vocab = Vocab.from_meta(model.trainlab_meta)
    pieces = generate(model, vocab, args.words, prompt=args.prompt or "", temperature=args.temperature,
                      top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.prompt:
        pieces = itertools.chain([args.prompt], pieces)
    # stdout keeps the platform's encoding, so replace what it cannot show; the file is always UTF-8
    stdout = sys.stdout
    if hasattr(stdout, "reconfigure"):
        stdout.reconfigure(errors="replace")
    write_stream(pieces, args.out, None if args.quiet else lambda t: (stdout.write(t), stdout.flush()))
    if not args.quiet:
        stdout.write("\n")
    if args.out:
        print(f"written to {args.out} (UTF-8)", file=sys.stderr)
    return 0


def cmd_summary(args) -> int:
    from .analysis.summary import model_for_summary, parse_input, summarize_model, write_graph

    shape = parse_input(args.input) if args.input else None
    model, shape = model_for_summary(args.target, shape, args.num_classes)
    if args.dtype is None:  # a checkpoint knows its inputs (token ids for a language model)
        args.dtype = getattr(model, "trainlab_meta", {}).get("input_dtype", "float")
    summary = summarize_model(model, shape, args.dtype)
    print(summary.text(depth=args.depth))
    if args.diagram:
        from .analysis.diagram import draw

        print(f"block diagram written to {draw(summary.anatomy, args.diagram)}")
    if args.tensorboard:
        print(f"model graph written to {write_graph(model, shape, args.tensorboard, args.dtype)} "
              f"(tensorboard --logdir {args.tensorboard}, Graphs tab)")
    return 0


def cmd_report(args) -> int:
    from .analysis.report import write_report

    html, md = write_report(args.run_dirs, args.out)
    print(f"report written to {html} (self-contained) and {md}")
    return 0


def cmd_sweep(args) -> int:
    from . import sweep

    search = None
    if args.search:
        search = {"method": args.search, "trials": args.trials, "objective": args.objective,
                  "storage": args.storage, "study": args.study, "space": args.space}
        search = {k: v for k, v in search.items() if v is not None}
    sw = sweep.from_args(args.target, args.grid or (), args.overrides, args.seeds, args.out, search)
    if sw.search:
        from .sweep.search import run_search

        result = run_search(sw, args.parallel)
    else:
        result = sweep.run_sweep(sw, args.parallel)
    from .sweep.results import cell_table

    headers, rows = cell_table(result["cells"])
    print("  ".join(headers))
    for r in rows:
        print("  ".join("" if v is None else str(v) for v in r))
    print(f"results: {result['results']}" + (f"; report: {result['report']}" if result.get("report") else ""))
    running = [r["run"] for r in result["runs"] if r["status"] == "running"]  # other workers' trials
    if running:
        print(f"{len(running)} trial(s) still running in other workers: {', '.join(running)}")
    failed = [r["run"] for r in result["runs"] if r["status"] not in ("done", "pruned", "running")]
    if failed:
        print(f"{len(failed)} run(s) not finished: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}; "
              f"start the same command again to resume them", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args) -> int:
    from .sweep.devices import bench_devices, format_table

    rows, notes = bench_devices(args.recipe, args.overrides, args.steps)
    print(format_table(rows, notes))
    return 0


def cmd_diff(args) -> int:
    from .analysis.diff import diff_checkpoints

    result = diff_checkpoints(args.checkpoint_a, args.checkpoint_b, *args.overrides, split=args.split,
                              out=args.out, sheet_size=args.sheet)
    print(result.text())
    return 0


def cmd_prepare(args) -> int:
    from .data import prepare

    if args.what == "moving-digits":
        from .data.moving_digits import make_moving_digits

        dst = args.src  # `trainlab prepare moving-digits DST`: the one folder is the output
        counts = make_moving_digits(dst, mnist=args.mnist, seed=args.seed, train_per_class=args.train_per_class,
                                    test_per_class=args.test_per_class, frames=args.frames, digits=args.digits,
                                    classes=args.classes, codec=args.codec)
    elif args.what == "tiny-imagenet":
        dst = args.dst or str(args.src).rstrip("/") + "-folders"
        counts = prepare.prepare_tiny_imagenet(args.src, dst, mode=args.mode or "link")
    elif args.what == "catsdogs":
        if not args.dst:
            raise ConfigError("trainlab prepare catsdogs SRC DST: DST is required")
        dst = args.dst
        counts = prepare.prepare_catsdogs(args.src, dst, mode=args.mode or "copy")
    else:
        dst = args.dst or "."
        counts = {"files": len(prepare.extract_archive(args.src, dst))}
    print(f"{args.what}: {', '.join(f'{k} {v:,}' for k, v in counts.items())} -> {dst}")
    return 0


def cmd_speedrun(args) -> int:
    from .speedrun import speedrun

    summary = speedrun(args.target, args.runs, tuple(args.overrides), args.out, args.baseline,
                       args.baseline_seconds, args.first_seed)
    print(summary["text"])
    print(f"\nwritten to {summary['dir']}/speedrun.md and speedrun.json")
    return 0


def cmd_config(args) -> int:
    from . import config

    cfg = config.load(args.recipe, args.overrides)
    print(cfg.to_yaml(), end="")
    return 0


def cmd_list(args) -> int:
    from . import registry
    from .config import field_docs

    if args.what == "keys":
        for key, doc in field_docs():
            print(f"{key:32} {doc}")
        return 0
    reg = {"models": registry.MODELS, "datasets": registry.DATASETS, "optimizers": registry.OPTIMIZERS,
           "schedules": registry.SCHEDULES, "tasks": registry.TASKS}[args.what]
    for name in reg.names():
        doc = (reg.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:16} {doc[0] if doc else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab", description="Deep-learning labs from YAML recipes.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train from a recipe: trainlab train RECIPE.yaml [key=value ...]")
    t.add_argument("recipe")
    t.add_argument("overrides", nargs="*", help="dotted overrides such as optim.lr=3e-4 train.epochs=5")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint: trainlab eval CKPT [data.key=value ...]")
    e.add_argument("checkpoint")
    e.add_argument("overrides", nargs="*", help="data.* overrides, e.g. data.root=PATH")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--out", help="JSON file for the results (default: beside the checkpoint)")
    e.add_argument("--json", action="store_true", help="print the full JSON result")
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", help="top-k classes for an image or video file, or a folder of them")
    pr.add_argument("checkpoint")
    pr.add_argument("inputs", help="image file, video file (or frame folder), or a folder of them")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--out", help="CSV file (default: predictions.csv)")
    pr.add_argument("--device", default="cpu")
    pr.set_defaults(func=cmd_predict)

    g = sub.add_parser("generate", help="sample text from a language-model checkpoint (streamed)")
    g.add_argument("checkpoint")
    g.add_argument("--words", type=int, default=100, help="tokens to generate (characters for a char model)")
    g.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 is greedy")
    g.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with this mass")
    g.add_argument("--prompt", default=None, help="text to continue")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same text)")
    g.add_argument("--out", help="also write the text to this file (UTF-8)")
    g.add_argument("--device", default="cpu")
    g.add_argument("--quiet", action="store_true", help="do not echo the text to stdout")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("summary", help="per-layer output shapes, parameters, mult-adds and file sizes")
    s.add_argument("target", help="model name, recipe .yaml or checkpoint .pt")
    s.add_argument("--input", help="input size without batch, e.g. 1x28x28, 3x64x64, or 35 (tokens)")
    s.add_argument("--dtype", default=None, choices=["float", "long"],
                   help="long for token-id inputs (default: float, or what a checkpoint records)")
    s.add_argument("--num-classes", type=int, default=10)
    s.add_argument("--depth", type=int, default=4, help="deepest module level in the table")
    s.add_argument("--diagram", help="write a block diagram (.png or .svg) here")
    s.add_argument("--tensorboard", metavar="DIR", help="write the model graph to TensorBoard logs in DIR")
    s.set_defaults(func=cmd_summary)

    r = sub.add_parser("report", help="HTML + Markdown report of one run, or a comparison of several")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--out", help="HTML file (default: RUN_DIR/report.html for one run, report.html for several)")
    r.set_defaults(func=cmd_report)

    sw = sub.add_parser("sweep", help="grid or Optuna search of overrides: runs, results.csv, ranked report")
    sw.add_argument("target", help="recipe .yaml, or a sweep .yaml (recipe:, grid:, seeds:, search: ...)")
    sw.add_argument("overrides", nargs="*", help="fixed overrides for every run, e.g. train.epochs=5")
    sw.add_argument("--grid", nargs="+", metavar="KEY=V1,V2",
                    help="grid axes, e.g. optim.name=adam,nadam,sgd (an item with one value is a fixed override)")
    sw.add_argument("--seeds", help="seeds per cell: a count (3 -> 0,1,2) or a list (1,5,9)")
    sw.add_argument("--parallel", type=int, default=1, help="runs at a time (threads per run: cores // N)")
    sw.add_argument("--out", help="sweep folder (default: sweeps/<recipe name>); the same folder resumes")
    sw.add_argument("--search", choices=["optuna"], help="search instead of a grid (TPE + median pruner)")
    sw.add_argument("--trials", type=int, help="search: trials in total over all workers")
    sw.add_argument("--objective", help="search: metric to optimise, e.g. valid.acc1 (default: train.monitor)")
    sw.add_argument("--space", nargs="+", metavar="KEY=SPEC",
                    help="search space: optim.lr=loguniform(1e-4,1e-1) optim.name=[adam,sgd] train.epochs=int(2,5)")
    sw.add_argument("--storage", help="search: Optuna storage URL (default sqlite:///OUT/study.db); "
                                      "a shared PostgreSQL/MySQL URL lets several machines work on one study")
    sw.add_argument("--study", help="search: study name (default: the sweep folder's name)")
    sw.set_defaults(func=cmd_sweep)

    b = sub.add_parser("bench", help="time the same training steps on CPU, one GPU and every GPU count")
    b.add_argument("what", choices=["devices"])
    b.add_argument("recipe")
    b.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.batch_size=256")
    b.add_argument("--steps", type=int, default=50, help="timed optimizer steps per device count (after 3 warm-up)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("diff", help="where two checkpoints disagree: CSV, McNemar's test, contact sheet")
    d.add_argument("checkpoint_a")
    d.add_argument("checkpoint_b")
    d.add_argument("overrides", nargs="*", help="data.* overrides, e.g. data.root=PATH")
    d.add_argument("--split", default="test", choices=["train", "valid", "test"])
    d.add_argument("--out", help="output folder (default: diff-A-vs-B beside checkpoint A's run)")
    d.add_argument("--sheet", type=int, default=48, help="disagreements shown on the contact sheet")
    d.set_defaults(func=cmd_diff)

    pp = sub.add_parser("prepare", help="class-folder copies of tiny-imagenet / catsdogs, extract an archive "
                                        "safely, or generate the moving-digits video dataset")
    pp.add_argument("what", choices=["tiny-imagenet", "catsdogs", "extract", "moving-digits"])
    pp.add_argument("src", help="the original dataset folder (never modified) or archive; moving-digits: DST")
    pp.add_argument("dst", nargs="?", help="output folder")
    pp.add_argument("--mode", choices=["link", "symlink", "copy"], default=None,
                    help="hard links (default for tiny-imagenet), symlinks or copies (default for catsdogs)")
    md = pp.add_argument_group("moving-digits")
    md.add_argument("--mnist", default=None, help="MNIST IDX folder (default: the 5,000 embedded digits)")
    for flag, default in (("--seed", 0), ("--train-per-class", 300), ("--test-per-class", 100), ("--frames", 20)):
        md.add_argument(flag, type=int, default=default)
    md.add_argument("--digits", type=int, default=1, choices=[1, 2], help="digits per clip")
    md.add_argument("--classes", default="direction", choices=["direction", "direction_digit"])
    md.add_argument("--codec", default="ffv1", choices=["ffv1", "mpeg4", "libx264"],
                    help="ffv1: lossless .avi (default); mpeg4: lossy .avi like UCF101; libx264: .mp4")
    pp.set_defaults(func=cmd_prepare)

    sr = sub.add_parser("speedrun", help="time-to-accuracy of a speed recipe over N seeds, against the reference "
                                         "script run for the same time (or to the same goal)")
    sr.add_argument("target", choices=["mnist", "mnist-99.5", "cifar10", "ptb"])
    sr.add_argument("overrides", nargs="*", help="dotted overrides for the speed recipe, e.g. data.root=...")
    sr.add_argument("--runs", type=int, default=3, help="runs with seeds first_seed.. (default 3)")
    sr.add_argument("--first-seed", type=int, default=0)
    sr.add_argument("--baseline", choices=["same-time", "to-target", "none"], default="same-time",
                    help="train the reference for trainlab's mean time (default), until it reaches the goal, "
                         "or not at all")
    sr.add_argument("--baseline-seconds", type=float, default=None,
                    help="time budget of the baseline (same-time) or its cap (to-target; default 4x the target's)")
    sr.add_argument("--out", default=None, help="output folder (default runs/speedrun/TARGET-STAMP)")
    sr.set_defaults(func=cmd_speedrun)

    c = sub.add_parser("config", help="print a recipe's fully resolved config")
    c.add_argument("recipe")
    c.add_argument("overrides", nargs="*")
    c.set_defaults(func=cmd_config)

    ls = sub.add_parser("list", help="list registered models, datasets, optimizers, schedules or config keys")
    ls.add_argument("what", choices=["models", "datasets", "optimizers", "schedules", "tasks", "keys"])
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = ["trainlab", *argv]
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except TrainlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"\n{e or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
