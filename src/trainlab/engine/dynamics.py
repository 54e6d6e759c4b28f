"""Training dynamics (opt-in callback ``dynamics``): per-layer gradient norm and update-to-weight ratio.

    train: {callbacks: [{name: dynamics, every: 50}]}

Every ``every`` optimizer steps, for each layer (the parameters of one module, e.g.
``features.0``): the norm of its gradient in that step (as the optimizer saw it, after
accumulation; before clipping and, under fp16, still scaled) and ``|w_after - w_before| /
|w_before|``, the size of the step relative to the weights (about 1e-3 is healthy for Adam/SGD;
far below says the layer is not learning, far above that it is unstable). One JSON line per
measurement in ``dynamics.jsonl`` of the run directory, scalars and histograms in TensorBoard;
the report draws them as heatmaps (layer x step) and names dead and exploding layers. The
gradients are read by post-accumulate hooks armed for the measured step only.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import torch

from ..registry import CALLBACKS
from .callbacks import Callback


def layers(model: torch.nn.Module) -> "OrderedDict[str, list[torch.nn.Parameter]]":
    """Trainable parameters grouped by the module that owns them ('features.0': [weight, bias])."""
    out: OrderedDict[str, list] = OrderedDict()
    for name, p in model.named_parameters():
        if p.requires_grad:
            out.setdefault(name.rpartition(".")[0] or name, []).append(p)
    return out


@CALLBACKS.register("dynamics")
class TrainingDynamics(Callback):
    name = "dynamics"

    def __init__(self, every: int = 50):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"dynamics: every={every!r} must be a positive integer")
        self.every = every
        self._layers = None
        self._before: dict | None = None
        self._grads: dict[tuple[str, int], float] = {}  # (layer, parameter) -> its latest squared grad norm
        self._hooks: list = []

    # the measured step: weights before it (at the end of the step before), gradients during it
    def on_fit_start(self, trainer, resumed: bool) -> None:
        model = getattr(trainer.model, "module", trainer.model)
        self._layers = layers(model)
        if resumed and trainer.run is not None:  # lines a killed run wrote after its checkpoint
            _trim(trainer.run.path / "dynamics.jsonl", trainer.state.step)
        if trainer.state.step % self.every == self.every - 1 or self.every == 1:
            self._arm()

    def _arm(self) -> None:
        self._before = {n: [p.detach().clone() for p in ps] for n, ps in self._layers.items()}
        self._grads = {}
        for n, ps in self._layers.items():
            for i, p in enumerate(ps):  # with accumulation the last call holds the whole step's gradient
                self._hooks.append(p.register_post_accumulate_grad_hook(
                    lambda t, key=(n, i): self._grads.__setitem__(key, float(t.grad.float().norm()) ** 2)))

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._before = [], None

    def on_step_end(self, trainer) -> None:
        step = trainer.state.step
        if self._before is not None and step % self.every == 0:
            self._record(trainer, step)
            self._disarm()
        if (step + 1) % self.every == 0 and self._before is None:
            self._arm()

    def _record(self, trainer, step: int) -> None:
        grad, ratio = {}, {}
        for n, ps in self._layers.items():
            before = self._before[n]
            w2 = sum(float(b.float().norm()) ** 2 for b in before)
            d2 = sum(float((p.detach() - b).float().norm()) ** 2 for p, b in zip(ps, before))
            ratio[n] = (d2 ** 0.5) / max(w2 ** 0.5, 1e-12)
            grad[n] = sum(self._grads.get((n, i), 0.0) for i in range(len(ps))) ** 0.5
        rec = {"step": step, "epoch": trainer.state.epoch, "grad_norm": grad, "update_ratio": ratio}
        if trainer.run is not None:
            with open(trainer.run.path / "dynamics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
        tb = getattr(trainer.writer, "tb", None) if trainer.writer is not None else None
        if tb is not None:
            for n in grad:
                tb.add_scalar(f"dynamics/grad_norm/{n}", grad[n], step)
                tb.add_scalar(f"dynamics/update_ratio/{n}", ratio[n], step)
            tb.add_histogram("dynamics/log10_update_ratio", torch.tensor(
                [max(v, 1e-12) for v in ratio.values()]).log10(), step)
            tb.add_histogram("dynamics/log10_grad_norm", torch.tensor(
                [max(v, 1e-12) for v in grad.values()]).log10(), step)

    def on_fit_end(self, trainer, result) -> None:
        self._disarm()

    def state_dict(self) -> dict:
        return {"every": self.every}

    def load_state_dict(self, state: dict) -> None:
        self.every = state.get("every", self.every)


def _trim(path, step: int) -> None:
    if not path.exists():
        return
    from .. import atomic

    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    atomic.write_text(path, "".join(line + "\n" for line in keep))
