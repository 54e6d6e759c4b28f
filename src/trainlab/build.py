"""The one build path: config (+ optional model / datasets objects) -> data, model, task, Trainer.

Every tool that trains, evaluates or times a model builds it here (``api.train``,
``api.evaluate``, ``trainlab bench devices``, ``trainlab diff``, the scripts in benchmarks/), so
none repeats dataset -> model -> task -> Trainer by hand and all of them measure what
``trainlab train`` runs. The runtime (threads, device, allocator, determinism) is set first by
``engine.runtime.setup_runtime``.

    cfg = trainlab.config.load("recipes/mnist.yaml", ["train.epochs=1"])
    device = setup_runtime(cfg)
    parts = build_parts(cfg, device)          # loaders, model, task, meta
    trainer = build_trainer(parts)            # Trainer(cfg, model, task, loaders, ...)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from . import registry
from .config import Config
from .errors import ConfigError, DataError

LOG = logging.getLogger("trainlab")
SPLITS = ("train", "valid", "test")


@dataclass
class Parts:
    """What a run is made of, before the Trainer."""

    cfg: Config
    device: torch.device
    loaders: dict                   # split -> loader with ``iterate(epoch, start)`` and ``len``
    model: nn.Module
    task: object                    # a tasks.base.Task
    num_classes: int
    meta: dict                      # what checkpoints keep: shapes, statistics, class names, task, ...
    split_indices: dict = field(default_factory=dict)
    data_s: float = 0.0             # seconds spent building the data
    bundle: object = None           # the data bundle (None for datasets passed as objects)


def _dataset_loaders(cfg: Config, datasets: dict, device) -> dict:
    from .data import DatasetLoader

    unknown = [k for k in datasets if k not in SPLITS]
    if unknown or "train" not in datasets:
        raise DataError(f"datasets must be a dict with 'train' (and optionally 'valid', 'test'); got {list(datasets)}")
    eval_bs = cfg.data.eval_batch_size or 4 * cfg.data.batch_size
    return {k: DatasetLoader(d, cfg.data.batch_size if k == "train" else eval_bs, shuffle=k == "train",
                             seed=cfg.train.seed, device=device, num_workers=cfg.data.num_workers)
            for k, d in datasets.items()}


def _check_sample(split: str, ds) -> None:
    """The first sample of a dataset passed from Python must be (tensor input, integer class)."""
    try:
        n = len(ds)
        sample = ds[0] if n else None
    except Exception as e:  # noqa: BLE001 - the user's dataset: say where it failed
        raise DataError(f"datasets['{split}'] could not give its first sample: {type(e).__name__}: {e}") from None
    if sample is None:
        raise DataError(f"datasets['{split}'] is empty")
    if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
        raise DataError(f"datasets['{split}'][0] is a {type(sample).__name__}; each sample must be a pair "
                        f"(input tensor, class index)")
    x, y = sample
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        hint = " (add torchvision.transforms.ToTensor() to the dataset's transform)" if \
            type(x).__module__.startswith("PIL") else ""
        raise DataError(f"datasets['{split}'][0] has an input of type {type(x).__name__}, not a tensor{hint}")
    as_int = y.item() if isinstance(y, torch.Tensor) and y.numel() == 1 else y
    if isinstance(as_int, bool) or not isinstance(as_int, (int, np.integer)):
        raise DataError(f"datasets['{split}'][0] has the label {y!r} ({type(y).__name__}); labels are class "
                        f"indices 0..N-1 (map names to indices and pass class_names=[...])")


def _from_datasets(cfg: Config, datasets: dict, class_names, device):
    for split, ds in datasets.items():
        _check_sample(split, ds)
    loaders = _dataset_loaders(cfg, datasets, device)
    first_x, _ = datasets["train"][0]
    input_shape = tuple(torch.as_tensor(first_x).shape)
    if not class_names:
        raise ConfigError("pass class_names=[...] when passing datasets directly")
    inferred = {"in_channels": input_shape[0], "input_size": list(input_shape[1:]), "num_classes": len(class_names)}
    meta = {"input_shape": list(input_shape), "class_names": list(class_names)}
    return loaders, len(class_names), inferred, meta, {}, None


def _from_recipe(cfg: Config, device, data_meta: Optional[dict]):
    from .data import build_data

    bundle = build_data(cfg.data, meta=data_meta)
    loaders = bundle.make_loaders(cfg, device)
    LOG.info("data %s from %s: %s", cfg.data.name, bundle.source, bundle.describe())
    return loaders, bundle.num_classes, bundle.model_kwargs(), bundle.info(), bundle.split_indices, bundle


def build_parts(cfg: Config, device: torch.device, model: Optional[nn.Module] = None,
                datasets: Optional[dict] = None, class_names: Optional[list] = None,
                data_meta: Optional[dict] = None) -> Parts:
    """Data (the recipe's, or ``datasets`` objects), the model (the recipe's, or ``model``), the
    task. ``data_meta``: a checkpoint's data facts (training statistics, vocabulary, class names),
    so evaluation rebuilds inputs exactly as training saw them."""
    from .engine.callbacks import check_spec

    for i, spec in enumerate(cfg.train.callbacks):  # before the data is built: a typo costs nothing
        check_spec(spec, f"train.callbacks[{i}]")
    t0 = time.perf_counter()
    if datasets is not None:
        loaders, num_classes, inferred, meta, split_indices, bundle = _from_datasets(cfg, datasets, class_names, device)
    else:
        loaders, num_classes, inferred, meta, split_indices, bundle = _from_recipe(cfg, device, data_meta)
    data_s = time.perf_counter() - t0
    source = "recipe"
    if model is None:
        from .models import build_model

        model = build_model(cfg.model, inferred=inferred)
    elif data_meta is None:  # a model object handed to train(): record what is really trained
        source = "python"
        record_given_model(cfg, model)
    if cfg.data.balanced_sampling and "train" in loaders:
        balance(loaders["train"], bundle)
    task = build_task(cfg, num_classes)
    attach_mixer(cfg, loaders.get("train"), task, num_classes)
    weights = class_weights(cfg, bundle, num_classes)
    if weights is not None:
        task.set_class_weights(weights)
        meta = {**meta, "class_weights": weights}
    task.direction(cfg.train.monitor)  # a monitor the task does not declare stops here, before training
    meta = {**meta, "num_classes": num_classes, "task": cfg.task.name, "task_metrics": task.describe(),
            "model_kwargs": inferred, "model_class": type(model).__module__ + ":" + type(model).__qualname__,
            "model_source": source}
    return Parts(cfg, device, loaders, model, task, num_classes, meta, split_indices, data_s, bundle)


def balance(loader, bundle) -> None:
    """Class-balanced training batches: each sample drawn with probability 1 / (classes x its class's count)."""
    labels = getattr((bundle.splits if bundle is not None else {}).get("train"), "labels", None)
    if labels is None or not hasattr(loader, "sample_weights"):
        raise ConfigError("data.balanced_sampling: needs classification data with labels (images or clips) read "
                          "from a recipe")
    labels = torch.as_tensor(labels).long()
    counts = torch.bincount(labels).double()
    loader.sample_weights = (1.0 / counts[labels]).float()


def attach_mixer(cfg: Config, loader, task, num_classes: int) -> None:
    """data.mixup / data.cutmix: the training loader mixes its batches and adds soft targets."""
    from .data.mixing import Mixer

    mixer = Mixer.from_config(cfg.data, num_classes)
    if mixer is None or loader is None:
        return
    if not hasattr(task, "set_class_weights"):
        raise ConfigError(f"data.mixup / data.cutmix: task '{cfg.task.name}' has no classes to mix (they mix "
                          f"images and their one-hot targets)")
    loader.mixer = mixer


def class_weights(cfg: Config, bundle, num_classes: int) -> Optional[list]:
    """task.class_weights as one weight per class: 'auto' is N / (classes x count of the class) over the
    training split (sklearn's 'balanced'; a class absent from it gets the largest weight present)."""
    w = getattr(cfg.task, "class_weights", None)
    if w is None:
        return None
    if not hasattr(registry.TASKS.get(cfg.task.name), "set_class_weights"):
        raise ConfigError(f"task.class_weights: task '{cfg.task.name}' has no classes to weight")
    if w != "auto":
        if len(w) != num_classes:
            raise ConfigError(f"task.class_weights: {len(w)} weights for {num_classes} classes; give one per class")
        return [float(x) for x in w]
    labels = getattr((bundle.splits if bundle is not None else {}).get("train"), "labels", None)
    if labels is None:
        raise ConfigError("task.class_weights=auto: the training split's labels are not known here; give a list")
    counts = torch.bincount(torch.as_tensor(labels).long(), minlength=num_classes).float()
    weights = counts.sum() / (num_classes * counts.clamp_min(1))
    weights[counts == 0] = weights[counts > 0].max()
    return [round(float(x), 6) for x in weights]


def build_task(cfg: Config, num_classes: int):
    """The config's task (a ``tasks.base.Task``) for ``num_classes`` outputs."""
    return registry.TASKS.create(cfg.task.name, cfg.task, num_classes)


def record_given_model(cfg: Config, model: nn.Module) -> None:
    """config.yaml must name the model that was trained, not the recipe's: its class's import path
    (its constructor arguments are the caller's and unknown, so ``trainlab.load`` may need the
    object again: ``trainlab.load(ckpt, model=MyNet(...))``, which its error message says)."""
    cls = type(model)
    cfg.model.class_path = f"{cls.__module__}:{cls.__qualname__}"
    cfg.model.init_args = {}


def build_trainer(parts: Parts, run=None, callbacks: Optional[list] = None, splits=None):
    """The Trainer over ``parts`` (``splits``: the loaders to give it, default all)."""
    from .engine.trainer import Trainer

    if parts.cfg.optim.lr == "find":
        raise ConfigError("optim.lr=find is resolved by trainlab train (and trainlab.train); here give a number "
                          "(`trainlab lr-find RECIPE` suggests one)")
    loaders = parts.loaders if splits is None else {k: v for k, v in parts.loaders.items() if k in splits}
    return Trainer(parts.cfg, parts.model, parts.task, loaders, parts.device, run, parts.meta, callbacks)
