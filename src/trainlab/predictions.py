"""Per-sample results of a classification (or video) evaluation: ``predictions.csv`` and thumbnails.

One row per sample of the split: its position in the split (``index``), its stable id (a file
path or 'mnist:test:17'), target and prediction (index and name), the probability of each, the
loss, and the top-k classes. ``trainlab eval`` writes the CSV beside the checkpoint; the final
test evaluation writes it into the run directory, with small thumbnails of the samples a report
shows (top losses, least confident correct, examples of the most confused pairs) in
``thumbnails/``, so the report needs neither the data nor a model.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from . import atomic  # no torch at import: the report reads predictions.csv through this module

COLUMNS = ["index", "sample_id", "target", "target_name", "pred", "pred_name", "prob_target", "prob_pred",
           "loss", "correct", "topk"]
THUMB_PX = 64          # longest side of a thumbnail
GALLERY = {"top_losses": 24, "least_confident": 12, "pairs": 6, "per_pair": 4}


def sample_id(loader, i: int) -> str:
    """The stable name of sample ``i`` of the loader's split (its position when the data has none)."""
    data = getattr(loader, "data", None)
    return data.sample_id(i) if data is not None and hasattr(data, "sample_id") else str(i)


def records(pred: dict, loader, class_names: list[str] | None, topk: int = 5) -> list[dict]:
    """``pred``: a meter's ``predictions()`` -> one dict per sample, in the columns of ``COLUMNS``."""
    probs = pred["probs"]
    n_cls = probs.shape[1] if probs.dim() == 2 else 0
    names = list(class_names) if class_names else [str(i) for i in range(n_cls)]
    k = min(topk, n_cls)
    top_p, top_i = probs.topk(k, dim=1) if len(probs) else (probs[:, :0], probs[:, :0].long())
    rows = []
    for r, (i, t, p) in enumerate(zip(pred["index"].tolist(), pred["target"].tolist(), pred["pred"].tolist())):
        rows.append({"index": i, "sample_id": sample_id(loader, i), "target": t, "target_name": names[t],
                     "pred": p, "pred_name": names[p], "prob_target": float(probs[r, t]),
                     "prob_pred": float(probs[r, p]), "loss": float(pred["loss"][r]), "correct": int(t == p),
                     "topk": " ".join(f"{c}:{q:.4f}" for c, q in zip(top_i[r].tolist(), top_p[r].tolist()))})
    return rows


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "prob_target": f"{r['prob_target']:.6g}", "prob_pred": f"{r['prob_pred']:.6g}",
                    "loss": f"{r['loss']:.6g}"})
    return atomic.write_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict]:
    """predictions.csv back as dicts with numbers (no torch: the report reads it)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("index", "target", "pred", "correct"):
            r[k] = int(r[k])
        for k in ("prob_target", "prob_pred", "loss"):
            r[k] = float(r[k])
    return rows


def gallery_selection(rows: list[dict]) -> dict[str, list[int]]:
    """Which rows (positions in ``rows``) a report shows: the mistakes with the highest loss, the correct
    predictions with the lowest probability, and examples of the most frequent confusions."""
    wrong = sorted((j for j, r in enumerate(rows) if not r["correct"]), key=lambda j: -rows[j]["loss"])
    right = sorted((j for j, r in enumerate(rows) if r["correct"]), key=lambda j: rows[j]["prob_pred"])
    pairs: dict[tuple[int, int], list[int]] = {}
    for j in wrong:  # highest loss first, so each pair's examples are its most confident mistakes
        pairs.setdefault((rows[j]["target"], rows[j]["pred"]), []).append(j)
    top_pairs = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:GALLERY["pairs"]]
    return {"top_losses": wrong[:GALLERY["top_losses"]], "least_confident": right[:GALLERY["least_confident"]],
            "pairs": [j for _, js in top_pairs for j in js[:GALLERY["per_pair"]]]}


def thumbnail_png(sample, length: int | None = None) -> bytes:
    """uint8 [C, H, W] (an image) or [L, C, H, W] (a clip: up to 8 of its frames side by side) -> PNG."""
    import torch
    from PIL import Image

    px, frame_w = THUMB_PX, sample.shape[-1]
    if sample.dim() == 4:
        n = int(length or sample.shape[0])
        pick = torch.linspace(0, n - 1, min(8, n)).round().long()
        sample = torch.cat(list(sample[pick]), dim=2)  # [C, H, k*W]: the frames in a row
        px = THUMB_PX * 3 // 4
    h = sample.shape[1]
    img = sample[:3] if sample.shape[0] >= 3 else sample[:1]
    pil = Image.fromarray(img.permute(1, 2, 0).squeeze(-1).contiguous().cpu().numpy())
    scale = px / max(h, frame_w)
    pil = pil.resize((max(1, round(sample.shape[2] * scale)), max(1, round(h * scale))),
                     Image.NEAREST if h < px else Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def write_thumbnails(folder: Path, rows: list[dict], loader, split: str = "test") -> int:
    """The thumbnails of ``gallery_selection(rows)`` in ``folder`` (``<split>_<index>.png``) and
    ``gallery.json`` naming them; nothing when the data holds no uint8 images (datasets from Python)."""
    import torch

    data = getattr(loader, "data", None)
    images = getattr(data, "images", None)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        return 0
    chosen = gallery_selection(rows)
    folder.mkdir(parents=True, exist_ok=True)
    lengths = getattr(data, "lengths", None)
    done = set()
    for j in {j for js in chosen.values() for j in js}:
        i = rows[j]["index"]
        n = int(lengths[i]) if lengths is not None else None
        atomic.write_bytes(folder / f"{split}_{i}.png", thumbnail_png(images[i], n))
        done.add(i)
    sel = {k: [rows[j]["index"] for j in js] for k, js in chosen.items()}
    atomic.write_text(folder / "gallery.json", json.dumps({"split": split, **sel}, indent=1))
    return len(done)


def write_run_predictions(run_path: Path, meter, loader, class_names, itos: list[str] | None = None) -> Path | None:
    """The final test evaluation's per-sample results in the run directory: a classification's
    predictions.csv and thumbnails, a language model's token_losses.json."""
    if not hasattr(meter, "predictions") or not getattr(meter, "keep", False):
        return None
    pred = meter.predictions()
    if "passage" in pred:
        return write_token_losses(Path(run_path) / "token_losses.json", pred, itos) if itos else None
    rows = records(pred, loader, class_names)
    path = write_csv(Path(run_path) / "predictions.csv", rows)
    write_thumbnails(Path(run_path) / "thumbnails", rows, loader)
    return path


