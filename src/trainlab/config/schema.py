"""The configuration's schema: one dataclass per recipe section, each checking its own values.

Every field has a one-line doc in its ``metadata``. Types are checked while building (see
``loading.py``); what types cannot say (ranges, shapes, names) is checked here: each section's
``validate`` for its own values, ``validate(cfg)`` for what needs the registries or several sections.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional

import yaml

from .. import registry
from ..errors import ConfigError


def _f(default, doc: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


class _Section:
    """Shared by the section dataclasses: ``section`` is the recipe key, used in error messages."""

    section: ClassVar[str]

    def _require(self, rules: dict[str, tuple[bool, str]]) -> None:
        # one message shape for every value error: 'optim.lr=-0.1 must be > 0'
        for name, (ok, why) in rules.items():
            if not ok:
                _fail(f"{self.section}.{name}", getattr(self, name), why)

    def validate(self) -> None:
        """Value checks that the field types alone cannot express."""


def _fail(key: str, value: Any, why: str):
    raise ConfigError(f"{key}={value!r} {why}")


def _is_size(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v > 0
    return isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)


@dataclass
class DataConfig(_Section):
    name: str = _f("mnist", "dataset by registered name (see `trainlab list datasets`)")
    root: Optional[str] = _f(None, "folder holding the dataset files")
    batch_size: int = _f(128, "training batch size (global, summed over devices)")
    eval_batch_size: Optional[int] = _f(None, "evaluation batch size (default: 4 x batch_size; text: batch_size)")
    valid_fraction: float = _f(0.1, "fraction of the training split held out for validation")
    test_fraction: float = _f(0.0, "fraction held out for test when the dataset has no test split")
    split_seed: int = _f(0, "seed of the train/valid(/test) split, independent of train.seed")
    folds: Optional[int] = _f(None, "k-fold cross-validation: the valid split is fold data.fold of k stratified "
                                    "folds of the training data (replaces valid_fraction; trainlab cv runs all k)")
    balanced_sampling: bool = _f(False, "classification: draw training samples with replacement so every class "
                                        "is equally likely (an epoch keeps its length; for imbalanced data)")
    fold: int = _f(0, "with data.folds: which fold (0 .. folds-1) is held out for validation")
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
    max_image_pixels: int = _f(89_478_485, "image files: refuse (or, with on_bad_image=skip, skip) an image with "
                                           "more pixels than this, checked before decoding (decompression bombs)")
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
    level: Literal["word", "word_punct", "char"] = _f(
        "word", "text: word tokens (split on spaces, as PTB/WikiText-2 are prepared) with <eos> at line ends; "
                "word_punct: the same with punctuation split from words (raw text such as Tiny Shakespeare); char")
    vocab_size: Optional[int] = _f(None, "text: keep the N most frequent tokens (specials included); rest <unk>")
    min_freq: int = _f(1, "text: tokens seen fewer times in train become <unk>")
    bptt: int = _f(35, "text: tokens per training window (truncated backpropagation through time)")
    variable_bptt: bool = _f(False, "text: vary window lengths around bptt each epoch (AWD-LSTM style)")
    max_tokens: Optional[int] = _f(None, "text: keep only the first N tokens of each split (quick tries)")

    section: ClassVar[str] = "data"

    def validate(self) -> None:
        lo_hi = self.rrc_scale
        self._require({
            "batch_size": (self.batch_size > 0, "must be > 0"),
            "valid_fraction": (0 <= self.valid_fraction < 1, "must be in [0, 1)"),
            "folds": (self.folds is None or self.folds >= 2, "must be >= 2 (or null: no cross-validation)"),
            "fold": (0 <= self.fold < (self.folds or 1) if self.folds else self.fold == 0,
                     f"must be in [0, data.folds - 1 = {(self.folds or 1) - 1}]" if self.folds
                     else "needs data.folds (k-fold cross-validation)"),
            "test_fraction": (0 <= self.test_fraction < 1, "must be in [0, 1)"),
            "crop_padding": (self.crop_padding >= 0, "must be >= 0"),
            "size": (self.size is None or _is_size(self.size), "must be N or [H, W]"),
            "channels": (self.channels in (None, 1, 3), "must be 1 or 3"),
            "rrc_scale": (len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1] <= 1, "must be [low, high] within (0, 1]"),
            "frames": (self.frames >= 1, "must be >= 1"),
            "cache_frames": (self.cache_frames >= self.frames, f"must be >= data.frames ({self.frames})"),
            "split_id": (self.split_id >= 1, "must be >= 1"),
            "bptt": (self.bptt >= 1, "must be >= 1"),
            "min_freq": (self.min_freq >= 1, "must be >= 1"),
            "vocab_size": (self.vocab_size is None or self.vocab_size >= 2, "must be >= 2"),
            "max_tokens": (self.max_tokens is None or self.max_tokens >= 2, "must be >= 2"),
            "max_samples": (self.max_samples is None or self.max_samples >= 1, "must be >= 1 (or null for all)"),
        })


@dataclass
class ModelConfig(_Section):
    name: str = _f("convnet", "registered model name (see `trainlab list models`)")
    class_path: Optional[str] = _f(None, "your own nn.Module as 'module.path:ClassName' (overrides name)")
    init_args: dict = _f({}, "keyword arguments for the model constructor")
    pretrained: bool = _f(False, "start from torchvision's ImageNet weights (downloads; needs network)")
    weights: Optional[str] = _f(None, "start from a trainlab checkpoint or a state_dict file (head replaced if needed)")
    freeze: str = _f("none", "none | backbone (train only the head) | comma-separated module prefixes")

    section: ClassVar[str] = "model"

    def validate(self) -> None:
        self._require({"class_path": (self.class_path is None or ":" in self.class_path,
                                      "must look like 'my_module:MyNet'")})


@dataclass
class OptimConfig(_Section):
    name: str = _f("adam", "sgd | adam | adamw | nadam | rmsprop")
    lr: float | Literal["find"] = _f(1e-3, "peak learning rate; 'find': trainlab train runs the LR range test "
                                            "first and trains with its suggestion (lr_find.png in the run)")
    weight_decay: float = _f(0.0, "L2 penalty (decoupled for adamw)")
    momentum: float = _f(0.9, "momentum for sgd and rmsprop")
    nesterov: bool = _f(False, "Nesterov momentum for sgd")
    betas: list = _f([0.9, 0.999], "Adam-family betas")
    eps: float = _f(1e-8, "Adam-family / rmsprop epsilon")
    norm_lr_scale: float = _f(1.0, "LR multiplier for normalization-layer parameters (batch/layer/group norm); "
                                   "their weight decay is divided by it, so the decay per step stays the same")

    section: ClassVar[str] = "optim"

    def validate(self) -> None:
        self._require({
            "lr": (self.lr == "find" or self.lr > 0, "must be > 0 (or find)"),
            "weight_decay": (self.weight_decay >= 0, "must be >= 0"),
            "betas": (len(self.betas) == 2, "must be two numbers"),
            "norm_lr_scale": (self.norm_lr_scale > 0, "must be > 0"),
        })


@dataclass
class ScheduleConfig(_Section):
    name: str = _f("constant", "constant | step | multistep | exponential | cosine | linear | onecycle | plateau")
    warmup_epochs: float = _f(0.0, "linear warmup length in epochs (fractions allowed)")
    warmup_steps: int = _f(0, "linear warmup length in optimizer steps (added to warmup_epochs)")
    step_size: float = _f(1.0, "step: epochs between decays")
    milestones: list = _f([], "multistep: epochs at which the LR is multiplied by gamma")
    gamma: float = _f(0.1, "step/multistep: decay factor; exponential: factor per epoch")
    min_lr: float = _f(0.0, "cosine/linear/onecycle: final learning rate")
    factor: float = _f(0.1, "plateau: LR multiplier when the monitored metric stalls")
    patience: int = _f(2, "plateau: evaluations without improvement before reducing")

    section: ClassVar[str] = "schedule"

    def validate(self) -> None:
        if self.warmup_epochs < 0 or self.warmup_steps < 0:
            _fail("schedule.warmup_*", (self.warmup_epochs, self.warmup_steps), "must be >= 0")
        self._require({"step_size": (self.step_size > 0, "must be > 0")})


@dataclass
class TaskConfig(_Section):
    name: str = _f("classification", "task by registered name")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy loss")
    class_weights: Optional[Any] = _f(None, "classification: weights of the classes in the training loss: 'auto' "
                                            "(N / (classes x count): rare classes count more) or a list, one per "
                                            "class; evaluation losses stay unweighted")
    tta: Literal["none", "flip", "flip_translate"] = _f(
        "none", "test-time augmentation in evaluation: 'flip' averages the logits of each image and its mirror "
        "(only where a mirror keeps the label); 'flip_translate' also of both shifted one pixel up-left and "
        "down-right (6 views, weighted 1/2 unshifted, 1/4 per shift)")

    section: ClassVar[str] = "task"

    def validate(self) -> None:
        w = self.class_weights
        ok = w is None or w == "auto" or (isinstance(w, list) and len(w) >= 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in w))
        self._require({"label_smoothing": (0 <= self.label_smoothing < 1, "must be in [0, 1)"),
                       "class_weights": (ok, "must be 'auto', a list of positive numbers (one per class) or null")})


@dataclass
class TrainConfig(_Section):
    epochs: int = _f(10, "number of epochs")
    max_steps: Optional[int] = _f(None, "stop after this many optimizer steps in total")
    seed: int = _f(0, "seed for initialisation, shuffling, augmentation and dropout")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps")
    devices: int = _f(1, "DDP processes: one per GPU (nccl) or CPU processes (gloo); > 1 launches torchrun")
    precision: Literal["fp32", "bf16", "fp16"] = _f("fp32", "fp32 | bf16 | fp16 (autocast)")
    grad_clip: Optional[float] = _f(None, "clip the global gradient norm to this value")
    accumulate: int = _f(1, "batches whose gradients are summed per optimizer step")
    resume: Optional[str] = _f(None, "'auto' (this run.dir's last.pt) or a checkpoint path")
    resume_allow_changes: list = _f([], "keys a resume may change besides the always-allowed ones (epochs, "
                                        "max_steps, device, threads, progress, logging): a deliberate change of "
                                        "e.g. optim.lr or data.root, recorded in command.txt")
    monitor: str = _f("valid.acc1", "metric for best checkpoint, early stopping and plateau")
    early_stopping_patience: Optional[int] = _f(None, "stop after N evaluations without improvement")
    eval_test: bool = _f(False, "also evaluate the test split after every epoch")
    checkpoint_every_steps: Optional[int] = _f(None, "also write last.pt every N optimizer steps")
    on_nonfinite: Literal["error", "skip_batch"] = _f("error", "NaN/Inf loss: stop, or skip the batch")
    nonfinite_check_every: Optional[int] = _f(
        None, "batches between reads of their losses for NaN/Inf (also before every checkpoint and at epoch "
              "ends; the error names the first bad batch): 1 = each at once, which makes the host wait for "
              "the GPU every step; default 1 on CPU, 100 on GPUs; skip_batch always checks each batch")
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

    section: ClassVar[str] = "train"

    def validate(self) -> None:
        dev = self.device
        self._require({
            "epochs": (self.epochs >= 1, "must be >= 1"),
            "accumulate": (self.accumulate >= 1, "must be >= 1"),
            "devices": (self.devices >= 1, "must be >= 1"),
            "max_steps": (self.max_steps is None or self.max_steps >= 1, "must be >= 1"),
            "nonfinite_check_every": (self.nonfinite_check_every is None or self.nonfinite_check_every >= 1
                                      and (self.nonfinite_check_every == 1 or self.on_nonfinite == "error"),
                                      "must be >= 1, and 1 with train.on_nonfinite=skip_batch (a batch is "
                                      "skipped before its optimizer step, so each loss is checked at once)"),
            "grad_clip": (self.grad_clip is None or self.grad_clip > 0, "must be > 0"),
            "lookahead_every": (self.lookahead_every >= 0, "must be >= 0"),
            "lookahead_decay": (0 <= self.lookahead_decay < 1, "must be in [0, 1)"),
            "lookahead_start_epoch": (self.lookahead_start_epoch >= 0, "must be >= 0"),
            "monitor": ("." in self.monitor, "must look like 'valid.acc1'"),
            "device": (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit()),
                       "must be auto, cpu, cuda, cuda:N or mps"),
        })


@dataclass
class RunConfig(_Section):
    name: Optional[str] = _f(None, "run name (default: the recipe file name)")
    root: str = _f("runs", "parent of runs/<name>/<timestamp>/")
    dir: Optional[str] = _f(None, "exact run directory (overrides root/name/timestamp)")
    tensorboard: bool = _f(True, "write TensorBoard event files")
    tensorboard_graph: bool = _f(True, "also write the model's graph (one traced forward of two training inputs "
                                       "at the start; skipped with a note where the model cannot be traced)")
    progress: bool = _f(True, "show a progress bar")

    section: ClassVar[str] = "run"


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

    def sections(self) -> list[_Section]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


def validate(cfg: Config) -> None:
    """Every section's value checks, then the names (against the registries, which load the built-ins)."""
    for section in cfg.sections():
        section.validate()
    registry.OPTIMIZERS.check(cfg.optim.name, "optim.name")
    registry.SCHEDULES.check(cfg.schedule.name, "schedule.name")
    registry.DATASETS.check(cfg.data.name, "data.name")
    registry.TASKS.check(cfg.task.name, "task.name")
    if cfg.model.class_path is None:  # a user's class is checked when it is imported
        registry.MODELS.check(cfg.model.name, "model.name")
