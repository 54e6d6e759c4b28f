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
from ._section import _f, _fail, _Section  # noqa: F401 - _f is re-exported (config/__init__)
from .data_schema import DataConfig


@dataclass
class ModelConfig(_Section):
    name: str = _f("convnet", "registered model name (see `trainlab list models`)")
    class_path: Optional[str] = _f(None, "your own nn.Module as 'module.path:ClassName' (overrides name)")
    init_args: dict = _f({}, "keyword arguments for the model constructor")
    pretrained: bool = _f(False, "start from published weights: torchvision's ImageNet ones, or timm's from the "
                                 "Hugging Face hub for timm:NAME (downloads; needs network)")
    weights: Optional[str] = _f(None, "start from a trainlab checkpoint, a state_dict or a .safetensors file (head "
                                      "replaced if needed)")
    freeze: str = _f("none", "none | backbone (train only the head) | comma-separated module prefixes")
    unfreeze_epoch: Optional[int] = _f(None, "with model.freeze: after this many epochs the frozen layers train "
                                             "too (batch-norm statistics stay frozen); null: never")
    unfreeze_every: int = _f(0, "with unfreeze_epoch: 0 unfreezes everything at once; N unfreezes one layer "
                                "group more, from the head down, every N epochs (gradual unfreezing)")

    section: ClassVar[str] = "model"

    def validate(self) -> None:
        self._require({"class_path": (self.class_path is None or ":" in self.class_path,
                                      "must look like 'my_module:MyNet'"),
                       "unfreeze_epoch": (self.unfreeze_epoch is None or self.unfreeze_epoch >= 0
                                          and self.freeze != "none", "must be >= 0, with model.freeze set"),
                       "unfreeze_every": (self.unfreeze_every >= 0, "must be >= 0")})


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
    layer_lr_decay: float = _f(1.0, "discriminative LRs: the head trains at the schedule's LR, each earlier layer "
                                    "group at this factor times the next one's (1: off; e.g. 0.7 for fine-tuning)")
    norm_lr_scale: float = _f(1.0, "LR multiplier for normalization-layer parameters (batch/layer/group norm); "
                                   "their weight decay is divided by it, so the decay per step stays the same")

    section: ClassVar[str] = "optim"

    def validate(self) -> None:
        self._require({
            "lr": (self.lr == "find" or self.lr > 0, "must be > 0 (or find)"),
            "weight_decay": (self.weight_decay >= 0, "must be >= 0"),
            "betas": (len(self.betas) == 2, "must be two numbers"),
            "norm_lr_scale": (self.norm_lr_scale > 0, "must be > 0"),
            "layer_lr_decay": (0 < self.layer_lr_decay <= 1, "must be in (0, 1]"),
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
    weight_average: Literal["none", "ema", "swa"] = _f(
        "none", "keep an average of the weights as the model of record (evaluated, best.pt, final test): "
                "ema after every step, swa (equal weights) at every epoch end")
    ema_decay: float = _f(0.999, "ema: weight of the old average at each step")
    average_start_epoch: float = _f(0.0, "ema/swa: epoch (fractions allowed) at which averaging starts")
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
            "ema_decay": (0 < self.ema_decay < 1, "must be in (0, 1)"),
            "average_start_epoch": (self.average_start_epoch >= 0, "must be >= 0"),
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
    if cfg.model.unfreeze_epoch is not None and cfg.train.devices > 1:
        _fail("model.unfreeze_epoch", cfg.model.unfreeze_epoch, "cannot be used with train.devices > 1 (DDP fixes "
                                                                 "the trained parameters when it starts)")
    if cfg.model.class_path is None:  # a user's class is checked when it is imported
        registry.MODELS.check(cfg.model.name, "model.name")
