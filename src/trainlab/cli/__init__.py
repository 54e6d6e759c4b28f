"""Command line: wiring only. Each subcommand parses its arguments and calls the library.

``COMMANDS`` is the table of subcommands; each is an ``add_x(subparsers)`` (its arguments)
and ``cmd_x(args)`` (the library call and the printing of its result) in the module that
groups it with its neighbours. Dotted overrides (``optim.lr=3e-4``) are taken anywhere on the
line, after options too, for every subcommand that has an ``overrides`` argument.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import TrainlabError
from . import analysis, misc, ship, sweep, train, use
from ._common import is_override, setup_logging

# In the order `trainlab --help` lists them.
COMMANDS = (
    (train.add_train, train.cmd_train),
    (train.add_eval, train.cmd_eval),
    (train.add_lr_find, train.cmd_lr_find),
    (use.add_predict, use.cmd_predict),
    (use.add_generate, use.cmd_generate),
    (ship.add_export, ship.cmd_export),
    (ship.add_serve, ship.cmd_serve),
    (use.add_explain, use.cmd_explain),
    (use.add_embed, use.cmd_embed),
    (analysis.add_summary, analysis.cmd_summary),
    (analysis.add_report, analysis.cmd_report),
    (sweep.add_sweep, sweep.cmd_sweep),
    (sweep.add_lab, sweep.cmd_lab),
    (sweep.add_cv, sweep.cmd_cv),
    (sweep.add_bench, sweep.cmd_bench),
    (analysis.add_diff, analysis.cmd_diff),
    (misc.add_prepare, misc.cmd_prepare),
    (sweep.add_speedrun, sweep.cmd_speedrun),
    (misc.add_config, misc.cmd_config),
    (misc.add_list, misc.cmd_list),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab", description="Deep-learning labs from YAML recipes.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for add, cmd in COMMANDS:
        parser = add(sub)
        parser.set_defaults(func=cmd, subparser=parser)
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """argparse, plus overrides after options: argparse gives its positional ``overrides`` only the
    tokens before the first option, so the key=value tokens it leaves over are overrides too (an
    option's own values, like ``--grid optim.lr=0.1,0.2``, were already taken by the option)."""
    args, rest = build_parser().parse_known_args(argv)
    takes = hasattr(args, "overrides")
    unknown = [t for t in rest if not (takes and is_override(t))]
    if unknown:
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if takes:
        args.overrides = [*args.overrides, *(t for t in rest if is_override(t))]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.argv = ["trainlab", *argv]
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except TrainlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"\n{e or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `trainlab list keys | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
