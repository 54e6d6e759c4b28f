"""What the subcommands share: the overrides argument, logging that spares the progress bar,
and the one-line metric summary that train and eval print."""

from __future__ import annotations

import logging
import re
import sys

LOG = logging.getLogger("trainlab")

# A dotted override: section, then one or more keys, then '='. Option values such as
# `--grid optim.lr=0.1,0.2` also look like this, which is why main() only takes as overrides
# the tokens argparse left over, after every option has taken its own values.
OVERRIDE = re.compile(r"^[a-z_]+(\.[A-Za-z0-9_]+)+=")


def add_overrides(parser, help: str) -> None:
    """The positional `key=value ...` of a subcommand; main() also collects them after options."""
    parser.add_argument("overrides", nargs="*", help=f"{help} (anywhere on the line)")


def is_override(token: str) -> bool:
    return bool(OVERRIDE.match(token))


def scalars(result: dict) -> str:
    """'loss 0.1234  acc1 0.9500 ...': the headline metrics a task reported, in its order."""
    skip = {"seconds", "samples", "tokens", "samples_per_s", "tokens_per_s", "best_epoch", "epoch", "step"}
    return "  ".join(f"{k} {v:.4f}" for k, v in result.items()
                     if k not in skip and isinstance(v, float))


class _TqdmHandler(logging.StreamHandler):
    """Log lines that do not tear the progress bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break training
            self.handleError(record)


def setup_logging(verbose: bool) -> None:
    handler = _TqdmHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.handlers[:] = [handler]
    LOG.setLevel(logging.DEBUG if verbose else logging.INFO)
    LOG.propagate = False


# ---------------------------------------------------------------------- argument checks shared by subcommands
def _number(kind, low, text: str, inclusive: bool = True, high=None):
    import argparse

    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if value != value or (inclusive and value < low) or (not inclusive and value <= low) or \
            (high is not None and value > high):
        bound = f">= {low}" if inclusive else f"> {low}"
        raise argparse.ArgumentTypeError(f"{text} must be {bound}" + (f" and <= {high}" if high is not None else ""))
    return value


def positive_int(text: str) -> int:
    return _number(int, 1, text)


def nonneg_int(text: str) -> int:
    return _number(int, 0, text)


def nonneg_float(text: str) -> float:
    return _number(float, 0.0, text)


def probability(text: str) -> float:
    """In (0, 1]."""
    return _number(float, 0.0, text, inclusive=False, high=1.0)


def add_trust(parser) -> None:
    parser.add_argument("--trust-class-path", action="store_true",
                        help="allow importing the module a checkpoint's model.class_path names (loading a "
                             "checkpoint never imports code otherwise)")


def add_force(parser) -> None:
    parser.add_argument("--force", action="store_true", help="replace an existing output")


def add_checkpoint_options(parser) -> None:
    """--device, --trust-class-path and --force: the options of a command that loads a checkpoint and writes."""
    parser.add_argument("--device", default="cpu")
    add_trust(parser)
    add_force(parser)
