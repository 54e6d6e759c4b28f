"""onnxruntime (CPU) against eager PyTorch on the same model and inputs, batch 1 and batch 64:
the forward pass alone, the median of repeated timings, both in this process, alternating.

    python benchmarks/export_speed.py CKPT [CKPT ...] [--repeats 30]

Each checkpoint is exported to ONNX in a temporary folder first (with trainlab's parity check).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import trainlab
from trainlab.inference.export import export, random_batch, signature
from trainlab.inference.parity import onnx_session


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads of both (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}; median of {args.repeats} forward passes, milliseconds")
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in args.checkpoints:
            model = trainlab.load(ckpt)
            sig = signature(model)
            path = export(model, "onnx", Path(tmp) / "m.onnx").path
            sess = onnx_session(path, threads=torch.get_num_threads())
            torch.set_num_threads(args.threads or torch.get_num_threads())  # the export's data step may change it
            for n in (1, 64):
                x = random_batch(model, n)
                call = sig.example(x)
                feeds = {k: a.numpy().astype(np.int64 if a.dtype == torch.long else np.float32)
                         for k, a in zip(sig.inputs, call)}
                with torch.inference_mode():
                    eager = timed(lambda: sig.module(*call), args.repeats)
                ort = timed(lambda: sess.run(None, feeds), args.repeats)
                print(f"{Path(ckpt).parent.parent.name:>20s} {model.trainlab_config.model.name:12s} batch {n:2d}: "
                      f"eager {eager:8.2f}  onnxruntime {ort:8.2f}  ({eager / ort:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
