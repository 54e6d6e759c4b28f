"""Training throughput of a word-level LSTM LM: trainlab vs the pytorch/examples way.

Both sides train the same model (2-layer, 200-unit, tied-weight LSTM, dropout 0.2, batch 20,
BPTT 35, SGD lr 20, clip 0.25) on PTB's training text for the same number of batches from
a fresh initialisation, and report tokens/s of the training loop (data loading excluded).
Runs alternate (baseline, trainlab, baseline, ...) so load from other processes hits both
alike; the median of the repeats is reported.

    python benchmarks/lm_throughput.py --data ../shared/data/ptb --batches 200 --repeats 3
    python benchmarks/lm_throughput.py --precision bf16 --threads 2     # trainlab's settings

The baseline (``trainlab/speedrun/baselines/word_lm.py``) is pytorch/examples' word_language_model code: its own
Corpus/batchify/get_batch/RNNModel and training loop, on torch's default thread count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import trainlab  # noqa: E402
from trainlab.speedrun.baselines import word_lm as ref  # noqa: E402

B, BPTT, SIZE = 20, 35, 200


def run_baseline(corpus, batches: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = ref.RNNModel("LSTM", len(corpus.dictionary), SIZE, SIZE, 2, dropout=0.2, tie_weights=True)
    train_data = ref.batchify(corpus.train, B, "cpu")
    t0 = time.perf_counter()
    ref.train_batches(model, train_data, batches, B, BPTT, lr=20.0, clip=0.25)
    return batches * B * BPTT / (time.perf_counter() - t0)


def trainlab_recipe(data: str, batches: int, seed: int, precision: str, threads, run_dir: str) -> dict:
    return {
        "data": {"name": "ptb", "root": data, "batch_size": B, "bptt": BPTT, "valid_fraction": 0.0,
                 "files": {"valid": None, "test": None}},  # train only: nothing but the loop is timed
        "model": {"name": "rnn_lm", "init_args": {"emb_size": SIZE, "hidden_size": SIZE, "num_layers": 2,
                                                  "dropout": 0.2, "tie_weights": True}},
        "task": {"name": "language_model"},
        "optim": {"name": "sgd", "lr": 20.0, "momentum": 0.0},
        "train": {"epochs": 1, "max_steps": batches, "seed": seed, "grad_clip": 0.25, "monitor": "train.ppl",
                  "precision": precision, "threads": threads, "device": "cpu"},
        "run": {"dir": run_dir, "progress": False, "tensorboard": False},
    }


def run_trainlab(data: str, batches: int, seed: int, precision: str, threads) -> float:
    with tempfile.TemporaryDirectory() as d:
        run = trainlab.train(trainlab_recipe(data, batches, seed, precision, threads, d))
    rec = next(r for r in run.metrics if r["split"] == "train")
    return rec["tokens_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "ptb"))
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="trainlab's train.precision")
    p.add_argument("--threads", type=int, default=None, help="trainlab's train.threads (default: torch's)")
    p.add_argument("--seed", type=int, default=1111)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    default_threads = torch.get_num_threads()
    corpus = ref.Corpus(args.data)
    base, ours = [], []
    for i in range(args.repeats):
        torch.set_num_threads(default_threads)  # the baseline always runs on torch's default
        base.append(run_baseline(corpus, args.batches, args.seed))
        ours.append(run_trainlab(args.data, args.batches, args.seed, args.precision, args.threads))
        print(f"round {i + 1}: baseline {base[-1]:,.0f} tokens/s   trainlab {ours[-1]:,.0f} tokens/s", flush=True)
    b, o = statistics.median(base), statistics.median(ours)
    result = {"batches": args.batches, "repeats": args.repeats, "batch_size": B, "bptt": BPTT,
              "torch": torch.__version__, "default_threads": default_threads, "trainlab_threads": args.threads,
              "trainlab_precision": args.precision, "baseline_tokens_per_s": round(b, 1),
              "trainlab_tokens_per_s": round(o, 1), "ratio": round(o / b, 3),
              "baseline_all": [round(x) for x in base], "trainlab_all": [round(x) for x in ours]}
    print(f"baseline (pytorch/examples loop): {b:,.0f} tokens/s")
    print(f"trainlab ({args.precision}, threads {args.threads or default_threads}): {o:,.0f} tokens/s")
    print(f"ratio trainlab / baseline: {o / b:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
