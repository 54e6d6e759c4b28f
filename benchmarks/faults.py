"""Inject faults into real trainlab runs and print one summary.

Kills (SIGKILL) a training process during a training step, during evaluation and while a
checkpoint is being written, resumes each with ``train.resume=auto`` and compares every metric
with an uninterrupted run (CPU, fixed seed); sends Ctrl-C; feeds bad inputs and checks that each
gives a clear error naming the culprit; and counts files lost (a checkpoint that exists but does
not load, or a metrics.jsonl that does not parse).

    python benchmarks/faults.py [--rounds 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import trainlab  # noqa: E402
from trainlab.engine.checkpoint import load_checkpoint  # noqa: E402
from trainlab.errors import TrainlabError  # noqa: E402
from trainlab.tracking import read_metrics  # noqa: E402

VOLATILE = {"time", "seconds", "samples_per_s", "tokens_per_s"}
# a model large enough (about 9M parameters + Adam state) that writing last.pt takes a while
RECIPE = {
    "data": {"name": "mnist5k", "test_fraction": 0.2, "valid_fraction": 0.3, "max_samples": 1200,
             "batch_size": 64},
    "model": {"name": "mlp", "init_args": {"widths": [2048, 2048], "dropout": 0.2}},
    "optim": {"name": "adam", "lr": 1e-3},
    "train": {"epochs": 3, "seed": 1, "checkpoint_every_steps": 4},
    "run": {"progress": False, "tensorboard": False},
}


def recipe(run_dir: Path, **train) -> dict:
    r = json.loads(json.dumps(RECIPE))
    r["run"]["dir"] = str(run_dir)
    r["train"].update(train)
    return r


def strip(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def start(run_dir: Path, workdir: Path) -> subprocess.Popen:
    path = workdir / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe(run_dir)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "trainlab", "train", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_until(cond, proc, timeout=300.0, poll=0.001) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(poll)
    return False


def moment(kind: str, run_dir: Path, n: int):
    """A condition that is true at the moment to kill."""
    ck, metrics = run_dir / "checkpoints", run_dir / "metrics.jsonl"
    if kind == "checkpoint write":  # the temporary file exists: torch.save is writing
        return lambda: ck.is_dir() and any(p.name.startswith(".last.pt.") for p in ck.iterdir())
    if kind == "evaluation":  # a train record was just written: the valid pass is running
        return lambda: metrics.exists() and sum(1 for ln in metrics.read_text().splitlines()
                                                if '"split": "train"' in ln) >= n
    t0 = time.time()
    return lambda: ck.joinpath("last.pt").exists() and time.time() - t0 > 0.2 * n  # some training step


def files_lost(run_dir: Path) -> int:
    lost = 0
    for p in (run_dir / "checkpoints").glob("*.pt"):
        try:
            load_checkpoint(p)
        except TrainlabError:
            lost += 1
    try:
        read_metrics(run_dir)
    except (json.JSONDecodeError, KeyError):
        lost += 1
    return lost


def kill_and_resume(kind: str, n: int, work: Path, reference: list) -> tuple[bool, bool, int]:
    run_dir = work / f"{kind.replace(' ', '-')}-{n}"
    proc = start(run_dir, work)
    hit = wait_until(moment(kind, run_dir, n), proc)
    sig = signal.SIGINT if kind == "ctrl-c" else signal.SIGKILL
    proc.send_signal(sig)
    proc.wait()
    lost = files_lost(run_dir)
    resumed = trainlab.train(recipe(run_dir, resume="auto"))
    same = strip(read_metrics(resumed.dir)) == reference
    return hit, same, lost + files_lost(run_dir)


def bad_inputs(work: Path) -> list[tuple[str, str, bool]]:
    """(fault, message, clear) for each bad input: clear = a trainlab error naming the culprit."""
    cases = []

    def expect(name, fn, must_name):
        try:
            fn()
            cases.append((name, "no error", False))
        except TrainlabError as e:
            cases.append((name, str(e).splitlines()[0][:140], must_name in str(e)))
        except Exception as e:  # noqa: BLE001 - an unclear error is what this script looks for
            cases.append((name, f"{type(e).__name__}: {e}"[:140], False))

    base = recipe(work / "bad")
    (work / "trunc").mkdir(exist_ok=True)
    (work / "trunc" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(
        (2051).to_bytes(4, "big") + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100))
    (work / "trunc" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + (60000).to_bytes(4, "big")))
    expect("truncated IDX file", lambda: trainlab.train({**base, "data": {"name": "mnist", "root": str(work / "trunc")}}),
           "train-images-idx3-ubyte.gz")
    expect("unknown config key", lambda: trainlab.train(base, "optim.lrr=0.1"), "optim.lr")
    expect("wrong type", lambda: trainlab.train(base, "train.epochs=many"), "train.epochs")
    expect("negative learning rate", lambda: trainlab.train(base, "optim.lr=-1"), "optim.lr")
    expect("missing data folder", lambda: trainlab.train(base, f"data.name=imagefolder", f"data.root={work}/nope"), "nope")
    (work / "corpus").mkdir(exist_ok=True)
    (work / "corpus" / "train.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    expect("non-UTF-8 corpus", lambda: trainlab.train({**base, "data": {"name": "text", "root": str(work / "corpus")},
                                                       "model": {"name": "rnn_lm"}, "task": {"name": "language_model"}}),
           "train.txt")
    good = trainlab.train(recipe(work / "good", epochs=1, checkpoint_every_steps=None))
    data = good.last_checkpoint.read_bytes()
    (work / "cut.pt").write_bytes(data[: len(data) // 3])
    expect("checkpoint truncated by a crash", lambda: trainlab.load(work / "cut.pt"), "cut.pt")
    other = yaml.safe_dump({**recipe(work / "other"), "model": {"name": "lenet5"},
                            "train": {"resume": str(good.last_checkpoint), "epochs": 2}})
    (work / "other.yaml").write_text(other)
    expect("checkpoint from another model", lambda: trainlab.train(work / "other.yaml"), "does not match the model")
    video_cases(work, base, expect)
    return cases


def video_cases(work: Path, base: dict, expect) -> None:
    """A corrupt clip and a too-short clip (data.on_bad_image=error), and a split list naming a missing clip."""
    import numpy as np

    from trainlab.data.moving_digits import make_moving_digits, write_video

    root = work / "clips"
    make_moving_digits(root, train_per_class=2, test_per_class=1, frames=8)
    video = {**base, "data": {"name": "ucf101", "root": str(root), "size": 64, "channels": 1, "frames": 6,
                              "cache_frames": 8, "on_bad_image": "error", "cache": False},
             "model": {"name": "cnn_lstm"}, "task": {"name": "video"}}
    lists = (root / "trainlist01.txt").read_text()
    (root / "up" / "bad.avi").write_bytes(b"RIFF\0\0\0\0AVI not a video")
    (root / "trainlist01.txt").write_text(lists + "up/bad.avi 4\n")
    expect("corrupt video file", lambda: trainlab.train(video), "bad.avi")
    write_video(root / "up" / "short.avi", np.zeros((3, 64, 64), np.uint8))
    (root / "trainlist01.txt").write_text(lists + "up/short.avi 4\n")
    expect("clip shorter than data.frames", lambda: trainlab.train(video), "short.avi")
    (root / "trainlist01.txt").write_text(lists + "up/gone.avi 4\n")
    expect("split list names a missing clip", lambda: trainlab.train(video), "gone.avi")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="kills of each kind")
    ap.add_argument("--keep", help="keep the run folders here")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="trainlab-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    reference = strip(trainlab.train(recipe(work / "uninterrupted")).metrics)
    rows, lost = [], 0
    for kind in ("training step", "evaluation", "checkpoint write", "ctrl-c"):
        for n in range(1, args.rounds + 1):
            hit, same, l = kill_and_resume(kind, n, work, reference)
            rows.append((kind, hit, same))
            lost += l
            print(f"{'SIGINT' if kind == 'ctrl-c' else 'SIGKILL'} during {kind:16s} round {n}: "
                  f"{'hit' if hit else 'missed the moment'}; resumed run identical: {same}")
    cases = bad_inputs(work)
    for name, msg, clear in cases:
        print(f"bad input {name:32s} {'clear' if clear else 'UNCLEAR'}: {msg}")
    print(f"\nfaults tried: {len(rows)}; runs resumed with identical metrics: {sum(s for _, _, s in rows)}/{len(rows)}; "
          f"bad inputs tried: {len(cases)}; clear errors: {sum(c for _, _, c in cases)}/{len(cases)}; files lost: {lost}")
    return 0 if lost == 0 and all(s for _, _, s in rows) and all(c for _, _, c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
