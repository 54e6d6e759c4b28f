"""``trainlab speedrun``: time-to-accuracy of the speed recipes, against the reference way.

A speedrun trains an ordinary recipe (``recipes/speed-*.yaml``) N times with seeds 0..N-1 and
reports the mean and spread of the final test metric and of the training time. Time runs from
the first training step to the end of the final test evaluation (``timing.json``'s
``fit_s``, which includes the first step's warm-up or compilation, also shown alone); loading
and decoding the data is timed apart (``data_s``). Nothing is chosen on the test set: the
speed recipes have no per-epoch test evaluation and keep their final weights. Then the
reference baseline (``baselines/``) runs for the same time, or to the same goal, and the
comparison is printed and written to ``speedrun.json`` / ``speedrun.md``.
"""

from .targets import TARGETS, Target, recipe_path

__all__ = ["TARGETS", "Target", "recipe_path", "speedrun", "format_summary"]


def __getattr__(name):  # the driver imports torch; the targets table (the CLI's choices) does not
    if name in ("speedrun", "format_summary"):
        from . import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'trainlab.speedrun' has no attribute {name!r}")
