"""Prediction on image files with a trained checkpoint, keyed by file path."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from torch import nn

from .data import BatchTransform
from .data.image_cache import DecodeSettings, decode_image
from .data.image_files import IMAGE_SUFFIXES, is_image
from .errors import DataError

LOG = logging.getLogger("trainlab")


def list_images(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if is_image(p))
        if not files:
            raise DataError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        return files
    raise DataError(f"{path}: no such file or folder")


def read_image(path: Path, input_shape, resize: str = "crop") -> torch.Tensor:
    """File -> uint8 [C, H, W], decoded exactly as training decoded its files (size, channels, crop)."""
    c, h, w = input_shape
    return torch.from_numpy(decode_image(path, DecodeSettings((h, w), c, resize)))


@torch.no_grad()
def predict_files(model: nn.Module, paths: list[Path], topk: int = 5, batch_size: int = 256) -> list[dict]:
    meta = model.trainlab_meta
    names = model.class_names
    if "mean" not in meta or not names:
        raise DataError("this checkpoint was trained on datasets passed from Python: it does not record the "
                        "image size and normalisation that predict needs; call the model directly instead")
    tf = BatchTransform(meta["mean"], meta["std"])
    device = next(model.parameters()).device
    rows, good = [], []
    for p in paths:
        try:
            good.append((p, read_image(p, meta["input_shape"], model.trainlab_config.data.resize)))
        except DataError as e:
            LOG.warning("skipped: %s", e)
    if not good:
        raise DataError("none of the given files could be read as an image")
    k = min(topk, len(names))
    for i in range(0, len(good), batch_size):
        chunk = good[i:i + batch_size]
        x = tf(torch.stack([t for _, t in chunk]).to(device), train=False, gen=None)
        probs = model(x).float().softmax(1)
        top_p, top_i = probs.topk(k, dim=1)
        for (p, _), ps, idx in zip(chunk, top_p.tolist(), top_i.tolist()):
            rows.append({"path": str(p), "top": [(names[j], pr) for j, pr in zip(idx, ps)]})
    return rows


def write_predictions_csv(rows: list[dict], out: str | Path) -> Path:
    out = Path(out)
    k = max(len(r["top"]) for r in rows)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        header = ["path", "prediction", "probability"]
        for i in range(2, k + 1):
            header += [f"top{i}", f"top{i}_probability"]
        w.writerow(header)
        for r in rows:
            w.writerow([r["path"]] + [v for name, pr in r["top"] for v in (name, f"{pr:.6f}")])
    return out
