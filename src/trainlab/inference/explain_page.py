"""What ``trainlab explain`` writes: PNG overlays per sample, small class-map thumbnails for the report,
index.json and an HTML page that shows them side by side."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import numpy as np

from .. import atomic

PANEL_PX = 192   # each panel of a sample's PNG is drawn at least this large (nearest-neighbour upscaling)
THUMB_PX = 96    # the report's class-map thumbnails


def _rgb(img: np.ndarray) -> np.ndarray:
    """uint8 [C, H, W] -> float [H, W, 3] in [0, 1]."""
    x = img.astype(np.float32) / 255.0
    x = np.repeat(x[:1], 3, 0) if x.shape[0] == 1 else x[:3]
    return x.transpose(1, 2, 0)


def _heat(m: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["jet"](np.clip(m, 0, 1))[..., :3]


def overlay(img: np.ndarray, m: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with a map over it (jet colours, weighted by the map so cold regions stay visible)."""
    base = _rgb(img)
    a = alpha * (0.35 + 0.65 * np.clip(m, 0, 1))[..., None]
    return (1 - a) * base + a * _heat(m)


def to_png(arr: np.ndarray, px: int) -> bytes:
    from PIL import Image

    pil = Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, px // max(1, min(arr.shape[0], arr.shape[1])))
    if scale > 1:
        pil = pil.resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def sample_panels(img: np.ndarray, cam: np.ndarray, sal: np.ndarray) -> np.ndarray:
    """[image | class-map overlay | saliency] for an image ([C, H, W]); a clip ([T, C, H, W]) gets the three
    as rows and its frames as columns."""
    gap = max(1, img.shape[-1] // 32)
    if img.ndim == 3:
        parts = [_rgb(img), overlay(img, cam), _heat(sal) * 0.6 + _rgb(img) * 0.4]
        out = [np.pad(p, ((0, 0), (0, gap), (0, 0)), constant_values=1) for p in parts]
        return np.concatenate(out, axis=1)
    rows = [sample_panels(img[t], cam[t], sal[t]) for t in range(img.shape[0])]
    per = [np.split(r, 3, axis=1) for r in rows]  # each frame's three panels
    lines = [np.concatenate([p[k] for p in per], axis=1) for k in range(3)]
    return np.concatenate([np.pad(line, ((0, gap), (0, 0), (0, 0)), constant_values=1) for line in lines], 0)


CLASS_OF = {"pred": "the predicted class", "true": "the true class", "second": "the runner-up class"}  # --class-of


def write_outputs(out: Path, samples: list[dict], raws, maps, class_names: list[str], method_note: str,
                  class_of: str = "pred") -> Path:
    """One PNG per sample (``NNN_name.png``), its class-map thumbnail (``thumbs/NNN.png``), index.json and
    index.html in ``out``. ``samples``: sample_id, target (or None); ``raws``: uint8 inputs as shown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    items = []
    for k, s in enumerate(samples):
        img, cam, sal = raws[k].cpu().numpy(), maps.gradcam[k].cpu().numpy(), maps.saliency[k].cpu().numpy()
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(s["sample_id"]).stem)[:40]
        name = f"{k:03d}_{stem}.png"
        atomic.write_bytes(out / name, to_png(sample_panels(img, cam, sal), PANEL_PX))
        first = (img[img.shape[0] // 2], cam[cam.shape[0] // 2]) if img.ndim == 4 else (img, cam)
        atomic.write_bytes(out / "thumbs" / f"{k:03d}.png", to_png(overlay(*first), THUMB_PX))
        pred, t = int(maps.pred[k]), s.get("target")
        items.append({"sample_id": s["sample_id"], "file": name, "thumb": f"thumbs/{k:03d}.png",
                      "pred": pred, "pred_name": class_names[pred], "prob_pred": round(float(maps.prob[k]), 6),
                      "target": t, "target_name": class_names[t] if t is not None else None,
                      "correct": None if t is None else t == pred, "explained": class_names[int(maps.target[k])]})
    index = {"method": maps.method, "layer": maps.layer, "class_of": class_of, "explained_class": CLASS_OF[class_of],
             "note": method_note, "items": items}
    atomic.write_text(out / "index.json", json.dumps(index, indent=1))
    atomic.write_text(out / "index.html", _page(index))
    return out / "index.html"


def _page(index: dict) -> str:
    rows = []
    for e in index["items"]:
        colour = "#1a7f37" if e["correct"] else "#cf222e" if e["correct"] is False else "#222"
        truth = f"true <b>{html.escape(e['target_name'])}</b>, " if e["target_name"] is not None else ""
        rows.append(f'<div class="s"><div class="t">{html.escape(e["sample_id"])}</div>'
                    f'<div>{truth}predicted <b style="color:{colour}">{html.escape(e["pred_name"])}</b> '
                    f'({e["prob_pred"]:.3f}); maps of the class <b>{html.escape(e["explained"])}</b></div>'
                    f'<img src="{html.escape(e["file"])}" alt="{html.escape(e["sample_id"])}"></div>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>trainlab explain</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            ".s{margin:1.2em 0;padding-bottom:.8em;border-bottom:1px solid #eee} .t{color:#666;font-size:.85em}"
            "img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd;margin-top:.3em}"
            ".note{color:#555;font-size:.9em}</style></head><body>\n<h1>Where the network looks</h1>\n"
            f"<p class=\"note\">Each row: the input as the model saw it, the class map "
            f"({html.escape(index['method'])}) of {html.escape(index['explained_class'])} over it "
            f"(read from {html.escape(index['layer'])}; red = most weight), and gradient saliency (|d score / d "
            f"pixel|). {html.escape(index['note'])}</p>\n" + "\n".join(rows) + "\n</body></html>\n")
