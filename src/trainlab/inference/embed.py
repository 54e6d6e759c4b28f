"""``trainlab embed CKPT``: the penultimate-layer features of a split, cached in the run directory.

The features are the input of the classifier head (``models.zoo.head``, the last ``nn.Linear``; a
video model that sees frames one by one gets them averaged over the clip's frames, as its logits
are), for at most ``limit`` samples of the split (a seeded random subset when the split is larger).
Written once into ``RUN/embeddings/`` (the report reads them; it never runs a model):

- ``features.npy``: float32 [N, D]; above ``MAX_DIMS`` dimensions, their first ``MAX_DIMS`` principal
  components, or N of them when there are fewer samples, which keeps all (the share kept is in meta.json);
- ``points.csv``: per sample its split position, id, true and predicted class, and a 2-D t-SNE map
  (scikit-learn, seeded; on the first 50 principal components, as scikit-learn advises);
- ``projector/``: TensorBoard's embedding projector (``SummaryWriter.add_embedding``) with the classes
  as metadata and, for image data, a sprite of ``SPRITE_PX`` thumbnails;
- ``meta.json``: what the cache was computed from (the checkpoint's path, size and modification time,
  split, limit); a second call with the same inputs reuses it, a different one needs ``force``.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import atomic
from ..errors import ConfigError, DataError

LOG = logging.getLogger("trainlab")
MAX_DIMS = 256
SPRITE_PX = 32
TSNE_PCA = 50


def _key(checkpoint: Path, split: str, limit: int, overrides) -> dict:
    st = checkpoint.stat()
    return {"checkpoint": str(checkpoint.resolve()), "checkpoint_bytes": st.st_size,
            "checkpoint_mtime_ns": st.st_mtime_ns, "split": split, "limit": limit, "overrides": list(overrides)}


def _cached(out: Path, key: dict) -> bool | None:
    """True: ``out`` holds this key's embeddings; False: another's; None: no embeddings there."""
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    done = all((out / f).is_file() for f in ("features.npy", "points.csv"))
    return done and {k: meta.get(k) for k in key} == key


def features(model, forward, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features [N, D], logits [N, classes]) of inputs ``x``: the input of the head."""
    from ..models.zoo import head

    _, lin = head(model)
    got = []
    handle = lin.register_forward_hook(lambda m, inp, out: got.append(inp[0].detach().flatten(1)))
    feats, logits = [], []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                got.clear()
                xb = x[i:i + batch_size]
                logits.append(forward(xb).float())
                f = got[-1].float()
                feats.append(f.view(len(xb), -1, f.shape[1]).mean(1) if len(f) != len(xb) else f)
    finally:
        handle.remove()
    return torch.cat(feats).cpu(), torch.cat(logits).cpu()


def _reduce(feats: np.ndarray) -> tuple[np.ndarray, float]:
    """At most MAX_DIMS columns (principal components beyond that; no more than the samples, which loses
    nothing) and the share of variance kept."""
    if feats.shape[1] <= MAX_DIMS:
        return feats, 1.0
    from sklearn.decomposition import PCA

    pca = PCA(min(MAX_DIMS, len(feats)), random_state=0).fit(feats)
    return pca.transform(feats).astype(np.float32), float(pca.explained_variance_ratio_.sum())


