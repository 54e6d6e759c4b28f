"""`trainlab export`: a checkpoint -> ONNX, TorchScript, safetensors or a plain state_dict file.

Every export carries what is needed to use it (``export_meta``: task, classes or vocabulary,
input shape, normalisation, the recipe) as ONNX metadata, a TorchScript extra file, or a JSON
sidecar, and gets a Markdown model card beside it. The batch axis is dynamic (the LM's time
axis too). After writing, the export is read back and run on real inputs from the run's data
beside the PyTorch model (``parity``): a difference past the tolerance is an error.

What is exported is the function trainlab itself calls: a classifier's logits of normalised
inputs [B, C, H, W] (a video model: clips [B, T, C, H, W], frames averaged when the model is
an image model); a language model's logits [B, T, V] of a token window, and for a recurrent
model its state in and out (``h0``/``c0`` -> ``h``/``c``, each [layers, B, hidden]).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import atomic
from ..build import build_task
from ..errors import ConfigError, DataError
from .model_card import export_meta, write_model_card

LOG = logging.getLogger("trainlab")
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors", "state_dict": ".pth"}
META_FILE = "trainlab.json"  # the TorchScript extra file / the ONNX metadata key
TOLERANCE = 1e-3


class ClassifierExport(nn.Module):
    """inputs -> logits, exactly as trainlab's task computes them (video: frames averaged)."""

    def __init__(self, model: nn.Module, task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x):
        return self.task.logits(self.model, x)


class WindowLMExport(nn.Module):
    """ids [B, T] -> logits [B, T, V] (a stateless model: the Transformer)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids, None)[0]


class LSTMExport(WindowLMExport):
    """ids [B, T], h0, c0 [L, B, H] -> logits [B, T, V], h, c."""

    def forward(self, ids, h0, c0):
        logits, (h, c) = self.model(ids, (h0, c0))
        return logits, h, c


class RNNExport(WindowLMExport):
    """ids [B, T], h0 [L, B, H] -> logits [B, T, V], h (GRU, plain RNN)."""

    def forward(self, ids, h0):
        logits, h = self.model(ids, h0)
        return logits, h


@dataclass
class Signature:
    """The exported function: its module, input and output names, and which axes are dynamic."""

    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    axes: dict = field(default_factory=dict)  # name -> {axis: label}

    def __post_init__(self):
        # eval for good: an exporter restores the wrapper's mode afterwards, and a new module trains
        self.module.eval()

    def example(self, x: torch.Tensor) -> tuple:
        """The exported function's arguments for a batch of model inputs (a zero state for an RNN)."""
        n_state = len(self.inputs) - 1
        if not n_state:
            return (x,)
        m = self.module.model
        zero = torch.zeros(m.num_layers, x.shape[0], m.hidden_size, device=x.device)
        return (x, *([zero] * n_state))


def signature(model: nn.Module) -> Signature:
    meta, cfg = model.trainlab_meta, model.trainlab_config
    if meta.get("task") == "language_model":
        probe = torch.zeros(1, 2, dtype=torch.long, device=next(model.parameters()).device)
        with torch.no_grad():
            _, state = model(probe, None)
        seq = {0: "batch", 1: "time"}
        if state is None:
            return Signature(WindowLMExport(model), ["ids"], ["logits"], {"ids": seq, "logits": seq})
        names = ["h0", "c0"] if isinstance(state, tuple) else ["h0"]
        outs = ["h", "c"][:len(names)]
        axes = {"ids": seq, "logits": seq, **{n: {1: "batch"} for n in names + outs}}
        cls = LSTMExport if len(names) == 2 else RNNExport
        return Signature(cls(model), ["ids", *names], ["logits", *outs], axes)
    if not model.class_names or "input_shape" not in meta:
        raise DataError("this checkpoint does not record its classes and input shape (a model trained on "
                        "datasets passed from Python): export needs them")
    task = build_task(cfg, len(model.class_names))
    return Signature(ClassifierExport(model, task), ["input"], ["logits"],
                     {"input": {0: "batch"}, "logits": {0: "batch"}})


def sample_batch(model: nn.Module, n: int = 16) -> torch.Tensor | None:
    """Up to ``n`` real model inputs from the run's data (test split first), normalised as in
    training; None when the data cannot be built here (a warning says so)."""
    from ..build import build_parts

    try:
        parts = build_parts(model.trainlab_config, torch.device("cpu"), model=model, data_meta=model.trainlab_meta)
    except Exception as e:  # noqa: BLE001 - the data may be gone or elsewhere: fall back, and say so
        LOG.warning("the run's data could not be read (%s): checking the export on random inputs", e)
        return None
    xs, got = [], 0
    for split in ("test", "valid", "train"):
        loader = parts.loaders.get(split)
        if loader is None:
            continue
        for batch in loader.iterate(0):
            if xs and batch["inputs"].shape[1:] != xs[0].shape[1:]:  # a corpus' last, shorter window
                break
            xs.append(batch["inputs"])
            got += len(batch["inputs"])
            if got >= n:
                return torch.cat(xs)[:n]
    return torch.cat(xs)[:n] if xs else None


