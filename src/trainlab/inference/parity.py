"""The check after an export: the exported file, read back as a user would read it, against the
PyTorch model on the same inputs. Max absolute difference over every output, and the share of
top-1 predictions (every position, for a language model) that agree."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError

LOG = logging.getLogger("trainlab")


def onnx_session(path: str | Path, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # no warnings about shapes the exporter recorded for the example batch
    # no busy-waiting between runs: its spinning threads would take the cores from the decoding
    # threads of a server, and from PyTorch in the same process (eager batch 1 measured 60x slower beside it)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own several kinds
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0][:200]})") from None


def _run_onnx(path, sig, args) -> list[torch.Tensor]:
    sess = onnx_session(path)
    feeds = {name: a.cpu().numpy() for name, a in zip(sig.inputs, args)}
    return [torch.from_numpy(np.asarray(o)) for o in sess.run(sig.outputs, feeds)]


def _run_torchscript(path, args) -> list[torch.Tensor]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    out = loaded(*args)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _run_weights(model, sig, fmt, path, args) -> list[torch.Tensor]:
    """The weights file loaded into a fresh copy of the model, as a user loads it into their class."""
    if fmt == "safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), weights_only=True, map_location="cpu")
    fresh = copy.deepcopy(sig.module)
    fresh.model.load_state_dict(state, strict=True)
    out = fresh(*args)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def compare(ref: list[torch.Tensor], got: list[torch.Tensor]) -> dict:
    diff = max(float((r.float() - g.float()).abs().max()) for r, g in zip(ref, got))
    a, b = ref[0].argmax(-1), got[0].argmax(-1)
    return {"max_abs_diff": diff, "top1_agreement": float((a == b).float().mean()), "positions": int(a.numel())}


@torch.no_grad()
def check_parity(model, sig, fmt: str, path: Path, x: torch.Tensor, tolerance: float) -> dict:
    """Run the export on ``x`` beside ``sig.module``; raises CheckpointError past ``tolerance``."""
    args = sig.example(x)
    ref = sig.module(*args)
    ref = list(ref) if isinstance(ref, (tuple, list)) else [ref]
    if fmt == "onnx":
        got = _run_onnx(path, sig, args)
    elif fmt == "torchscript":
        got = _run_torchscript(path, args)
    else:
        got = _run_weights(model, sig, fmt, path, args)
    result = {**compare(ref, got), "samples": int(x.shape[0]), "tolerance": tolerance}
    if not result["max_abs_diff"] <= tolerance:  # NaN fails too
        raise CheckpointError(f"{path}: the {fmt} export differs from the PyTorch model by "
                              f"{result['max_abs_diff']:.3g} (tolerance {tolerance:g}) on {x.shape[0]} inputs; "
                              f"top-1 agreement {result['top1_agreement']:.1%}")
    return result
