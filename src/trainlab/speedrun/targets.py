"""The speedrun targets: which speed recipe, which test metric, what goal within what budget.

``TARGETS`` is the one table of targets (the CLI's ``trainlab speedrun`` choices are its keys).
Importing this module loads no torch, so building the command-line parser stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

# A wheel ships the repository's recipes/ as the package folder trainlab/recipes (see setup.py);
# a source checkout has them at the repository root, three levels above this file.
PACKAGED_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SOURCE_RECIPES = Path(__file__).resolve().parents[3] / "recipes"


@dataclass(frozen=True)
class Target:
    recipe: str          # file name of a speed recipe (recipes/ in the repository, trainlab/recipes installed)
    metric: str          # test metric the goal is on
    goal: float
    budget_s: float      # training seconds allowed on the reference machine (2 CPU cores)
    baseline: str        # key of baselines.BASELINES
    mode: str = "max"    # 'max': higher is better (accuracy); 'min': lower (perplexity)

    def met(self, value: float) -> bool:
        return value >= self.goal if self.mode == "max" else value <= self.goal


TARGETS = {
    "mnist": Target("speed-mnist.yaml", "acc1", 0.99, 10, "mnist"),
    "mnist-99.5": Target("speed-mnist-99.5.yaml", "acc1", 0.995, 90, "mnist"),
    "cifar10": Target("speed-cifar10.yaml", "acc1", 0.90, 900, "cifar10"),
    "ptb": Target("speed-ptb.yaml", "ppl", 100.0, 900, "ptb", mode="min"),
}


def recipe_path(target: Target) -> Path:
    """./recipes first (a user's edited copy wins), then the installed package's, then the checkout's."""
    bases = (Path("recipes"), PACKAGED_RECIPES, SOURCE_RECIPES)
    for base in bases:
        if (base / target.recipe).is_file():
            return base / target.recipe
    raise ConfigError(f"recipe {target.recipe} not found in {', '.join(map(str, bases))}")
