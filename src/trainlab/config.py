"""Typed, validated configuration: nested dataclasses, YAML as the saved form, dotted overrides.

A recipe is a YAML mapping whose top-level keys are the sections below. Every field has a
one-line doc in its ``metadata``; ``trainlab config RECIPE`` prints the resolved value.
Unknown keys and wrong types are errors that name the key and the closest valid one.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml


from .errors import ConfigError

__all__ = ["Config", "ConfigError", "load", "from_dict", "parse_override", "apply_overrides"]


def _f(default, doc: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


@dataclass
class DataConfig:
    name: str = _f("mnist", "dataset by registered name (see `trainlab list datasets`)")
    root: Optional[str] = _f(None, "folder holding the dataset files")
    batch_size: int = _f(128, "training batch size (global, summed over devices)")
    eval_batch_size: Optional[int] = _f(None, "evaluation batch size (default: 4 x batch_size; text: batch_size)")
    valid_fraction: float = _f(0.1, "fraction of the training split held out for validation")
    test_fraction: float = _f(0.0, "fraction held out for test when the dataset has no test split")
    split_seed: int = _f(0, "seed of the train/valid(/test) split, independent of train.seed")
    max_samples: Optional[int] = _f(None, "keep only the first N samples of each split (quick tries)")
    crop_padding: int = _f(0, "batched random crop after zero padding by this many pixels (train only)")
    hflip: bool = _f(False, "batched random horizontal flip (train only)")
    hflip_mode: Literal["random", "alternate"] = _f("random", "hflip: a fresh coin per image and epoch, or one coin "
                                                    "per image for the run, inverted every other epoch (airbench)")
    random_resized_crop: bool = _f(False, "batched random-resized crop to the image size (train only)")
    rrc_scale: list = _f([0.35, 1.0], "random_resized_crop: range of the crop's area fraction")
    size: Optional[Any] = _f(None, "image files: resize to N or [H, W] when decoding (None: native size)")
    channels: Optional[int] = _f(None, "image files: 3 (RGB) or 1 (grey); default 3")
    resize: Literal["crop", "stretch"] = _f("crop", "image files: keep aspect and centre-crop, or stretch")
    layout: Literal["auto", "class_folders", "filename_prefix"] = _f("auto", "image files: how labels are stored")
    split_dirs: dict = _f({}, "image files: split -> folder under root (default: train/val/test names found)")
    on_bad_image: Literal["skip", "error"] = _f("skip", "unreadable image or clip, or a clip shorter than data.frames: "
                                                          "skip it with a warning, or stop")
    frames: int = _f(16, "video: frames sampled per clip (uniform segments; random offsets in training)")
    cache_frames: int = _f(32, "video: frames kept per clip in the decoded cache (longer clips subsampled evenly)")
    split_id: int = _f(1, "video: which trainlistNN.txt / testlistNN.txt pair to use (UCF101 ships 1-3)")
    split_lists: Optional[str] = _f(None, "video: folder of the split lists (default: data.root, then ucfTrainTestlist)")
    cache: bool = _f(True, "decode image files once into a memory-mapped uint8 cache")
    cache_dir: Optional[str] = _f(None, "cache folder (default: $TRAINLAB_CACHE or ~/.cache/trainlab)")
    cache_max_gb: float = _f(16.0, "larger decoded datasets are read by a DataLoader with workers instead")
    normalize: bool = _f(True, "subtract the training mean and divide by its std, per channel")
    download: bool = _f(False, "download the dataset when it is not found under root (needs network)")
    num_workers: int = _f(0, "DataLoader workers for datasets that are not held in memory")
    files: dict = _f({}, "text: split -> file under data.root (null: carve it from train by fraction)")
    level: Literal["word", "char"] = _f("word", "text: word tokens with <eos> at line ends, or characters")
    vocab_size: Optional[int] = _f(None, "text: keep the N most frequent tokens (specials included); rest <unk>")
    min_freq: int = _f(1, "text: tokens seen fewer times in train become <unk>")
    bptt: int = _f(35, "text: tokens per training window (truncated backpropagation through time)")
    variable_bptt: bool = _f(False, "text: vary window lengths around bptt each epoch (AWD-LSTM style)")
    max_tokens: Optional[int] = _f(None, "text: keep only the first N tokens of each split (quick tries)")


@dataclass
class ModelConfig:
    name: str = _f("convnet", "registered model name (see `trainlab list models`)")
    class_path: Optional[str] = _f(None, "your own nn.Module as 'module.path:ClassName' (overrides name)")
    init_args: dict = _f({}, "keyword arguments for the model constructor")
    pretrained: bool = _f(False, "start from torchvision's ImageNet weights (downloads; needs network)")
    weights: Optional[str] = _f(None, "start from a trainlab checkpoint or a state_dict file (head replaced if needed)")
    freeze: str = _f("none", "none | backbone (train only the head) | comma-separated module prefixes")


@dataclass
class OptimConfig:
    name: str = _f("adam", "sgd | adam | adamw | nadam | rmsprop")
    lr: float = _f(1e-3, "peak learning rate")
    weight_decay: float = _f(0.0, "L2 penalty (decoupled for adamw)")
    momentum: float = _f(0.9, "momentum for sgd and rmsprop")
    nesterov: bool = _f(False, "Nesterov momentum for sgd")
    betas: list = _f([0.9, 0.999], "Adam-family betas")
    eps: float = _f(1e-8, "Adam-family / rmsprop epsilon")
    norm_lr_scale: float = _f(1.0, "LR multiplier for normalization-layer parameters (batch/layer/group norm); "
                                   "their weight decay is divided by it, so the decay per step stays the same")


@dataclass
class ScheduleConfig:
    name: str = _f("constant", "constant | step | multistep | exponential | cosine | linear | onecycle | plateau")
    warmup_epochs: float = _f(0.0, "linear warmup length in epochs (fractions allowed)")
    warmup_steps: int = _f(0, "linear warmup length in optimizer steps (added to warmup_epochs)")
    step_size: float = _f(1.0, "step: epochs between decays")
    milestones: list = _f([], "multistep: epochs at which the LR is multiplied by gamma")
    gamma: float = _f(0.1, "step/multistep: decay factor; exponential: factor per epoch")
    min_lr: float = _f(0.0, "cosine/linear/onecycle: final learning rate")
    factor: float = _f(0.1, "plateau: LR multiplier when the monitored metric stalls")
    patience: int = _f(2, "plateau: evaluations without improvement before reducing")


@dataclass
class TaskConfig:
    name: str = _f("classification", "task by registered name")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy loss")
    tta: Literal["none", "flip", "flip_translate"] = _f(
        "none", "test-time augmentation in evaluation: 'flip' averages the logits of each image and its mirror "
        "(only where a mirror keeps the label); 'flip_translate' also of both shifted one pixel up-left and "
        "down-right (6 views, weighted 1/2 unshifted, 1/4 per shift)")


@dataclass
class TrainConfig:
    epochs: int = _f(10, "number of epochs")
    max_steps: Optional[int] = _f(None, "stop after this many optimizer steps in total")
    seed: int = _f(0, "seed for initialisation, shuffling, augmentation and dropout")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps")
    devices: int = _f(1, "DDP processes: one per GPU (nccl) or CPU processes (gloo); > 1 launches torchrun")
    precision: Literal["fp32", "bf16", "fp16"] = _f("fp32", "fp32 | bf16 | fp16 (autocast)")
    grad_clip: Optional[float] = _f(None, "clip the global gradient norm to this value")
    accumulate: int = _f(1, "batches whose gradients are summed per optimizer step")
    resume: Optional[str] = _f(None, "'auto' (this run.dir's last.pt) or a checkpoint path")
    monitor: str = _f("valid.acc1", "metric for best checkpoint, early stopping and plateau")
    early_stopping_patience: Optional[int] = _f(None, "stop after N evaluations without improvement")
    eval_test: bool = _f(False, "also evaluate the test split after every epoch")
    checkpoint_every_steps: Optional[int] = _f(None, "also write last.pt every N optimizer steps")
    on_nonfinite: Literal["error", "skip_batch"] = _f("error", "NaN/Inf loss: stop, or skip the batch")
    threads: Optional[int] = _f(None, "torch intra-op threads on CPU (default: torch's choice)")
    keep_freed_memory: bool = _f(True, "CPU on Linux: glibc keeps freed memory for reuse instead of returning "
                                       "it to the OS, which saves page-faulting every step's tensors again "
                                       "(process-wide; false keeps the system default)")
    deterministic: bool = _f(False, "deterministic GPU kernels (bit-exact resume on CUDA; slower)")
    channels_last: bool = _f(False, "channels-last memory format for conv nets (faster on GPUs, often on CPU)")
    compile: bool = _f(False, "torch.compile the model (first steps slower while compiling)")
    log_every_steps: int = _f(50, "progress-bar refresh interval in steps")
    lookahead_every: int = _f(0, "Lookahead (airbench): every N steps move an average of the weights towards "
                                 "them and copy it back into the model; 0 = off")
    lookahead_decay: float = _f(0.95, "Lookahead: per-step decay of the average; raised to the power N, and "
                                      "scaled by (step / total steps)^3 so averaging strengthens towards the end")
    lookahead_start_epoch: float = _f(0.0, "Lookahead: epoch (fractions allowed) at which the averaging starts")
    callbacks: list = _f([], "extra callbacks: registered names or {name: NAME, ...keyword arguments} "
                             "(see `trainlab list callbacks`), or 'module:Class' of an importable module")


@dataclass
class RunConfig:
    name: Optional[str] = _f(None, "run name (default: the recipe file name)")
    root: str = _f("runs", "parent of runs/<name>/<timestamp>/")
    dir: Optional[str] = _f(None, "exact run directory (overrides root/name/timestamp)")
    tensorboard: bool = _f(True, "write TensorBoard event files")
    progress: bool = _f(True, "show a progress bar")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------------------------------
# building and validating


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int->float. Raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is list or origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            match = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = (f"; did you mean '{prefix}{match[0]}'?" if match
                    else "; valid keys: " + ", ".join(prefix + n for n in names))
            raise ConfigError(f"unknown config key '{full}'{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full)
    return cls(**kwargs)


def from_dict(data: dict | None) -> Config:
    cfg = _build(Config, data or {}, "")
    validate(cfg)
    return cfg


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{p}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=3e-4'`` -> ``('optim.lr', 0.0003)``; values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else None
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads '3e-4' as a string; a number is what anyone typing it means.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return key, value


def apply_overrides(data: dict, overrides: list[str] | dict) -> dict:
    data = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, value in items:
        _set_dotted(data, key, value)
    return data


def read_recipe(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)  # safe_load: a recipe can never construct objects or run code
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def load(recipe: str | Path | dict | Config | None = None, overrides: list[str] | dict = ()) -> Config:
    """Recipe path / dict / Config + overrides -> validated Config. Sets run.name from the file."""
    if isinstance(recipe, Config):
        data = recipe.to_dict()
    elif isinstance(recipe, dict):
        data = recipe
    elif recipe is None:
        data = {}
    else:
        data = read_recipe(recipe)
        data.setdefault("run", {})
        if isinstance(data["run"], dict):
            data["run"].setdefault("name", Path(recipe).stem)
    return from_dict(apply_overrides(data, overrides))


def validate(cfg: Config) -> None:
    """Value checks that types alone cannot express. Names are checked against the registries."""
    from . import registry

    checks = [
        (cfg.optim.lr > 0, "optim.lr", cfg.optim.lr, "must be > 0"),
        (cfg.optim.weight_decay >= 0, "optim.weight_decay", cfg.optim.weight_decay, "must be >= 0"),
        (cfg.data.batch_size > 0, "data.batch_size", cfg.data.batch_size, "must be > 0"),
        (0 <= cfg.data.valid_fraction < 1, "data.valid_fraction", cfg.data.valid_fraction, "must be in [0, 1)"),
        (0 <= cfg.data.test_fraction < 1, "data.test_fraction", cfg.data.test_fraction, "must be in [0, 1)"),
        (cfg.data.crop_padding >= 0, "data.crop_padding", cfg.data.crop_padding, "must be >= 0"),
        (cfg.data.size is None or _is_size(cfg.data.size), "data.size", cfg.data.size, "must be N or [H, W]"),
        (cfg.data.channels in (None, 1, 3), "data.channels", cfg.data.channels, "must be 1 or 3"),
        (len(cfg.data.rrc_scale) == 2 and 0 < cfg.data.rrc_scale[0] <= cfg.data.rrc_scale[1] <= 1,
         "data.rrc_scale", cfg.data.rrc_scale, "must be [low, high] within (0, 1]"),
        (cfg.data.frames >= 1, "data.frames", cfg.data.frames, "must be >= 1"),
        (cfg.data.cache_frames >= cfg.data.frames, "data.cache_frames", cfg.data.cache_frames,
         f"must be >= data.frames ({cfg.data.frames})"),
        (cfg.data.split_id >= 1, "data.split_id", cfg.data.split_id, "must be >= 1"),
        (cfg.data.bptt >= 1, "data.bptt", cfg.data.bptt, "must be >= 1"),
        (cfg.data.min_freq >= 1, "data.min_freq", cfg.data.min_freq, "must be >= 1"),
        (cfg.data.vocab_size is None or cfg.data.vocab_size >= 2, "data.vocab_size", cfg.data.vocab_size,
         "must be >= 2"),
        (cfg.data.max_tokens is None or cfg.data.max_tokens >= 2, "data.max_tokens", cfg.data.max_tokens,
         "must be >= 2"),
        (cfg.train.epochs >= 1, "train.epochs", cfg.train.epochs, "must be >= 1"),
        (cfg.train.accumulate >= 1, "train.accumulate", cfg.train.accumulate, "must be >= 1"),
        (cfg.train.devices >= 1, "train.devices", cfg.train.devices, "must be >= 1"),
        (cfg.train.max_steps is None or cfg.train.max_steps >= 1, "train.max_steps", cfg.train.max_steps,
         "must be >= 1"),
        (cfg.train.grad_clip is None or cfg.train.grad_clip > 0, "train.grad_clip", cfg.train.grad_clip,
         "must be > 0"),
        (0 <= cfg.task.label_smoothing < 1, "task.label_smoothing", cfg.task.label_smoothing, "must be in [0, 1)"),
        (cfg.schedule.warmup_epochs >= 0 and cfg.schedule.warmup_steps >= 0, "schedule.warmup_*",
         (cfg.schedule.warmup_epochs, cfg.schedule.warmup_steps), "must be >= 0"),
        (cfg.schedule.step_size > 0, "schedule.step_size", cfg.schedule.step_size, "must be > 0"),
        (len(cfg.optim.betas) == 2, "optim.betas", cfg.optim.betas, "must be two numbers"),
        (cfg.optim.norm_lr_scale > 0, "optim.norm_lr_scale", cfg.optim.norm_lr_scale, "must be > 0"),
        (cfg.train.lookahead_every >= 0, "train.lookahead_every", cfg.train.lookahead_every, "must be >= 0"),
        (0 <= cfg.train.lookahead_decay < 1, "train.lookahead_decay", cfg.train.lookahead_decay, "must be in [0, 1)"),
        (cfg.train.lookahead_start_epoch >= 0, "train.lookahead_start_epoch", cfg.train.lookahead_start_epoch,
         "must be >= 0"),
        ("." in cfg.train.monitor, "train.monitor", cfg.train.monitor, "must look like 'valid.acc1'"),
    ]
    for ok, key, value, why in checks:
        if not ok:
            raise ConfigError(f"{key}={value!r} {why}")
    registry.OPTIMIZERS.check(cfg.optim.name, "optim.name")
    registry.SCHEDULES.check(cfg.schedule.name, "schedule.name")
    registry.DATASETS.check(cfg.data.name, "data.name")
    registry.TASKS.check(cfg.task.name, "task.name")
    if cfg.model.class_path is None:
        registry.MODELS.check(cfg.model.name, "model.name")
    elif ":" not in cfg.model.class_path:
        raise ConfigError(f"model.class_path={cfg.model.class_path!r} must look like 'my_module:MyNet'")
    dev = cfg.train.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"train.device={dev!r} must be auto, cpu, cuda, cuda:N or mps")


def _is_size(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v > 0
    return isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)


def field_docs(cls=Config, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, doc) for every field, for help text and docs."""
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out += field_docs(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f.metadata.get("doc", "")))
    return out
