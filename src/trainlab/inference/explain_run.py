"""``trainlab explain CKPT [FILES... | --top-losses N | --split S]``: maps for files, for a run's top losses
(read from its predictions.csv), or for the first samples of a split, written by ``explain_page``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from ..outputs import choose_output

LOG = logging.getLogger("trainlab")


def split_loader(model, split: str, device, overrides=()):
    """The checkpoint's data split, rebuilt as evaluation builds it (its own statistics and classes);
    ``overrides``: data.* settings (data.root=PATH when the data has moved)."""
    from .. import config as config_mod
    from ..build import build_parts

    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise ConfigError(f"only data.* overrides apply to a checkpoint's data, not: {', '.join(bad)}")
    cfg = config_mod.load(model.trainlab_config, list(overrides))
    parts = build_parts(cfg, device, model=model, data_meta=model.trainlab_meta)
    if split not in parts.loaders:
        raise ConfigError(f"--split {split}: the data has no such split (have {', '.join(parts.loaders)})")
    loader = parts.loaders[split]
    if not hasattr(loader, "data") or not hasattr(loader, "transform"):
        raise DataError("this checkpoint's data was passed from Python: explain FILES instead")
    return loader


def split_inputs(loader, index: list[int]):
    """(raw uint8 inputs as the model sees them, normalised inputs, targets) of split positions ``index``."""
    idx = torch.tensor(index, dtype=torch.long, device=loader.images.device)
    raw = loader.images[idx]
    if hasattr(loader, "lengths"):  # clips: the frames evaluation samples
        from ..data.clip_loader import frame_indices

        raw = loader.images[idx.view(-1, 1), frame_indices(loader.lengths[idx], loader.frames, None)]
    return raw, loader.transform(raw, train=False, gen=None), loader.labels[idx].tolist()


def _top_loss_index(run_dir: Path, n: int) -> list[int]:
    from ..predictions import read_csv

    path = run_dir / "predictions.csv"
    if not path.is_file():
        raise ConfigError(f"--top-losses: {path} not found; it is written by the final test evaluation of a "
                          f"classification run (or pass files, or --split test)")
    rows = sorted(read_csv(path), key=lambda r: -r["loss"])
    return [r["index"] for r in rows[:n]]


def _from_files(model, files: list[str]):
    from .predict import _Inputs, list_inputs

    inputs = _Inputs(model.trainlab_meta, model.trainlab_config.data)
    paths = [p for f in files for p in list_inputs(model, f)]
    raw = torch.stack([inputs.read(p) for p in paths])
    x = inputs.transform(raw.to(next(model.parameters()).device), train=False, gen=None)
    names = model.class_names
    # a file in a folder named after a class (imagefolder layout) has that class as its target
    targets = [names.index(p.parent.name) if p.parent.name in names else None for p in paths]
    return [str(p) for p in paths], raw, x, targets


def explain_checkpoint(checkpoint, files=(), top_losses: int | None = None, split: str | None = None,
                       limit: int = 16, out=None, force: bool = False, device: str = "cpu",
                       trust_class_path: bool = False, prompt: str | None = None, overrides=(),
                       method: str = "auto") -> Path:
    """Class maps (``method``: a key of inference.explain.METHODS) and saliency (a language model: surprisal
    and attention over ``prompt``) -> ``out`` (a folder); returns its index.html. ``overrides``: data.*
    settings for --split / --top-losses."""
    from .. import api
    from ..build import build_task
    from .explain import explain
    from .explain_page import write_outputs

    chosen = sum([bool(files), top_losses is not None, split is not None, prompt is not None])
    if chosen != 1:
        raise ConfigError("explain needs exactly one of: FILES, --top-losses N, --split SPLIT (classifiers), "
                          "--prompt TEXT (language models)")
    if overrides and (files or prompt is not None):
        raise ConfigError(f"{', '.join(overrides)}: data.* overrides choose the data of --split or --top-losses; "
                          f"FILES and --prompt do not read the run's data")
    ckpt = Path(checkpoint)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    default = run_dir / "explain" if top_losses is not None else Path("explain")
    out = choose_output(out, default, force, is_dir=True)
    model = api.load(checkpoint, device=device, trust_class_path=trust_class_path)
    cfg = model.trainlab_config
    if (cfg.task.name == "language_model") != (prompt is not None):
        raise ConfigError(f"{checkpoint} is a {cfg.task.name} checkpoint: " + (
            "explain a language model with --prompt TEXT" if prompt is None else
            "--prompt is for language-model checkpoints; give FILES, --top-losses N or --split SPLIT"))
    if prompt is not None:
        from .explain_lm import explain_lm

        return explain_lm(model, prompt, out)
    if cfg.task.name not in ("classification", "video"):
        raise ConfigError(f"{checkpoint} is a {cfg.task.name} checkpoint: explain draws maps of image and clip "
                          f"classifiers")
    if files:
        ids, raw, x, targets = _from_files(model, list(files))
    else:
        loader = split_loader(model, "test" if top_losses is not None else split, next(model.parameters()).device,
                              overrides)
        index = (_top_loss_index(run_dir, top_losses) if top_losses is not None
                 else list(range(min(limit, len(loader.data)))))
        raw, x, targets = split_inputs(loader, index)
        ids = [loader.data.sample_id(i) for i in index]
    task = build_task(cfg, len(model.class_names))
    maps = explain(model, x, forward=lambda v: task.logits(model, v), method=method)
    note = ("Clips: one column per sampled frame. " if x.dim() == 5 else "") + \
        "Both maps are scaled to [0, 1] per sample."
    samples = [{"sample_id": s, "target": t} for s, t in zip(ids, targets)]
    page = write_outputs(out, samples, raw, maps, model.class_names, note)
    LOG.info("explained %d input(s) (class map at %s)", len(samples), maps.layer)
    return page
