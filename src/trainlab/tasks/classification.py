"""Image classification: cross-entropy on logits, top-1/top-5, per-class metrics on request."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TaskConfig
from ..errors import DataError
from ..registry import TASKS
from .base import Task


class ClassificationMeter:
    """Sums over an epoch: loss, top-1/top-5 hits; optionally every prediction for details."""

    def __init__(self, num_classes: int, keep_predictions: bool = False):
        self.num_classes = num_classes
        self.keep = keep_predictions
        self.n = 0
        self._acc = None  # device tensors, read back once at the end (no sync per batch)
        self.preds: list[torch.Tensor] = []
        self.probs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.index: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []  # per-sample cross-entropy (no label smoothing)

    def update(self, out: dict, batch: dict) -> None:
        logits, y = out["outputs"].detach(), batch["targets"]
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == y.view(-1, 1)
        stats = torch.stack([out["loss"].detach().float() * len(y), hit[:, 0].sum().float(),
                             hit.any(1).sum().float()])
        self._acc = stats if self._acc is None else self._acc + stats
        self.n += len(y)
        if self.keep:
            p = logits.float().softmax(1)
            self.probs.append(p.cpu())
            self.preds.append(top[:, 0].cpu())
            self.targets.append(y.cpu())
            self.index.append(batch["index"].cpu())
            self.losses.append(F.cross_entropy(logits.float(), y, reduction="none").cpu())

    def state_dict(self) -> dict:
        return {"n": self.n, "sums": None if self._acc is None else self._acc.cpu()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.n = state["n"]
        self._acc = None if state["sums"] is None else state["sums"].to(device)

    def compute(self) -> dict:
        if self._acc is None or self.n == 0:
            return {"loss": float("nan"), "acc1": float("nan"), "acc5": float("nan"), "samples": 0}
        loss, h1, h5 = self._acc.tolist()
        return {"loss": loss / self.n, "acc1": h1 / self.n, "acc5": h5 / self.n, "samples": self.n}

    def predictions(self) -> dict[str, torch.Tensor]:
        """What ``keep_predictions`` kept, in loader order: ``index`` (position in the split),
        ``target``, ``pred`` (top-1 class), ``probs`` ([N, num_classes] softmax) and ``loss`` (per sample)."""
        if not self.keep:
            raise ValueError("this meter kept no predictions: create it with keep_predictions=True")
        if not self.probs:
            return {"index": torch.zeros(0, dtype=torch.long), "target": torch.zeros(0, dtype=torch.long),
                    "pred": torch.zeros(0, dtype=torch.long), "probs": torch.zeros(0, self.num_classes),
                    "loss": torch.zeros(0)}
        return {"index": torch.cat(self.index), "target": torch.cat(self.targets), "pred": torch.cat(self.preds),
                "probs": torch.cat(self.probs), "loss": torch.cat(self.losses)}

    def details(self, class_names: list[str] | None = None) -> dict:
        """Per-class precision/recall/F1 and the confusion matrix (torchmetrics)."""
        class_names = class_names or [str(i) for i in range(self.num_classes)]
        from torchmetrics.functional.classification import (
            multiclass_confusion_matrix, multiclass_f1_score, multiclass_precision, multiclass_recall)

        preds, targets = torch.cat(self.preds), torch.cat(self.targets)
        c = self.num_classes
        kw = dict(num_classes=c, average=None, zero_division=0)
        prec = multiclass_precision(preds, targets, **kw).tolist()
        rec = multiclass_recall(preds, targets, **kw).tolist()
        f1 = multiclass_f1_score(preds, targets, **kw).tolist()
        support = torch.bincount(targets, minlength=c).tolist()
        per_class = [{"class": class_names[i], "precision": prec[i], "recall": rec[i], "f1": f1[i],
                      "support": support[i]} for i in range(c)]
        cm = multiclass_confusion_matrix(preds, targets, num_classes=c).tolist()
        macro = {k: sum(r[k] for r in per_class) / c for k in ("precision", "recall", "f1")}
        return {"per_class": per_class, "macro": macro, "confusion_matrix": cm}


def shift(x: torch.Tensor, d: int) -> torch.Tensor:
    """Images [..., H, W] moved by ``d`` pixels along both axes (d=1: content moves up-left), the
    edge filled by reflection."""
    h, w = x.shape[-2:]
    flat = x.reshape(-1, *x.shape[-3:])  # reflect padding takes [N, C, H, W]; clips fold time into N
    padded = F.pad(flat, (1, 1, 1, 1), mode="reflect")
    out = padded[..., 1 + d:1 + d + h, 1 + d:1 + d + w].reshape(x.shape)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


@TASKS.register("classification")
class ClassificationTask(Task):
    """Turns a batch into {loss, outputs}; the Trainer never looks inside."""

    metrics = {"loss": "min", "acc1": "max", "acc5": "max"}
    primary_metric = "acc1"
    log_metrics = ("acc1", "acc5")

    def __init__(self, cfg: TaskConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        self.label_smoothing = cfg.label_smoothing
        self.tta = getattr(cfg, "tta", "none")
        self.class_weights: torch.Tensor | None = None  # set by build_parts from task.class_weights

    def set_class_weights(self, weights) -> None:
        """Per-class weights of the training loss (None: all 1)."""
        self.class_weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def step(self, model: nn.Module, batch: dict, train: bool) -> dict:
        x = batch["inputs"]
        if train or self.tta == "none":
            logits = self.logits(model, x)  # [B, num_classes]
        else:
            logits = self.tta_logits(model, x)
        self._check_logits(model, logits, x)
        smoothing = self.label_smoothing if train else 0.0
        weight = self.class_weights.to(logits.device) if train and self.class_weights is not None else None
        # MixUp/CutMix batches carry soft targets (rows sum to 1); training uses them, evaluation never mixes
        target = batch["soft_targets"] if train and "soft_targets" in batch else batch["targets"]
        loss = F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=smoothing)
        return {"loss": loss, "outputs": logits}

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def _check_logits(self, model: nn.Module, logits, x: torch.Tensor) -> None:
        """A model whose output is not [batch, classes] logits gets an error saying what it returned."""
        name = type(getattr(model, "module", model)).__name__
        if not isinstance(logits, torch.Tensor):
            raise DataError(f"model {name} returned a {type(logits).__name__}, not a tensor of logits [batch, "
                            f"{self.num_classes}]: a classification model's forward returns the logits alone "
                            f"(return the first element of the tuple, or wrap the model)")
        if logits.dim() != 2 or logits.shape != (x.shape[0], self.num_classes):
            raise DataError(f"model {name} returned shape {tuple(logits.shape)} for a batch of {x.shape[0]}; "
                            f"expected logits [{x.shape[0]}, {self.num_classes}] ({self.num_classes} classes)")

    def tta_logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """'flip': the mean of the image's and its mirror's logits. 'flip_translate' (airbench's level 2):
        half that, plus a quarter each of the same for the image shifted one pixel up-left and down-right
        (reflect padding): 6 forward passes."""
        def mirror(v: torch.Tensor) -> torch.Tensor:
            return (self.logits(model, v) + self.logits(model, v.flip(-1))) / 2

        logits = mirror(x)
        if self.tta == "flip_translate":
            logits = logits / 2 + (mirror(shift(x, -1)) + mirror(shift(x, 1))) / 4
        return logits

    def meter(self, keep_predictions: bool = False) -> ClassificationMeter:
        return ClassificationMeter(self.num_classes, keep_predictions)


@TASKS.register("video")
class VideoClassificationTask(ClassificationTask):
    """Clips [B, T, C, H, W]: a clip model (cnn_lstm, r3d_18) takes them whole; an image model sees every
    frame (time folded into the batch) and its logits are averaged over the frames."""

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise DataError(f"task 'video' needs clips [B, T, C, H, W], got inputs of shape {tuple(x.shape)}; "
                            f"use a video dataset (videofolder, ucf101) or task.name=classification")
        if getattr(model, "takes_clips", False):
            return model(x)
        b, t = x.shape[:2]
        return model(x.flatten(0, 1)).view(b, t, -1).mean(1)  # [B*T, C, H, W] -> [B, T, classes] -> [B, classes]
