"""The reference baselines of ``trainlab speedrun``: each lab as its published reference script
trains it (``reference.py``), and pytorch/examples' word_language_model (``word_lm.py``, also
the baseline of benchmarks/lm_throughput.py). Nothing in this package is trainlab."""

from .reference import BASELINES, run_reference, torchvision_mnist

__all__ = ["BASELINES", "run_reference", "torchvision_mnist"]
