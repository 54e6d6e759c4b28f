"""POST /explain of `trainlab serve`: the class map (LayerCAM, ``inference.explain``) of an uploaded image,
drawn over it as a PNG (base64 in the JSON answer), for the page to show beside the top-5 bars.

Only a PyTorch checkpoint of an image classifier has what the map needs (the layers' gradients): an ONNX
export, a clip model or a language model is answered with a 400 that says so.
"""

from __future__ import annotations

import base64

import torch

OVERLAY_PX = 256  # the overlay is drawn at least this large (nearest-neighbour upscaling of small inputs)


def explain_refusal(served) -> str | None:
    """Why ``served`` cannot answer /explain, or None when it can."""
    if served.is_lm:
        return f"{served.name} is a language model: /explain draws class maps of image classifiers"
    if served.model is None:
        return (f"{served.name} is an ONNX export: the class map needs the PyTorch checkpoint's gradients; "
                f"serve the .pt checkpoint for /explain")
    if served.input != "image":
        return (f"{served.name} classifies clips: /explain draws the map of one image; for a clip run "
                f"trainlab explain CHECKPOINT CLIP")
    return None


def explain_image(served, raw: torch.Tensor) -> dict:
    """uint8 [C, H, W] as decoded for the model -> the predicted class, its probability, the layer and the
    overlay PNG (base64)."""
    from .explain import explain
    from .explain_page import overlay, to_png

    model = served.model
    dev = next(model.parameters()).device
    x = served.transform(raw.unsqueeze(0).to(dev), train=False, gen=None)
    maps = explain(model, x, forward=served.logits)
    pred = int(maps.pred[0])
    png = to_png(overlay(raw.cpu().numpy(), maps.gradcam[0].cpu().numpy()), OVERLAY_PX)
    return {"prediction": served.class_names[pred], "probability": round(float(maps.prob[0]), 6),
            "explained": served.class_names[int(maps.target[0])], "method": maps.method,
            "layer": maps.layer, "overlay_png": base64.b64encode(png).decode("ascii")}