def random_batch(model: nn.Module, n: int = 4) -> torch.Tensor:
    meta = model.trainlab_meta
    if meta.get("task") == "language_model":
        return torch.randint(0, int(meta["vocab_size"]), (n, int(meta["input_shape"][0])))
    return torch.randn(n, *meta["input_shape"])


def default_output(checkpoint: str | Path, fmt: str) -> Path:
    ckpt = Path(checkpoint)
    return ckpt.parent.parent / "export" / f"{ckpt.stem}{FORMATS[fmt]}"


def write_onnx(sig: Signature, example: tuple, out: Path, meta: dict) -> None:
    import onnx

    with warnings.catch_warnings():  # its deprecation notice: the torch.export-based exporter fixed
        warnings.simplefilter("ignore")  # the LSTM's time axis in our tries, and takes seconds, not 0.5 s
        torch.onnx.export(sig.module, example, str(out), input_names=sig.inputs, output_names=sig.outputs,
                          dynamic_axes=sig.axes, opset_version=17, dynamo=False)
    proto = onnx.load(str(out))
    flat = {META_FILE: json.dumps(meta), "task": meta["task"], "input_shape": json.dumps(meta["input_shape"])}
    for key in ("class_names", "mean", "std"):
        if meta.get(key) is not None:
            flat[key] = json.dumps(meta[key])
    del proto.metadata_props[:]
    for k, v in flat.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "trainlab"
    onnx.save(proto, str(out))


def write_torchscript(sig: Signature, example: tuple, out: Path, meta: dict) -> None:
    with warnings.catch_warnings():  # torch.jit's deprecation notice: TorchScript is still what is asked for
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(sig.module, example, check_trace=False)
        traced.save(str(out), _extra_files={META_FILE: json.dumps(meta)})


def _plain_state(model: nn.Module) -> dict:
    # tied weights share storage, which safetensors refuses: each entry gets its own copy
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def write_safetensors(model: nn.Module, out: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    save_file(_plain_state(model), str(out), metadata={META_FILE: json.dumps(meta)})
    atomic.write_text(sidecar(out), json.dumps(meta, indent=2) + "\n")


def write_state_dict(model: nn.Module, out: Path, meta: dict) -> None:
    with atomic.atomic_open(out, "wb") as fh:
        torch.save(_plain_state(model), fh)
    atomic.write_text(sidecar(out), json.dumps(meta, indent=2) + "\n")


def sidecar(out: Path) -> Path:
    """model.safetensors -> model.safetensors.json (one per file: two formats of a model never share it)."""
    return Path(out).with_name(Path(out).name + ".json")


@dataclass
class ExportResult:
    path: Path
    format: str
    card: Path
    parity: dict  # max_abs_diff, top1_agreement, samples, inputs ("data" | "random"), tolerance
    extra: list = field(default_factory=list)  # sidecar files


def export(model: nn.Module, fmt: str, out: str | Path, checkpoint: str | Path | None = None,
           tolerance: float = TOLERANCE, samples: int = 16) -> ExportResult:
    """Write ``model`` (from ``trainlab.load``) as ``fmt`` to ``out``, its model card beside it,
    and check the export against the model; raises past ``tolerance``."""
    from .parity import check_parity

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    model = model.cpu().eval()
    out = Path(out)
    sig = signature(model)
    x = sample_batch(model, samples)
    source = "data" if x is not None else "random"
    x = random_batch(model) if x is None else x
    meta = export_meta(model, sig, fmt)
    with torch.no_grad():
        if fmt == "onnx":
            write_onnx(sig, sig.example(x[:2]), out, meta)
        elif fmt == "torchscript":
            write_torchscript(sig, sig.example(x[:2]), out, meta)
        elif fmt == "safetensors":
            write_safetensors(model, out, meta)
        else:
            write_state_dict(model, out, meta)
    parity = {**check_parity(model, sig, fmt, out, x, tolerance), "inputs": source}
    card = write_model_card(model, meta, out, fmt, parity, checkpoint)
    extra = [sidecar(out)] if fmt in ("safetensors", "state_dict") else []
    return ExportResult(out, fmt, card, parity, extra)
