"""Model anatomy for people: ``trainlab summary MODEL_OR_RECIPE_OR_CKPT --input 3x64x64``.

Builds the model, runs ``anatomy.analyse`` (shapes, parameters, mult-adds), measures the
real file sizes, and formats a table; optionally draws the block diagram and writes the
graph to TensorBoard.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..config import ModelConfig, OptimConfig
from ..errors import ConfigError
from ..models import build_model
from .anatomy import Anatomy, analyse, example_input
from .sizes import disk_sizes, parameter_bytes


def parse_input(text: str) -> tuple[int, ...]:
    """'1x28x28' or '3,64,64' -> (1, 28, 28)."""
    try:
        dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x") if v)
    except ValueError:
        raise ConfigError(f"--input {text!r}: expected sizes like 1x28x28") from None
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError(f"--input {text!r}: expected positive sizes like 1x28x28")
    return dims


def model_for_summary(target: str, input_shape, num_classes: int,
                      trust_class_path: bool = False) -> tuple[nn.Module, tuple]:
    """A registered model name, a recipe (.yaml) or a checkpoint (.pt) -> (model, input shape)."""
    path = Path(target)
    if path.suffix in (".pt", ".pth") and path.is_file():
        from ..api import load

        model = load(path, trust_class_path=trust_class_path)
        return model, tuple(input_shape or model.trainlab_meta["input_shape"])
    if path.suffix in (".yaml", ".yml"):
        from .. import config as config_mod

        cfg = config_mod.load(path)
        mcfg = cfg.model
        if cfg.task.name == "language_model":  # token ids: a window of data.bptt of them, as training sees
            input_shape = input_shape or (cfg.data.bptt,)
    else:
        mcfg = ModelConfig(name=target)
    if input_shape is None:
        raise ConfigError(f"{target}: --input is required for a model name or recipe (e.g. --input 1x28x28)")
    try:
        model = build_model(mcfg, num_classes, input_shape)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        if isinstance(e, ConfigError):
            raise
        shape = "x".join(map(str, input_shape))
        raise ConfigError(f"cannot build {mcfg.class_path or mcfg.name} for an input of {shape}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. Check --input: CxHxW for "
                          f"images (e.g. 1x28x28, 3x64x64), T with --dtype long for token ids") from None
    if path.suffix in (".yaml", ".yml"):
        model.trainlab_config = cfg  # so the full-checkpoint size uses the recipe's optimizer
        if cfg.task.name == "language_model":
            model.trainlab_meta = {"input_dtype": "long"}
    return model, tuple(input_shape)


@dataclass
class Summary:
    anatomy: Anatomy
    param_bytes: int
    sizes: dict

    def text(self, depth: int = 4) -> str:
        return format_table(self.anatomy, depth) + "\n\n" + self.totals()

    def totals(self) -> str:
        a, s = self.anatomy, self.sizes
        return "\n".join([
            f"input {list(a.input_shape)} (batch of 1)",
            f"parameters: {a.total_params:,} ({a.trainable_params:,} trainable, {a.frozen_params:,} frozen; "
            f"tied tensors counted once)",
            f"mult-adds per sample: {a.macs:,} ({a.macs / 1e6:,.1f} M; conv, linear, recurrent and attention layers)",
            f"parameter memory: {self.param_bytes / 1e6:,.2f} MB ({self.param_bytes:,} bytes)",
            f"weights-only file (like best.pt): {s['weights_only'] / 1e6:,.2f} MB ({s['weights_only']:,} bytes)",
            f"full checkpoint with {s['optimizer']} state (like last.pt): {s['full_checkpoint'] / 1e6:,.2f} MB "
            f"({s['full_checkpoint']:,} bytes)",
        ])


def summarize_model(model: nn.Module, input_shape, dtype: str = "float") -> Summary:
    anatomy = analyse(model, input_shape, dtype)
    cfg = getattr(model, "trainlab_config", None)
    optim = cfg.optim if cfg is not None else OptimConfig()
    extra = {"config": cfg.to_dict()} if cfg is not None else {}
    if getattr(model, "trainlab_meta", None):
        extra["meta"] = model.trainlab_meta
    return Summary(anatomy, parameter_bytes(model), disk_sizes(model, optim, extra))


_CONTAINERS = ("ModuleList", "ModuleDict", "ParameterList", "ParameterDict")


def format_table(anatomy: Anatomy, depth: int = 4) -> str:
    """One line per module down to ``depth``; parameters and mult-adds include sub-modules."""
    head = ("Layer (type)", "Output shape", "Params", "Mult-adds", "Note")
    lines = []
    for r in anatomy.rows:
        if r.depth > depth:
            continue
        name = ("  " * max(r.depth - 1, 0) + ("" if r.depth == 0 else "└─") +
                f"{r.name.rsplit('.', 1)[-1] if r.name else anatomy.model} ({r.kind})")
        notes = []
        if r.total_params and r.total_trainable == 0:
            notes.append("frozen")
        elif r.total_trainable < r.total_params:
            notes.append(f"{r.total_params - r.total_trainable:,} frozen")
        if r.shared:
            notes.append(f"{r.shared:,} tied to {r.shared_with}")
        if r.function:
            notes.append(r.function)
        if r.calls > 1:
            notes.append(f"called {r.calls}x")
        if r.calls == 0 and r.kind not in _CONTAINERS:
            parent = anatomy.row(r.name.rsplit(".", 1)[0]) if "." in r.name else anatomy.rows[0]
            notes.append("used inside its parent's forward" if parent.calls else "not called")
        shape = str(list(r.output)) if r.output else "--"
        lines.append((name, shape, f"{r.total_params:,}" if r.total_params else "--",
                      f"{r.total_macs:,}" if r.total_macs else "--", "; ".join(notes)))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(5)]
    fmt = lambda row: "  ".join(  # noqa: E731
        (c.ljust(w) if i in (0, 1, 4) else c.rjust(w)) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
    rule = "-" * len(fmt(head))
    return "\n".join([fmt(head), rule, *map(fmt, lines), rule])


def write_graph(model: nn.Module, input_shape, log_dir: str | Path, dtype: str = "float") -> Path:
    """The model graph in TensorBoard (Graphs tab): ``tensorboard --logdir LOG_DIR``."""
    from torch.utils.tensorboard import SummaryWriter

    was = model.training
    model.eval()
    with SummaryWriter(str(log_dir)) as w, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # add_graph still traces with torch.jit
        w.add_graph(model, example_input(input_shape, dtype), use_strict_trace=False)
    model.train(was)
    return Path(log_dir)
