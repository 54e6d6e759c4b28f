"""Weight averaging as the model of record: EMA and SWA through ``torch.optim.swa_utils``.

``train.weight_average=ema`` keeps an exponential moving average of the weights, updated after
every optimizer step (``train.ema_decay``); ``swa`` an equal average of the weights at the end of
each epoch (Izmailov et al.). Both start at ``train.average_start_epoch`` and average the
buffers too (batch-norm statistics: ``use_buffers=True``, so no extra pass over the data).

The average is what the run is judged and kept by: at each epoch end the callback swaps it into
the model before the evaluations, so valid/test metrics, best.pt and the final test are the
average's, and swaps the trained weights back after the other callbacks have seen the
evaluation (it runs after best_checkpoint). last.pt holds the trained weights and, as this
callback's state, the average and its count: a resumed run continues both exactly.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .callbacks import Callback


class WeightAverage(Callback):
    name = "weight_average"

    def __init__(self, kind: str = "ema", decay: float = 0.999, start_epoch: float = 0.0):
        self.kind, self.decay, self.start_epoch = kind, decay, start_epoch
        self.average: Optional[AveragedModel] = None
        self._pending: Optional[dict] = None  # a state loaded before the model exists
        self._trained: Optional[list[torch.Tensor]] = None  # the trained weights while the average is swapped in

    def _ensure(self, model: torch.nn.Module) -> AveragedModel:
        if self.average is None:
            fn = get_ema_multi_avg_fn(self.decay) if self.kind == "ema" else None
            self.average = AveragedModel(model, multi_avg_fn=fn, use_buffers=True)
            if self._pending is not None:
                self.average.load_state_dict(self._pending)
                self._pending = None
        return self.average

    def on_fit_start(self, trainer, resumed: bool) -> None:
        self._ensure(trainer.model)

    def _started(self, trainer) -> bool:
        s = trainer.state
        return s.epoch + s.batch / max(1, len(trainer.loaders["train"])) >= self.start_epoch

    def on_step_end(self, trainer) -> None:
        if self.kind == "ema" and self._started(trainer):
            self._ensure(trainer.model).update_parameters(trainer.model)

    def on_epoch_end(self, trainer, epoch: int, partial: bool) -> None:
        avg = self._ensure(trainer.model)
        if self.kind == "swa" and not partial and epoch + 1 > self.start_epoch:
            avg.update_parameters(trainer.model)
        if int(avg.n_averaged) == 0:
            return  # nothing averaged yet: the epoch is judged by the trained weights
        live = list(trainer.model.state_dict().values())
        self._trained = [t.detach().clone() for t in live]
        with torch.no_grad():
            for t, a in zip(live, avg.module.state_dict().values()):
                t.copy_(a)

    def on_eval_end(self, trainer, epoch: int, evals: dict, partial: bool) -> bool:
        if self._trained is not None:
            with torch.no_grad():
                for t, saved in zip(trainer.model.state_dict().values(), self._trained):
                    t.copy_(saved)
            self._trained = None
        return False

    def state_dict(self) -> dict:
        if self.average is None:
            return {"average": self._pending}
        return {"average": self.average.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.average is None:
            self._pending = state["average"]
        elif state["average"] is not None:
            self.average.load_state_dict(state["average"])
