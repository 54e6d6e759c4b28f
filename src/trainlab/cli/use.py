"""`trainlab predict`, `generate`, `explain` and `embed`: using a trained checkpoint (trainlab.inference)."""

from __future__ import annotations

import sys

from ..errors import ConfigError
from ..outputs import choose_output
from ._common import (add_checkpoint_options, add_force, add_overrides, add_trust, is_override, nonneg_float,
                      positive_int, probability)


def add_predict(sub):
    pr = sub.add_parser("predict", help="top-k classes for an image or video file, or a folder of them")
    pr.add_argument("checkpoint", help="a checkpoint (.pt) or an ONNX export (.onnx) of trainlab export")
    pr.add_argument("inputs", help="image file, video file (or frame folder), or a folder of them")
    pr.add_argument("--topk", type=positive_int, default=5)
    pr.add_argument("--out", help="CSV file (default: predictions.csv, or the next free predictions-N.csv)")
    add_checkpoint_options(pr)
    return pr


def cmd_predict(args) -> int:
    from .. import api
    from ..inference.predict import list_inputs, predict_files, write_predictions_csv

    out = choose_output(args.out, "predictions.csv", args.force)  # before the work: a refusal costs nothing
    if args.checkpoint.lower().endswith(".onnx"):
        rows = _predict_onnx(args)
    else:
        model = api.load(args.checkpoint, device=args.device, trust_class_path=args.trust_class_path)
        if model.trainlab_config.task.name == "language_model":
            raise ConfigError(f"{args.checkpoint} is a language model: trainlab predict classifies images and "
                              f"clips; use trainlab generate {args.checkpoint}")
        rows = predict_files(model, list_inputs(model, args.inputs), topk=args.topk)
    for r in rows:
        print(f"{r['path']}: " + ", ".join(f"{name} {p:.3f}" for name, p in r["top"]))
    out = write_predictions_csv(rows, out)
    print(f"{len(rows)} prediction(s) written to {out}")
    return 0


def _predict_onnx(args) -> list[dict]:
    """predict with an ONNX export (onnxruntime on the CPU)."""
    from ..inference.predict import list_exported_inputs, predict_exported
    from ..inference.served import load_served

    served = load_served(args.checkpoint)
    if served.is_lm:
        raise ConfigError(f"{args.checkpoint} is a language model: trainlab predict classifies images and clips")
    return predict_exported(served, list_exported_inputs(served, args.inputs), topk=args.topk)


def add_generate(sub):
    g = sub.add_parser("generate", help="sample text from a language-model checkpoint (streamed)")
    g.add_argument("checkpoint", help="a checkpoint (.pt) or an ONNX export (.onnx) of trainlab export")
    g.add_argument("--words", type=positive_int, default=100, help="tokens to generate (characters for a char model)")
    g.add_argument("--temperature", type=nonneg_float, default=1.0, help="softmax temperature; 0 is greedy")
    g.add_argument("--top-k", type=positive_int, default=None, help="sample among the k most likely tokens")
    g.add_argument("--top-p", type=probability, default=None, help="nucleus sampling: smallest set with this mass")
    g.add_argument("--prompt", default=None, help="text to continue")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same text)")
    g.add_argument("--out", help="also write the text to this file (UTF-8)")
    g.add_argument("--device", default="cpu")
    g.add_argument("--quiet", action="store_true", help="do not echo the text to stdout")
    add_trust(g)
    add_force(g)
    return g


def cmd_generate(args) -> int:
    import itertools

    from .. import api
    from ..data.vocab import Vocab
    from ..inference.generate import generate, write_stream

    if args.out:
        args.out = str(choose_output(args.out, "generated.txt", args.force))  # the name a folder --out is told to use
    if args.checkpoint.lower().endswith(".onnx"):  # an export of trainlab export: onnxruntime on the CPU
        from ..inference.served import load_served

        served = load_served(args.checkpoint)
        model, vocab = served.generator(), served.vocab()
    else:
        model = api.load(args.checkpoint, device=args.device, trust_class_path=args.trust_class_path)
        if model.trainlab_config.task.name != "language_model":
            raise ConfigError(f"{args.checkpoint} is a {model.trainlab_config.task.name} checkpoint: trainlab "
                              f"generate samples text from a language model; use trainlab predict for images and clips")
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