def tsne_map(feats: np.ndarray, seed: int = 0) -> np.ndarray:
    """[N, D] -> [N, 2] t-SNE coordinates (on the first TSNE_PCA principal components)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if len(feats) < 5:
        raise DataError(f"a 2-D map needs at least 5 samples, the split has {len(feats)}")
    if feats.shape[1] > TSNE_PCA and len(feats) > TSNE_PCA:
        feats = PCA(TSNE_PCA, random_state=seed).fit_transform(feats)
    perplexity = min(30.0, (len(feats) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed).fit_transform(feats)


def _sprites(raw: torch.Tensor) -> torch.Tensor | None:
    """uint8 [N, C, H, W] (clips [N, T, C, H, W]: the middle frame) -> float [N, C, s, s] in [0, 1]."""
    if raw.dtype != torch.uint8:
        return None
    img = raw[:, raw.shape[1] // 2] if raw.dim() == 5 else raw
    img = img[:, :3] if img.shape[1] >= 3 else img[:, :1]
    return F.interpolate(img.float() / 255, size=(SPRITE_PX, SPRITE_PX), mode="area").cpu()


def write_projector(folder: Path, feats: np.ndarray, rows: list[dict], sprites, tag: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    try:
        meta = [[r["target_name"], r["pred_name"], "yes" if r["correct"] else "no"] for r in rows]
        writer.add_embedding(torch.from_numpy(feats), metadata=meta, label_img=sprites, tag=tag,
                             metadata_header=["true", "predicted", "correct"])
    finally:
        writer.close()


def _subset(n: int, limit: int) -> list[int]:
    if n <= limit:
        return list(range(n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].tolist())


def embed_checkpoint(checkpoint, split: str = "test", limit: int = 2000, out=None, force: bool = False,
                     device: str = "cpu", trust_class_path: bool = False, overrides=()) -> tuple[Path, bool]:
    """(the embeddings folder, whether it was computed now rather than reused); ``overrides``: data.*
    settings (data.root=PATH)."""
    from .. import api
    from ..build import build_task
    from ..analysis.embedding_section import points_csv
    from ..predictions import sample_id
    from .explain_run import split_inputs, split_loader

    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ConfigError(f"{ckpt}: no such checkpoint")
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    out = Path(out) if out is not None else run_dir / "embeddings"
    key = _key(ckpt, split, limit, overrides)
    state = _cached(out, key)
    if state and not force:
        LOG.info("embeddings of %s (%s split) already in %s: reused", ckpt, split, out)
        return out, False
    if (state is False or (state is None and out.is_dir() and any(out.iterdir()))) and not force:
        raise ConfigError(f"{out} holds other files or the embeddings of another checkpoint or split: nothing is "
                          f"replaced unless you pass --force (or choose another --out)")
    model = api.load(ckpt, device=device, trust_class_path=trust_class_path)
    cfg = model.trainlab_config
    if cfg.task.name not in ("classification", "video"):
        raise ConfigError(f"{ckpt} is a {cfg.task.name} checkpoint: embed maps the features of image and clip "
                          f"classifiers")
    loader = split_loader(model, split, next(model.parameters()).device, overrides)
    index = _subset(len(loader.data), limit)
    raw, x, targets = split_inputs(loader, index)
    task = build_task(cfg, len(model.class_names))
    feats, logits = features(model, lambda v: task.logits(model, v), x)
    reduced, kept = _reduce(feats.numpy())
    xy = tsne_map(reduced)
    names = model.class_names
    preds = logits.argmax(1).tolist()
    rows = [{"index": i, "sample_id": sample_id(loader, i), "target": t, "target_name": names[t], "pred": p,
             "pred_name": names[p], "correct": int(t == p), "x": float(a), "y": float(b)}
            for i, t, p, (a, b) in zip(index, targets, preds, xy)]
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, reduced.astype(np.float32))
    atomic.write_bytes(out / "features.npy", buf.getvalue())
    atomic.write_text(out / "points.csv", points_csv(rows))
    write_projector(out / "projector", reduced, rows, _sprites(raw), f"penultimate_{split}")
    meta = {**key, "samples": len(rows), "of": len(loader.data), "feature_dims": int(feats.shape[1]),
            "stored_dims": int(reduced.shape[1]), "variance_kept": round(kept, 4), "class_names": names,
            "method": f"t-SNE (scikit-learn, perplexity {min(30.0, (len(rows) - 1) / 3):.3g}, seed 0)"}
    atomic.write_text(out / "meta.json", json.dumps(meta, indent=1))
    LOG.info("embedded %d %s samples (%d features) into %s", len(rows), split, feats.shape[1], out)
    return out, True
