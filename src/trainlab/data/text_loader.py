"""BPTT windows over a token stream, with no per-token Python work.

The split is cut into ``batch_size`` contiguous streams held as one [B, L] tensor on the
device (stream b is tokens b*L .. (b+1)*L-1, as pytorch/examples' ``batchify`` does). Batch k
is the window ``[:, s_k : s_{k+1}]`` and its targets the same window shifted by one token.
With ``variable`` the window lengths are redrawn each epoch from (seed, epoch) around
``bptt`` (AWD-LSTM's scheme), rescaled so that the number of windows never changes: the
schedule's step count stays exact and a resumed run sees the same windows.
"""

from __future__ import annotations

from typing import Iterator

import torch

from ..errors import DataError
from .loaders import _seed


class BPTTLoader:
    """Yields {"inputs": [B, T] ids, "targets": [B, T] next ids, "index": [1] window number}."""

    def __init__(self, ids: torch.Tensor, batch_size: int, bptt: int, *, device: torch.device,
                 seed: int = 0, variable: bool = False, split: str = "train"):
        n = len(ids) // batch_size
        if n < 2:
            raise DataError(f"the {split} split has {len(ids):,} tokens: too few for {batch_size} streams "
                            f"(need at least 2 per stream); lower data.batch_size / data.eval_batch_size")
        from ..engine.distributed import shard

        rows = shard(torch.arange(batch_size))  # under torchrun each rank carries its own streams
        if len(rows) == 0:
            raise DataError(f"the {split} split has {batch_size} streams, fewer than the processes; "
                            f"raise data.batch_size / data.eval_batch_size to at least train.devices")
        self.data = ids[:n * batch_size].view(batch_size, n)[rows].to(device)  # [B / world, L]
        self.batch_size, self.bptt, self.seed, self.variable = batch_size, bptt, seed, variable
        self.device = device

    @property
    def length(self) -> int:
        return self.data.shape[1]

    def __len__(self) -> int:
        return -(-(self.length - 1) // self.bptt)

    def bounds(self, epoch: int) -> list[int]:
        """Window start positions and the final end: len(self) + 1 increasing integers."""
        k, last = len(self), self.length - 1
        if not self.variable:
            return [min(i * self.bptt, last) for i in range(k)] + [last]
        g = torch.Generator().manual_seed(_seed(self.seed, epoch, 11))
        base = torch.where(torch.rand(k, generator=g) < 0.95, float(self.bptt), self.bptt / 2)
        lengths = (base + 5.0 * torch.randn(k, generator=g)).clamp_min(5.0)
        ends = (lengths.cumsum(0) / lengths.sum() * last).round().long().tolist()
        out = [0]
        for i, e in enumerate(ends):  # keep every window non-empty and leave room for the rest
            out.append(min(max(e, out[-1] + 1), last - (k - 1 - i)))
        out[-1] = last
        return out

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        b = self.bounds(epoch)
        for k in range(start, len(self)):
            i, j = b[k], b[k + 1]
            yield {"inputs": self.data[:, i:j], "targets": self.data[:, i + 1:j + 1],
                   "index": torch.tensor([k])}

    def __iter__(self):
        return self.iterate()