# inference.explain.METHODS and inference.explain_page.CLASS_OF (a test checks), not imported: the CLI starts
# without torch
EXPLAIN_METHODS = ["auto", "layercam", "ig", "rollout"]
EXPLAIN_CLASS_OF = ["pred", "true", "second"]


def add_explain(sub):
    e = sub.add_parser("explain", help="class maps (LayerCAM; a ViT: Integrated Gradients) and saliency of an image "
                                       "or clip classifier, surprisal and attention of a language model: PNGs + HTML")
    e.add_argument("checkpoint")
    e.add_argument("files", nargs="*", help="image or video files, or folders of them; data.* overrides "
                                             "(data.root=PATH when the run's data has moved) go anywhere on the line")
    e.add_argument("--top-losses", type=positive_int, metavar="N",
                   help="the N test samples with the highest loss (the run's predictions.csv); written into "
                        "the run's explain/ folder, which its report shows")
    e.add_argument("--split", choices=["train", "valid", "test"], help="the first --limit samples of a split")
    e.add_argument("--limit", type=positive_int, default=16, help="samples of --split (default 16)")
    e.add_argument("--prompt", help="a language model: surprisal per token and (transformer_lm) the attention "
                                    "of every layer and head over this text")
    e.add_argument("--method", default="auto", choices=EXPLAIN_METHODS,
                   help="the class map: auto (LayerCAM; a ViT: Integrated Gradients at its patch embedding), "
                        "layercam, ig (Integrated Gradients at the map's layer), rollout (a ViT's attention)")
    e.add_argument("--class-of", default="pred", choices=EXPLAIN_CLASS_OF,
                   help="whose maps: the predicted class (default), the true one, or the runner-up (where a class "
                        "decided by absent evidence was decided)")
    e.add_argument("--out", help="output folder (default: explain/, or RUN/explain for --top-losses)")
    e.set_defaults(overrides=[])  # data.* overrides: collected from FILES and after the options
    add_checkpoint_options(e)
    return e


def cmd_explain(args) -> int:
    from ..inference.explain_run import explain_checkpoint

    # key=value tokens before the first option land in FILES, those after it in overrides (main())
    files = [f for f in args.files if not is_override(f)]
    overrides = [*(f for f in args.files if is_override(f)), *args.overrides]
    page = explain_checkpoint(args.checkpoint, files, args.top_losses, args.split, args.limit, args.out,
                              args.force, args.device, args.trust_class_path, args.prompt, overrides,
                              args.method, args.class_of)
    print(f"maps written to {page.parent} (open {page})")
    return 0


def add_embed(sub):
    e = sub.add_parser("embed", help="penultimate-layer features of a split: cached in RUN/embeddings/, a t-SNE "
                                     "map for the report, TensorBoard's projector")
    e.add_argument("checkpoint")
    add_overrides(e, "data.* overrides, e.g. data.root=PATH")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--limit", type=positive_int, default=2000,
                   help="at most this many samples (a seeded random subset of a larger split; default 2000)")
    e.add_argument("--out", help="output folder (default: RUN/embeddings, which the report shows)")
    add_checkpoint_options(e)
    return e


def cmd_embed(args) -> int:
    from ..inference.embed import embed_checkpoint

    out, fresh = embed_checkpoint(args.checkpoint, args.split, args.limit, args.out, args.force, args.device,
                                  args.trust_class_path, args.overrides)
    print(f"embeddings {'written to' if fresh else 'already in'} {out} (tensorboard --logdir {out / 'projector'}; "
          f"trainlab report shows the map)")
    return 0