def write_eval_predictions(path: Path, pred: dict, loader, class_names, itos: list[str] | None = None) -> Path | None:
    """trainlab eval's per-sample results: a classification's rows (predictions.csv), a language model's
    per-token summary (token_losses.json); None when the meter kept neither."""
    if "probs" in pred:
        return write_csv(path, records(pred, loader, class_names))
    if "passage" in pred and itos:
        return write_token_losses(Path(path), pred, itos)
    return None


BUCKETS = [(0, 100), (100, 1000), (1000, 10000), (10000, None)]  # frequency ranks in the training vocabulary


def token_summary(pred: dict, itos: list[str], words: int = 30, passage: int = 200) -> dict:
    """A language model's per-token test losses, summarised (bounded): perplexity per training-frequency
    bucket (the vocabulary is ordered most frequent first), the words with the highest mean surprisal
    (seen at least 3 times), and a passage of the text with each token's surprisal in bits."""
    import math

    import torch

    target, loss = pred["target"], pred["loss"].double()
    specials = [i for i, t in enumerate(itos[:2]) if t.startswith("<")]
    rank = target - len(specials)
    out_buckets = []
    for name, mask in [("<unk>, <eos>", rank < 0)] + [
            (f"{lo + 1}-{hi}" if hi else f"{lo + 1}+", (rank >= lo) & ((rank < hi) if hi else True))
            for lo, hi in BUCKETS]:
        n = int(mask.sum())
        if n:
            out_buckets.append({"ranks": name, "tokens": n, "share": n / len(target),
                                "ppl": math.exp(min(float(loss[mask].mean()), 700.0))})
    sums = torch.zeros(len(itos), dtype=torch.float64).index_add_(0, target, loss)
    counts = torch.bincount(target, minlength=len(itos))
    seen = (counts >= 3).nonzero().view(-1)
    mean = sums[seen] / counts[seen]
    top = seen[mean.argsort(descending=True)[:words]].tolist()
    bits = 1 / math.log(2)
    p = pred["passage"]
    return {"tokens": len(target), "buckets": out_buckets,
            "surprising": [{"word": itos[i], "count": int(counts[i]), "bits": float(sums[i] / counts[i]) * bits}
                           for i in top],
            "passage": [[itos[int(i)], float(v) * bits] for i, v in zip(p[0][:passage].tolist(), p[1][:passage].tolist())]}


def write_token_losses(path: Path, pred: dict, itos: list[str]) -> Path:
    return atomic.write_text(path, json.dumps(token_summary(pred, itos), indent=1))
