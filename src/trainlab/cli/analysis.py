"""`trainlab summary`, `report` and `diff`: reading models, run directories and checkpoints."""

from __future__ import annotations

from ..outputs import choose_output
from ._common import add_force, add_overrides, add_trust, nonneg_int, positive_int


def add_summary(sub):
    s = sub.add_parser("summary", help="per-layer output shapes, parameters, mult-adds and file sizes")
    s.add_argument("target", help="model name, recipe .yaml or checkpoint .pt")
    s.add_argument("--input", help="input size without batch, e.g. 1x28x28, 3x64x64, or 35 (tokens)")
    s.add_argument("--dtype", default=None, choices=["float", "long"],
                   help="long for token-id inputs (default: float, or what a checkpoint records)")
    s.add_argument("--num-classes", type=positive_int, default=10)
    s.add_argument("--depth", type=nonneg_int, default=4, help="deepest module level in the table")
    s.add_argument("--diagram", help="write a block diagram (.png or .svg) here")
    s.add_argument("--tensorboard", metavar="DIR", help="write the model graph to TensorBoard logs in DIR")
    add_trust(s)
    add_force(s)
    return s


def cmd_summary(args) -> int:
    from ..analysis.summary import model_for_summary, parse_input, summarize_model, write_graph

    shape = parse_input(args.input) if args.input else None
    model, shape = model_for_summary(args.target, shape, args.num_classes, trust_class_path=args.trust_class_path)
    if args.dtype is None:  # a checkpoint knows its inputs (token ids for a language model)
        args.dtype = getattr(model, "trainlab_meta", {}).get("input_dtype", "float")
    summary = summarize_model(model, shape, args.dtype)
    print(summary.text(depth=args.depth))
    if args.diagram:
        from ..analysis.diagram import draw

        path = choose_output(args.diagram, args.diagram, args.force, flag="--diagram")
        print(f"block diagram written to {draw(summary.anatomy, path)}")
    if args.tensorboard:
        print(f"model graph written to {write_graph(model, shape, args.tensorboard, args.dtype)} "
              f"(tensorboard --logdir {args.tensorboard}, Graphs tab)")
    return 0


def add_report(sub):
    r = sub.add_parser("report", help="HTML + Markdown report of one run, or a comparison of several")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--out", help="HTML file (default: RUN_DIR/report.html for one run, regenerated; "
                                 "report.html for several)")
    add_force(r)
    return r


def cmd_report(args) -> int:
    from ..analysis.report import write_report

    out = choose_output(args.out, "report.html", args.force) if args.out or len(args.run_dirs) > 1 else None
    html, md = write_report(args.run_dirs, out)
    print(f"report written to {html} (self-contained) and {md}")
    return 0


def add_diff(sub):
    d = sub.add_parser("diff", help="where two checkpoints disagree: CSV, McNemar's test, contact sheet")
    d.add_argument("checkpoint_a")
    d.add_argument("checkpoint_b")
    add_overrides(d, "data.* overrides, e.g. data.root=PATH")
    d.add_argument("--split", default="test", choices=["train", "valid", "test"])
    d.add_argument("--out", help="output folder (default: diff-A-vs-B beside checkpoint A's run)")
    d.add_argument("--sheet", type=nonneg_int, default=48, help="disagreements shown on the contact sheet")
    add_trust(d)
    add_force(d)
    return d


def cmd_diff(args) -> int:
    from ..analysis.diff import diff_checkpoints

    result = diff_checkpoints(args.checkpoint_a, args.checkpoint_b, *args.overrides, split=args.split,
                              out=args.out, sheet_size=args.sheet, trust_class_path=args.trust_class_path,
                              force=args.force)
    print(result.text())
    return 0
