"""A model to answer requests with: a checkpoint (PyTorch) or an ONNX export (onnxruntime on the
CPU), behind one interface. ``load_served(path)`` reads either; then, for a classifier,
``decode(bytes)`` turns an upload into the uint8 input training decoded from files (refusing an
image past the pixel limit from its header, before decoding it), and ``probabilities(inputs)``
runs one forward pass over a batch of them. A language model gives ``generator()``: the
``model(ids, state) -> (logits, state)`` callable that ``inference.generate`` samples from.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import config as config_mod
from ..data import BatchTransform
from ..data.clip_loader import ClipTransform, frame_indices
from ..data.image_cache import DecodeSettings, decode_image
from ..data.video_decode import ClipSettings, decode_clip
from ..data.vocab import Vocab
from ..errors import CheckpointError, DataError


class _Upload(io.BytesIO):
    """Bytes that read like a file named as the upload was (for the decoders' messages)."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.label = name or "upload"

    def __str__(self) -> str:
        return self.label


class OnnxLM:
    """An ONNX language-model export as ``model(ids, state) -> (logits, state)``."""

    def __init__(self, sess, meta: dict):
        self.sess, self.max_len = sess, meta.get("max_len")
        self.inputs = [i.name for i in sess.get_inputs()]
        self.state_shapes = [i.shape for i in sess.get_inputs()[1:]]  # [layers, 'batch', hidden]

    def __call__(self, ids: torch.Tensor, state=None):
        feeds = {"ids": ids.cpu().numpy().astype(np.int64)}
        if len(self.inputs) > 1:
            if state is None:
                state = [np.zeros((s[0], ids.shape[0], s[2]), np.float32) for s in self.state_shapes]
            feeds.update({n: np.asarray(s, np.float32) for n, s in zip(self.inputs[1:], state)})
        out = self.sess.run(None, feeds)
        return torch.from_numpy(out[0]), (out[1:] if len(out) > 1 else None)


class ServedModel:
    """What serve and predict need of a model, whichever file it came from."""

    def __init__(self, path: Path, meta: dict, backend: str, forward, lm=None, model=None, logits=None):
        self.path, self.meta, self.backend, self._forward, self._lm = path, meta, backend, forward, lm
        self.model, self.logits = model, logits  # a checkpoint's module and its inputs -> logits (explain)
        self.task = meta["task"]
        self.is_lm = self.task == "language_model"
        self.class_names = meta.get("class_names") or []
        self.input = meta.get("input")
        if not self.is_lm:
            data = config_mod.from_dict(meta["config"]).data
            shape = meta["input_shape"]
            self._decode_cfg = (shape, data)
            if self.input == "clip":
                self.transform = ClipTransform(meta["mean"], meta["std"], shape[0])
            else:
                self.transform = BatchTransform(meta["mean"], meta["std"])
            self.resize = data.resize

    @property
    def name(self) -> str:
        return self.path.name

    def decode(self, data: bytes, filename: str = "upload", max_pixels: int = 40_000_000) -> torch.Tensor:
        """Upload bytes -> uint8 [C, H, W] (a clip: [T, C, H, W]); DataError when it cannot be used."""
        if not data:
            raise DataError(f"{filename}: empty upload")
        shape, data_cfg = self._decode_cfg
        if self.input == "clip":
            return self._decode_clip(data, filename, shape, data_cfg)
        c, h, w = shape
        upload = _Upload(data, filename)
        try:
            return torch.from_numpy(decode_image(upload, DecodeSettings((h, w), c, self.resize, max_pixels)))
        except DataError as e:  # Pillow names the stream by its repr
            raise DataError(str(e).replace(repr(upload), "the bytes sent")) from None

    def _decode_clip(self, data: bytes, filename: str, shape, data_cfg) -> torch.Tensor:
        t, c, h, w = shape
        suffix = Path(filename).suffix if Path(filename).suffix else ".mp4"
        with tempfile.TemporaryDirectory(prefix="trainlab-serve-") as tmp:
            p = Path(tmp) / f"clip{suffix}"
            p.write_bytes(data)
            try:
                frames = decode_clip(p, ClipSettings((h, w), c, data_cfg.resize, data_cfg.cache_frames, t))
            except DataError as e:
                raise DataError(str(e).replace(str(p), filename)) from None
        idx = frame_indices(torch.tensor([len(frames)]), t, None)[0]
        return torch.from_numpy(frames)[idx]

    @torch.no_grad()
    def probabilities(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """A batch of decoded inputs -> class probabilities [B, classes], one forward pass."""
        x = self.transform(torch.stack(inputs), train=False, gen=None)
        return self._forward(x).float().softmax(1)

    def generator(self):
        if not self.is_lm:
            raise DataError(f"{self.name} is a {self.task} model: it does not generate text")
        return self._lm

    def vocab(self) -> Vocab:
        v = self.meta["vocab"]
        return Vocab(v["itos"], v.get("level", "word"))

    def public_meta(self) -> dict:
        """GET /model: the metadata without the full recipe."""
        keep = {k: v for k, v in self.meta.items() if k not in ("config", "vocab")}
        if self.is_lm:
            keep["vocab_size"] = len(self.meta["vocab"]["itos"])
            keep["level"] = self.meta["vocab"].get("level")
        can_explain = self.model is not None and self.input == "image"
        return {"file": self.name, "backend": self.backend, "explain": can_explain, **keep}


def _load_onnx(path: Path, threads: int | None) -> ServedModel:
    from .parity import onnx_session

    sess = onnx_session(path, threads)
    props = sess.get_modelmeta().custom_metadata_map
    if "trainlab.json" not in props:
        raise CheckpointError(f"{path}: an ONNX file without trainlab's metadata (export it with trainlab export)")
    meta = json.loads(props["trainlab.json"])
    if meta["task"] == "language_model":
        return ServedModel(path, meta, "onnxruntime", None, OnnxLM(sess, meta))
    name = sess.get_inputs()[0].name

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {name: x.cpu().numpy().astype(np.float32)})[0])

    return ServedModel(path, meta, "onnxruntime", forward)


def _load_checkpoint(path: Path, device: str, trust: bool) -> ServedModel:
    from .. import api
    from .export import signature
    from .model_card import export_meta

    model = api.load(path, device=device, trust_class_path=trust)
    sig = signature(model)
    meta = export_meta(model, sig, "checkpoint")
    if meta["task"] == "language_model":
        return ServedModel(path, meta, "pytorch", None, model)
    if not meta.get("mean"):
        raise DataError(f"{path}: the checkpoint records no normalisation (trained on datasets passed from Python)")
    dev = next(model.parameters()).device
    return ServedModel(path, meta, "pytorch", lambda x: sig.module(x.to(dev)).cpu(), model=model, logits=sig.module)


def load_served(path: str | Path, device: str = "cpu", trust_class_path: bool = False,
                threads: int | None = None) -> ServedModel:
    """A checkpoint (.pt) or an ONNX export (.onnx) ready to answer requests."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, threads)
    return _load_checkpoint(path, device, trust_class_path)
