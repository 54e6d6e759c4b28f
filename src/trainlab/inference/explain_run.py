"""``trainlab explain CKPT [FILES... | --top-losses N | --split S]``: maps for files, for a run's top losses
(read from its predictions.csv), or for the first samples of a split, written by ``explain_page``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from ..outputs import choose_output
from .explain_page import CLASS_OF

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


def classes_to_explain(forward, x: torch.Tensor, class_of: str, targets: list, ids: list[str],
                       batch_size: int = 64) -> torch.Tensor | None:
    """The class each input's maps are drawn for: None (the predicted one), the true one, or the
    second most probable ("what argued for the runner-up": where a class decided by absent evidence
    is decided, docs/explain.md)."""
    if class_of not in CLASS_OF:
        raise ConfigError(f"--class-of {class_of!r}: choose one of {', '.join(CLASS_OF)}")
    if class_of == "true":
        missing = [i for i, t in zip(ids, targets) if t is None]
        if missing:
            raise ConfigError(f"--class-of true: {len(missing)} input(s) have no true class, e.g. {missing[0]} "
                              f"(a file has one in a folder named after a class)")
        return torch.tensor(targets)
    if class_of == "second":
        with torch.no_grad():
            logits = torch.cat([forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        if logits.shape[1] < 2:
            raise ConfigError("--class-of second: the model has a single class")
        return logits.topk(2, dim=1).indices[:, 1].cpu()
    return None


def _check_sources(files, top_losses, split, prompt, overrides, class_of: str) -> None:
    """Exactly one source of inputs, and only the options that source takes."""
    chosen = sum([bool(files), top_losses is not None, split is not None, prompt is not None])
    if chosen != 1:
        raise ConfigError("explain needs exactly one of: FILES, --top-losses N, --split SPLIT (classifiers), "
                          "--prompt TEXT (language models)")
    if overrides and (files or prompt is not None):
        raise ConfigError(f"{', '.join(overrides)}: data.* overrides choose the data of --split or --top-losses; "
                          f"FILES and --prompt do not read the run's data")
    if class_of != "pred" and prompt is not None:
        raise ConfigError("--class-of chooses the class of an image or clip classifier's maps; a language model's "
                          "--prompt has none")


def explain_checkpoint(checkpoint, files=(), top_losses: int | None = None, split: str | None = None,
                       limit: int = 16, out=None, force: bool = False, device: str = "cpu",
                       trust_class_path: bool = False, prompt: str | None = None, overrides=(),
                       method: str = "auto", class_of: str = "pred") -> Path:
    """Class maps (``method``: a key of inference.explain.METHODS) and saliency (a language model: surprisal
    and attention over ``prompt``) -> ``out`` (a folder); returns its index.html. ``overrides``: data.*
    settings for --split / --top-losses; ``class_of``: whose maps, a key of CLASS_OF."""
    from .. import api
    from ..build import build_task
    from .explain import explain
    from .explain_page import write_outputs

    _check_sources(files, top_losses, split, prompt, overrides, class_of)
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

    def forward(v):
        return task.logits(model, v)

    maps = explain(model, x, forward=forward, method=method,
                   target=classes_to_explain(forward, x, class_of, targets, ids))
    note = ("Clips: one column per sampled frame. " if x.dim() == 5 else "") + \
        "Both maps are scaled to [0, 1] per sample."
    samples = [{"sample_id": s, "target": t} for s, t in zip(ids, targets)]
    page = write_outputs(out, samples, raw, maps, model.class_names, note, class_of)
    LOG.info("explained %d input(s) (class map at %s)", len(samples), maps.layer)
    return page
