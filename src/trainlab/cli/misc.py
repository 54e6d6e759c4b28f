"""`trainlab prepare`, `config` and `list`: datasets on disk, resolved recipes, registered names."""

from __future__ import annotations

from ..errors import ConfigError
from ._common import add_overrides, nonneg_int, positive_int


def add_prepare(sub):
    pp = sub.add_parser("prepare", help="class-folder copies of tiny-imagenet / catsdogs, extract an archive "
                                        "safely, or generate the moving-digits video dataset")
    pp.add_argument("what", choices=["tiny-imagenet", "catsdogs", "extract", "moving-digits"])
    pp.add_argument("src", help="the original dataset folder (never modified) or archive; moving-digits: DST")
    pp.add_argument("dst", nargs="?", help="output folder")
    pp.add_argument("--max-bytes", type=positive_int, default=None,
                    help="extract: the most it may write (default: 100x the archive, at least 1 GiB)")
    pp.add_argument("--mode", choices=["link", "symlink", "copy"], default=None,
                    help="hard links (default for tiny-imagenet), symlinks or copies (default for catsdogs)")
    md = pp.add_argument_group("moving-digits")
    md.add_argument("--mnist", default=None, help="MNIST IDX folder (default: the 5,000 embedded digits)")
    for flag, default in (("--seed", 0), ("--train-per-class", 300), ("--test-per-class", 100), ("--frames", 20)):
        md.add_argument(flag, type=nonneg_int if flag == "--seed" else positive_int, default=default)
    md.add_argument("--digits", type=int, default=1, choices=[1, 2], help="digits per clip")
    md.add_argument("--classes", default="direction", choices=["direction", "direction_digit"])
    md.add_argument("--codec", default="ffv1", choices=["ffv1", "mpeg4", "libx264"],
                    help="ffv1: lossless .avi (default); mpeg4: lossy .avi like UCF101; libx264: .mp4")
    return pp


def cmd_prepare(args) -> int:
    from ..data import prepare

    if args.what == "moving-digits":
        from ..data.moving_digits import make_moving_digits

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
        counts = {"files": len(prepare.extract_archive(args.src, dst, max_bytes=args.max_bytes))}
    print(f"{args.what}: {', '.join(f'{k} {v:,}' for k, v in counts.items())} -> {dst}")
    return 0


def add_config(sub):
    c = sub.add_parser("config", help="print a recipe's fully resolved config")
    c.add_argument("recipe")
    add_overrides(c, "dotted overrides, e.g. optim.lr=0.01")
    return c


def cmd_config(args) -> int:
    from .. import config

    cfg = config.load(args.recipe, args.overrides)
    print(cfg.to_yaml(), end="")
    return 0


def add_list(sub):
    ls = sub.add_parser("list", help="list registered models, datasets, optimizers, schedules or config keys")
    ls.add_argument("what", choices=["models", "datasets", "optimizers", "schedules", "tasks", "callbacks", "keys"])
    return ls


def cmd_list(args) -> int:
    from .. import registry
    from ..config import field_docs

    if args.what == "keys":
        lines = [f"{key:32} {doc}" for key, doc in field_docs()]
    else:
        reg = {"models": registry.MODELS, "datasets": registry.DATASETS, "optimizers": registry.OPTIMIZERS,
               "schedules": registry.SCHEDULES, "tasks": registry.TASKS, "callbacks": registry.CALLBACKS}[args.what]
        lines = [f"{name:20} {registry.describe(reg.get(name))}" for name in reg.names()]
        lines += [f"{prefix + 'NAME':20} {registry.describe(resolver)}" for prefix, resolver in reg.prefixes.items()]
    print("\n".join(lines))
    return 0
