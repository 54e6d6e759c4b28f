"""A test callback that makes "a signal arrives mid-run" deterministic: at step ``step`` it holds
the run until the Trainer has seen a stop signal (so the test never races the run's speed).

It holds only in the process that first creates the file named by ``TRAINLAB_TEST_HOLD`` (the
test waits for that file, then signals), so a resumed run or a sweep's next run goes straight on.
It has no state, so runs with and without it are identical."""

from __future__ import annotations

import os
import time

from trainlab import Callback


class HoldForSignal(Callback):
    name = "hold_for_signal"

    def __init__(self, step: int = 3, timeout: float = 120.0):
        self.step, self.timeout = step, timeout

    def on_step_end(self, trainer):
        flag = os.environ.get("TRAINLAB_TEST_HOLD")
        if not flag or trainer.state.step != self.step:
            return
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # someone held already: this is the resumed or a later run
        deadline = time.time() + self.timeout
        while not trainer._interrupted and time.time() < deadline:
            time.sleep(0.01)


HOLD = [{"name": "_hold:HoldForSignal", "step": 3}]
