"""Prediction on image files or video clips with a trained checkpoint, keyed by file path."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from torch import nn

from .. import atomic
from ..build import build_task
from ..data import BatchTransform
from ..data.clip_loader import ClipTransform, frame_indices
from ..data.image_cache import DecodeSettings, decode_image
from ..data.image_files import IMAGE_SUFFIXES, is_image
from ..data.video_decode import VIDEO_SUFFIXES, ClipSettings, decode_clip, frame_files, is_video
from ..errors import DataError

LOG = logging.getLogger("trainlab")


def list_images(path: str | Path) -> list[Path]:
    return _list_inputs(path, is_image, "image files (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")


def list_clips(path: str | Path) -> list[Path]:
    """A video file, a frame folder, or a folder of video files (searched recursively)."""
    path = Path(path)
    if path.is_dir() and frame_files(path):
        return [path]
    return _list_inputs(path, is_video, "video files (" + ", ".join(sorted(VIDEO_SUFFIXES)) + ")")


def _list_inputs(path: str | Path, keep, what: str) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if keep(p))
        if not files:
            raise DataError(f"{path}: no {what} found")
        return files
    raise DataError(f"{path}: no such file or folder")


def read_image(path: Path, input_shape, resize: str = "crop") -> torch.Tensor:
    """File -> uint8 [C, H, W], decoded exactly as training decoded its files (size, channels, crop)."""
    c, h, w = input_shape
    return torch.from_numpy(decode_image(path, DecodeSettings((h, w), c, resize)))


def read_clip(path: Path, input_shape, data_cfg) -> torch.Tensor:
    """Video file or frame folder -> uint8 [T, C, H, W]: decoded as training decoded its clips, and the
    frames evaluation samples (the middle of each of T equal segments)."""
    t, c, h, w = input_shape
    frames = decode_clip(path, ClipSettings((h, w), c, data_cfg.resize, data_cfg.cache_frames, t))
    idx = frame_indices(torch.tensor([len(frames)]), t, None)[0]
    return torch.from_numpy(frames)[idx]


class _Inputs:
    """What predict needs per input kind: how to find files, read one, and normalise a batch."""

    def __init__(self, meta: dict, data_cfg):
        self.clips = meta.get("input") == "clip"
        shape = meta["input_shape"]
        if self.clips:
            self.list, self.read = list_clips, lambda p: read_clip(p, shape, data_cfg)
            self.transform = ClipTransform(meta["mean"], meta["std"], shape[0])
        else:
            self.list, self.read = list_images, lambda p: read_image(p, shape, data_cfg.resize)
            self.transform = BatchTransform(meta["mean"], meta["std"])


def list_inputs(model: nn.Module, path: str | Path) -> list[Path]:
    """Images, or clips for a video checkpoint, under ``path``."""
    return _Inputs(model.trainlab_meta, model.trainlab_config.data).list(path)


@torch.no_grad()
def predict_files(model: nn.Module, paths: list[Path], topk: int = 5, batch_size: int = 256) -> list[dict]:
    meta = model.trainlab_meta
    names = model.class_names
    if "mean" not in meta or not names:
        raise DataError("this checkpoint was trained on datasets passed from Python: it does not record the "
                        "image size and normalisation that predict needs; call the model directly instead")
    inputs = _Inputs(meta, model.trainlab_config.data)
    task = build_task(model.trainlab_config, len(names))  # video: an image model averages frames
    device = next(model.parameters()).device

    def probs(batch: list[torch.Tensor]) -> torch.Tensor:
        x = inputs.transform(torch.stack(batch).to(device), train=False, gen=None)
        return task.logits(model, x).float().softmax(1)

    return _predict_rows(inputs, paths, names, probs, topk, batch_size)


def predict_exported(served, paths: list[Path], topk: int = 5, batch_size: int = 64) -> list[dict]:
    """The same predictions from an ONNX export (``inference.served.load_served``)."""
    from .. import config as config_mod

    inputs = _Inputs(served.meta, config_mod.from_dict(served.meta["config"]).data)
    return _predict_rows(inputs, paths, served.class_names, served.probabilities, topk, batch_size)


def list_exported_inputs(served, path: str | Path) -> list[Path]:
    return (list_clips if served.input == "clip" else list_images)(path)


def _predict_rows(inputs: _Inputs, paths: list[Path], names: list[str], probs, topk: int, batch_size: int) -> list[dict]:
    rows, good, bad = [], [], []
    for p in paths:
        try:
            good.append((p, inputs.read(p)))
        except DataError as e:
            LOG.warning("skipped: %s", e)
            bad.append(e)
    if not good:  # the error names the file: with one input, the warning above is all the user sees otherwise
        raise DataError(f"none of the given files could be read as {'a clip' if inputs.clips else 'an image'} "
                        f"({len(bad)} skipped; the first: {bad[0] if bad else 'no files'})")
    k = min(topk, len(names))
    for i in range(0, len(good), batch_size):
        chunk = good[i:i + batch_size]
        top_p, top_i = probs([t for _, t in chunk]).topk(k, dim=1)
        for (p, _), ps, idx in zip(chunk, top_p.tolist(), top_i.tolist()):
            rows.append({"path": str(p), "top": [(names[j], pr) for j, pr in zip(idx, ps)]})
    return rows


def write_predictions_csv(rows: list[dict], out: str | Path) -> Path:
    out = Path(out)
    k = max(len(r["top"]) for r in rows)
    with atomic.atomic_open(out, newline="") as fh:
        w = csv.writer(fh)
        header = ["path", "prediction", "probability"]
        for i in range(2, k + 1):
            header += [f"top{i}", f"top{i}_probability"]
        w.writerow(header)
        for r in rows:
            w.writerow([r["path"]] + [v for name, pr in r["top"] for v in (name, f"{pr:.6f}")])
    return out
