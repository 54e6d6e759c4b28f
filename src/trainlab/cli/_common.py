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
