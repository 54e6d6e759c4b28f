"""The Python API: ``train``, ``evaluate``, ``load``, ``predict``. The CLI only calls these.

    run = trainlab.train("recipes/mnist.yaml", "train.epochs=2", data={"root": "data/mnist"})
    run.dir, run.test["acc1"], run.best_checkpoint
    model = trainlab.load(run.best_checkpoint); model.class_names

A model (nn.Module) or datasets (a dict of split -> torch Dataset of (input, target)) can be
passed directly from a notebook instead of naming them in the recipe.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from . import atomic
from . import config as config_mod
from .config import Config
from .build import build_parts, build_trainer
from .data.loaders import sample_inputs
from .engine import distributed, evaluate_model, load_checkpoint, load_model_state, resolve_device
from .engine.runtime import setup_runtime
from .errors import CheckpointError, ConfigError
from .models import build_model, count_parameters
from .models.build import UntrustedClassPath
from .tracking import RunDir, read_metrics
from .api_lr_find import record_lr_find, resolve_lr_find, timed_range_test

LOG = logging.getLogger("trainlab")


@dataclass
class Run:
    """What ``train`` returns: where the run lives and what it measured."""

    dir: Path
    config: Config
    metrics: list = field(default_factory=list)
    test: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)  # seconds: data, fit (first step to final test), first_step

    @property
    def best_checkpoint(self) -> Path:
        return self.dir / "checkpoints" / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.dir / "checkpoints" / "last.pt"


def _config(recipe, overrides, sections: dict) -> Config:
    items = list(overrides)
    flat = {}
    for section, values in sections.items():
        if not isinstance(values, dict):
            raise ConfigError(f"keyword '{section}' must be a dict of overrides, got {values!r}")
        flat.update({f"{section}.{k}": v for k, v in values.items()})
    data = config_mod.load(recipe, items)
    return config_mod.load(data, flat) if flat else data


def make_loaders(cfg: Config, bundle, device: torch.device) -> dict:
    """The bundle's loaders (images: TensorLoader; text: BPTTLoader)."""
    return bundle.make_loaders(cfg, device)


def _init_from_data(model: nn.Module, loader, seed: int, device, n: int = 5000) -> float:
    """Data-dependent initialisation: a model with ``init_from_data(x)`` (speednet's whitening stem)
    gets up to ``n`` normalised training inputs before the first step (not on resume, nor when
    model.weights supplies the weights). Returns the seconds it took (counted as training time)."""
    t = time.perf_counter()
    x = sample_inputs(loader, n, seed)
    model.to(device).init_from_data(x)
    return round(time.perf_counter() - t, 3)


