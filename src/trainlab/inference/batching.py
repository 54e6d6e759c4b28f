"""Dynamic micro-batching: requests that arrive within ``wait_ms`` of the first one waiting are
answered by one call of ``fn`` on all of them (up to ``max_batch``), run in one worker thread so
the event loop keeps accepting requests meanwhile. ``wait_ms=0`` turns it off: one call per
request, one at a time (the baseline the serve benchmark compares against).

The wait is only spent when more requests are on their way (``arriving()``: a request being read
and decoded): a lone request goes straight to the model, so batching costs nothing at
concurrency 1."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


class MicroBatcher:
    def __init__(self, fn, wait_ms: float = 5.0, max_batch: int = 64):
        self.fn = fn  # list of items -> list of results, same order
        self.wait = max(0.0, wait_ms) / 1000
        self.max_batch = max_batch if self.wait > 0 else 1
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="trainlab-batch")
        self.stats = {"batches": 0, "items": 0, "largest": 0}
        self._loop = None
        self._arriving = 0

    @contextmanager
    def arriving(self):
        """Around the work before ``submit`` (reading, decoding): the batch waits for such requests."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            if self._loop is not None:
                self._event.set()

    def _start(self, loop) -> None:
        """On the first request of an event loop (a test client may bring a new loop per request)."""
        self._loop, self._pending, self._event = loop, deque(), asyncio.Event()
        self._task = loop.create_task(self._run())

    async def submit(self, item):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._start(loop)
        fut = loop.create_future()
        self._pending.append((item, fut))
        self._event.set()
        return await fut

    async def _gather(self) -> None:
        """Wait up to ``self.wait`` after the first request for the batch to fill."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while len(self._pending) < self.max_batch and self._arriving > 0:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except asyncio.TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._event.clear()
                await self._event.wait()
                continue
            if self.wait > 0:
                await self._gather()
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # a request cancelled meanwhile
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [item for item, _ in batch])
            except Exception as e:  # noqa: BLE001 - the batch's requests get the error; the loop goes on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.stats["batches"] += 1
            self.stats["items"] += len(batch)
            self.stats["largest"] = max(self.stats["largest"], len(batch))
            for (_, fut), r in zip(batch, results):
                if not fut.done():
                    fut.set_result(r)

    def describe(self) -> dict:
        on = self.wait > 0
        return {"enabled": on, "wait_ms": self.wait * 1000, "max_batch": self.max_batch, **self.stats}