def _find_resume(cfg: Config) -> Optional[Path]:
    """train.resume=auto: run.dir's last.pt, else the newest run of this name that has one."""
    if cfg.train.resume != "auto":
        return Path(cfg.train.resume) if cfg.train.resume else None
    if cfg.run.dir:
        p = Path(cfg.run.dir) / "checkpoints" / "last.pt"
        return p if p.exists() else None
    parent = Path(cfg.run.root) / (cfg.run.name or "run")
    found = sorted(parent.glob("*/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _check_resume(cfg: Config, resume: Optional[Path], device) -> tuple[list, Optional[dict]]:
    """(the config changes of a resume, the checkpoint read once for the check and the resume);
    a change that is not allowed raises before anything is written."""
    if resume is None:
        return [], None
    ckpt = load_checkpoint(resume, map_location=device)
    if ckpt.get("config") is None:
        return [], ckpt
    from .config.changes import resume_changes

    changes = resume_changes(ckpt["config"], cfg.to_dict(), cfg.train.resume_allow_changes, str(resume))
    return [c for c in changes if c[0] not in ("train.resume", "run.dir")], ckpt


def _trim_metrics(run: RunDir, step: int) -> None:
    """Drop records a crashed run wrote after the checkpoint it resumes from."""
    path = run.path / "metrics.jsonl"
    if path.exists():
        import json

        keep = [r for r in read_metrics(run.path) if r["step"] <= step and "checkpoint" not in r]
        atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def train(recipe=None, *overrides: str, model: nn.Module | None = None, datasets: dict | None = None,
          class_names: list[str] | None = None, callbacks: list | None = None, argv: list[str] | None = None,
          **sections) -> Run:
    """Train from a recipe (path, dict or Config) plus dotted overrides; returns the ``Run``.

    ``model``/``datasets`` replace the recipe's; ``callbacks``: your own ``trainlab.Callback``
    objects, run after those of the settings (and of ``train.callbacks``)."""
    cfg = _config(recipe, overrides, sections)
    device = setup_runtime(cfg)
    try:
        return _train(cfg, device, model, datasets, class_names, callbacks, argv)
    finally:
        distributed.teardown()


def _train(cfg: Config, device, model, datasets, class_names, callbacks, argv) -> Run:
    torch.manual_seed(cfg.train.seed)
    parts = build_parts(cfg, device, model, datasets, class_names)
    resume = _find_resume(cfg)
    if resume is not None and cfg.run.dir is None:
        cfg.run.dir = str(resume.parent.parent)  # continue in the run directory being resumed
    init_s = 0.0  # data-dependent initialisation: part of training, so counted in fit_s
    if resume is None and not cfg.model.weights and hasattr(parts.model, "init_from_data"):
        init_s = _init_from_data(parts.model, parts.loaders["train"], cfg.train.seed, device)
    found = resolve_lr_find(cfg, parts, resume)  # optim.lr=find: the range test's suggestion becomes optim.lr
    if not distributed.is_main():  # rank 0 alone writes the run directory
        trainer = build_trainer(parts, None, callbacks)
        if resume is not None:
            trainer.resume(resume)
        return Run(Path(cfg.run.dir or "."), cfg, [], trainer.fit())
    saved, ckpt = _check_resume(cfg, resume, device)
    run = RunDir.create(cfg, resuming=resume is not None)  # holds the run's lock: one writer per run directory
    handler = run.attach_log()
    try:
        if saved:
            run.note("resumed with changes: " + "; ".join(f"{k} {a!r} -> {b!r}" for k, a, b in saved))
        elif resume is None and (run.path / "metrics.jsonl").exists():  # resume=auto, killed before any last.pt
            LOG.info("%s holds an earlier attempt without a checkpoint: starting it again", run.path)
            _trim_metrics(run, 0)
        run.write_start(cfg, device, argv)
        if found is not None:
            record_lr_find(run, found, cfg)
        run.write_json("task.json", {"name": cfg.task.name, **parts.task.describe()})
        if parts.split_indices:
            run.write_json("splits.json", parts.split_indices)
        trainer = build_trainer(parts, run, callbacks)
        total, trainable = count_parameters(trainer.model)
        LOG.info("run directory %s; model %s: %s parameters (%s trainable, %s frozen); device %s",
                 run.path, cfg.model.class_path or cfg.model.name, f"{total:,}", f"{trainable:,}",
                 f"{total - trainable:,}", device)
        if init_s:
            LOG.info("initialised %s from training inputs (init_from_data) in %.2f s", type(parts.model).__name__,
                     init_s)
        if resume is not None:
            trainer.resume(resume, ckpt)
            _trim_metrics(run, trainer.state.step)
        elif cfg.train.resume == "auto":
            LOG.info("train.resume=auto: no checkpoint found, starting fresh")
        t_fit = time.perf_counter()
        test = trainer.fit()
        timing = {"data_s": round(parts.data_s, 3), "fit_s": round(time.perf_counter() - t_fit + init_s, 3),
                  "first_step_s": trainer.first_step_s, "init_s": init_s}
        run.write_json("timing.json", timing)
    finally:
        RunDir.detach_log(handler)
        run.release()
    return Run(run.path, cfg, read_metrics(run.path), test, timing)


def lr_find(recipe=None, *overrides: str, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
            out: str | Path | None = None, force: bool = False, **sections) -> dict:
    """The LR range test of a recipe through the real Trainer step (nothing is trained for good: weights,
    optimizer and RNG are put back); the curve's PNG goes to ``out`` (default lr_find.png, numbered)."""
    from .analysis.lr_plot import lr_find_figure
    from .outputs import choose_output

    out = choose_output(out, "lr_find.png", force)
    cfg = _config(recipe, overrides, sections)
    if cfg.optim.lr == "find":
        cfg.optim.lr = 1e-3  # a placeholder: the sweep sets the LR of every step
    device = setup_runtime(cfg, distributed_ok=False)
    torch.manual_seed(cfg.train.seed)
    parts = build_parts(cfg, device)
    if not cfg.model.weights and hasattr(parts.model, "init_from_data"):
        _init_from_data(parts.model, parts.loaders["train"], cfg.train.seed, device)
    result = timed_range_test(parts, start_lr, end_lr, steps)
    name = cfg.run.name or (Path(recipe).stem if isinstance(recipe, (str, Path)) else "recipe")
    atomic.write_bytes(out, lr_find_figure(result, f"LR range test: {name}, {cfg.model.name}, {cfg.optim.name}"))
    result["plot"] = str(out)
    return result


# ---------------------------------------------------------------------- checkpoints in use
def load(checkpoint: str | Path, device: str = "cpu", model: nn.Module | None = None,
         trust_class_path: bool = False) -> nn.Module:
    """A checkpoint -> its model in eval mode, with ``.class_names``, ``.trainlab_config``, ``.trainlab_meta``.

    ``model``: an object to load the weights into, for a model that was passed to ``train`` from
    Python (its constructor arguments are not in the checkpoint). ``trust_class_path``: allow
    importing the module a checkpoint's ``model.class_path`` names (otherwise only an already
    imported module is used: loading a checkpoint never runs code)."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    if "config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{checkpoint}: not a trainlab checkpoint (no config/model entries)")
    cfg = config_mod.from_dict(ckpt["config"])
    meta = ckpt.get("meta", {})
    given = meta.get("model_source") == "python"
    hint = (f"; this checkpoint holds a {meta.get('model_class')} passed to trainlab.train from Python: reload it "
            f"with trainlab.load({str(checkpoint)!r}, model=YourModel(...)) built as it was for training") if given else ""
    try:
        if model is None:
            model = _model_for(cfg, meta, checkpoint, trust_class_path)
        load_model_state(model, ckpt["model"], str(checkpoint))
    except (ConfigError, CheckpointError) as e:
        if not hint or isinstance(e, UntrustedClassPath):
            raise
        raise CheckpointError(f"{e}{hint}") from None
    model.class_names = meta.get("class_names")
    model.trainlab_config = cfg
    model.trainlab_meta = meta
    return model.to(resolve_device(device)).eval()


def _model_for(cfg: Config, meta: dict, checkpoint, trust: bool) -> nn.Module:
    search = [Path(checkpoint).resolve().parent.parent.parent]  # a custom module beside the runs folder
    kw = dict(search_dirs=search, from_checkpoint=True, trust_class_path=trust, source=str(checkpoint))
    if "model_kwargs" in meta:
        return build_model(cfg.model, inferred=meta["model_kwargs"], **kw)
    # checkpoints written before model_kwargs was recorded
    return build_model(cfg.model, meta.get("num_classes"), meta.get("input_shape"), **kw)


def evaluate(checkpoint: str | Path, *overrides: str, split: str = "test", out: str | Path | None = None,
             trust_class_path: bool = False, force: bool = False, predictions: str | Path | None = None) -> dict:
    """Evaluate a checkpoint on a split of its dataset (data.* overrides allowed). The JSON goes to
    ``out`` (refused if it exists, unless ``force``), else beside the checkpoint under a free name;
    per-sample results to ``predictions`` (default beside the JSON: a classification's predictions.csv, a
    language model's token_losses.json)."""
    import json

    from .outputs import choose_output

    default = Path(checkpoint).with_name(f"eval_{split}_{Path(checkpoint).stem}.json")
    out = choose_output(out, default, force)  # checked before the work
    model = load(checkpoint, trust_class_path=trust_class_path)
    itos = model.trainlab_meta.get("itos") if model.trainlab_config.task.name == "language_model" else None
    pred_out = choose_output(predictions, out.with_name("token_losses.json" if itos else "predictions.csv"), force,
                             flag="--predictions")
    bad = [o for o in overrides if not o.split("=", 1)[0].startswith(("data.", "train.device", "train.precision"))]
    if bad:
        raise ConfigError(f"eval accepts data.*, train.device and train.precision overrides, not: {', '.join(bad)}")
    cfg = config_mod.load(model.trainlab_config, list(overrides))
    device = setup_runtime(cfg, distributed_ok=False)
    # the checkpoint's data facts: training statistics / vocabulary / classes
    parts = build_parts(cfg, device, model=model, data_meta=model.trainlab_meta)
    if split not in parts.loaders:
        raise ConfigError(f"split '{split}' does not exist; have {', '.join(parts.loaders)}")
    result, meter = evaluate_model(model.to(device), parts.task, parts.loaders[split], device, cfg.train.precision,
                                   keep_predictions=True)
    result = {"checkpoint": str(checkpoint), "split": split, **result, **meter.details(model.class_names)}
    named = model.trainlab_meta.get("split_names", {}).get(split)
    if named:
        result["split_name"] = named  # Tiny-ImageNet's "test" is its labelled val set: say so
    try:
        atomic.write_text(out, json.dumps(result, indent=2))
        result["written_to"] = str(out)
        pred = meter.predictions() if hasattr(meter, "predictions") else {}
        from .predictions import write_eval_predictions

        written = write_eval_predictions(pred_out, pred, parts.loaders[split], model.class_names, itos)
        if written is not None:
            result["predictions_written_to"] = str(written)
    except OSError as e:
        LOG.warning("could not write %s: %s", out, e)
    return result
