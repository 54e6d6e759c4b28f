"""Bad inputs for benchmarks/faults.py: the harness that runs and classifies each case, and the
config, model and checkpoint cases (data cases in _fault_data.py; runs, CLI, sweeps and
archives in _fault_runs.py).

Each case is classified:
  clear   a trainlab error (a TrainlabError from Python; from the CLI a non-zero exit with an
          ``error:`` line, its own or argparse's, and no traceback) that names the culprit
  unclear an error that is a raw traceback or does not name the file, key or value
  wrong   no error where there must be one, or something of the user's lost or overwritten
A case may name files that must survive it unchanged (``keep``); one that changed or went
counts as a file lost, and makes the case wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


@dataclass
class Case:
    name: str
    verdict: str  # clear, unclear or wrong
    message: str
    lost: int = 0


def _snapshot(paths) -> dict:
    """What each kept path holds: a file's bytes, a folder's files (relative name -> bytes)."""
    snap = {}
    for p in map(Path, paths):
        if p.is_dir():
            snap[p] = {q.relative_to(p): q.read_bytes() for q in sorted(p.rglob("*")) if q.is_file()}
        else:
            snap[p] = p.read_bytes() if p.is_file() else None
    return snap


class Cases:
    """Runs the cases whose name contains ``only`` and collects their verdicts."""

    def __init__(self, work: Path, only: str = ""):
        self.work, self.only, self.rows = work, only, []

    def wanted(self, name: str) -> bool:
        return self.only in name

    def _add(self, name, verdict, message, keep_before, gone=()):
        lost = sum(_snapshot([p])[p] != before for p, before in keep_before.items())
        lost += sum(Path(p).exists() for p in gone)  # a file that must never be made (code ran, escaped)
        if lost:
            verdict = "wrong"
        self.rows.append(Case(name, verdict, " ".join(message.split())[:150], lost))

    def api(self, name, fn, must_name, keep=(), gone=()):
        """A Python call that must raise a TrainlabError whose message contains ``must_name``."""
        if not self.wanted(name):
            return
        from trainlab.errors import TrainlabError

        before = _snapshot(keep)
        try:
            fn()
            verdict, message = "wrong", "no error"
        except TrainlabError as e:
            verdict, message = ("clear" if must_name in str(e) else "unclear"), str(e)
        except Exception as e:  # noqa: BLE001 - an error that is not trainlab's is what this looks for
            verdict, message = "unclear", f"{type(e).__name__}: {e}"
        self._add(name, verdict, message, before, gone)

    def cli(self, name, argv, must_name, keep=(), gone=(), cwd=None, env=None):
        """``trainlab ARGV`` must exit non-zero with one ``error:`` line containing ``must_name``."""
        if not self.wanted(name):
            return
        before = _snapshot(keep)
        out = subprocess.run([sys.executable, "-m", "trainlab", *map(str, argv)], cwd=cwd or self.work,
                             env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=600)
        errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ") or ": error: " in ln]
        if out.returncode == 0:
            verdict, message = "wrong", "exit 0, no error"
        elif "Traceback" in out.stderr or not errors:
            verdict, message = "unclear", f"exit {out.returncode}: {out.stderr.strip()[-150:]}"
        else:
            verdict = "clear" if any(must_name in ln for ln in errors) else "unclear"
            message = errors[0]
        self._add(name, verdict, message, before, gone)

    def write(self, name: str, data) -> Path:
        """A file under the work folder: bytes, text, or a mapping written as a YAML recipe."""
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, dict):
            data = yaml.safe_dump(data)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path


def tiny(run_dir, **sections) -> dict:
    """A seconds-long run (a small convnet on 256 embedded MNIST digits), for the cases that need
    a finished run or a checkpoint."""
    r = {"data": {"name": "mnist5k", "test_fraction": 0.2, "valid_fraction": 0.1, "max_samples": 256,
                  "batch_size": 32},
         "model": {"name": "convnet", "init_args": {"channels": [8, 16], "hidden": [32], "dropout": 0.1}},
         "optim": {"name": "adam", "lr": 2e-3},
         "train": {"epochs": 1, "seed": 3},
         "run": {"dir": str(run_dir), "progress": False, "tensorboard": False}}
    for section, values in sections.items():
        r.setdefault(section, {}).update(values)
    return r


def config_cases(c: Cases, base: dict) -> None:
    import trainlab
    from trainlab.config import read_recipe

    train = trainlab.train
    c.api("unknown config key", lambda: train(base, "optim.lrr=0.1"), "optim.lr")
    c.api("wrong type", lambda: train(base, "train.epochs=many"), "train.epochs")
    c.api("negative learning rate", lambda: train(base, "optim.lr=-1"), "optim.lr")
    c.api("infinite learning rate", lambda: train(base, "optim.lr=.inf"), "optim.lr")
    c.api("NaN learning rate", lambda: train(base, "optim.lr=.nan"), "optim.lr")
    c.api("data.max_samples=0", lambda: train(base, "data.max_samples=0"), "data.max_samples")
    c.api("monitor not a metric of the task", lambda: train(base, "train.monitor=valid.ppl"), "valid.ppl")
    c.api("unknown callback", lambda: train(base, "train.callbacks=[nosuch_callback]"), "nosuch_callback")
    c.api("callback entry of the wrong kind", lambda: train(base, "train.callbacks=[{every: 3}]"), "train.callbacks")
    twice = c.write("twice.yaml", "optim:\n  lr: 0.1\n  name: sgd\n  lr: 0.01\n")
    c.api("duplicate YAML key", lambda: read_recipe(twice), "line 4")
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]" for i in range(1, 9)]
    bomb = c.write("laughs.yaml", "\n".join(laughs) + "\n")
    c.api("YAML alias bomb", lambda: train(bomb), "laughs.yaml")
    big = c.write("big.yaml", "# padding\n" * 200_000)
    c.api("oversized recipe", lambda: train(big), "big.yaml")
    utf16 = c.write("utf16.yaml", "optim:\n  lr: 0.1\n".encode("utf-16"))
    c.api("UTF-16 recipe", lambda: train(utf16), "utf16.yaml")
    listy = c.write("list.yaml", "- 1\n- 2\n")
    c.api("recipe that is not a mapping", lambda: train(listy), "list.yaml")
    evil = c.write("evil.yaml", f"run: !!python/object/apply:os.system ['touch {c.work}/pwned']\n")
    c.api("recipe constructing a Python object", lambda: train(evil), "evil.yaml", gone=[c.work / "pwned"])


def model_cases(c: Cases, work: Path, good) -> None:
    import torch
    from torch import nn

    import trainlab

    class TupleNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

        def forward(self, x):
            return self.net(x), "aux"

    c.api("model forward returning a tuple", lambda: trainlab.train(tiny(work / "tuple-run"), model=TupleNet()),
          "TupleNet")
    c.api("model with the wrong number of logits",
          lambda: trainlab.train(tiny(work / "logits-run"), model=nn.Sequential(nn.Flatten(), nn.Linear(784, 3))),
          "10 classes")
    c.cli("summary --input of the wrong rank", ["summary", "convnet", "--input", "28x28"], "28x28")
    c.cli("summary --input that is not a size", ["summary", "convnet", "--input", "abc"], "abc")
    resume = {"resume": str(good.last_checkpoint), "epochs": 2, "seed": 3}
    other = c.write("other.yaml", {**tiny(work / "other"), "model": {"name": "lenet5"}, "train": resume})
    c.api("resume from another model's checkpoint", lambda: trainlab.train(other), "model.name")
    allowed = {**resume, "resume_allow_changes": ["model.name", "model.init_args"]}
    other = c.write("other-allowed.yaml", {**tiny(work / "other-allowed"), "model": {"name": "lenet5"}, "train": allowed})
    c.api("checkpoint from another model (changes allowed)", lambda: trainlab.train(other), "does not match the model")


def checkpoint_cases(c: Cases, work: Path, good) -> None:
    import zipfile

    import torch

    import trainlab

    data = good.last_checkpoint.read_bytes()
    cut = c.write("cut.pt", data[: len(data) // 3])
    c.api("checkpoint truncated by a crash", lambda: trainlab.load(cut), "cut.pt")
    c.cli("eval of a truncated checkpoint", ["eval", cut], "cut.pt")
    c.api("resume from a missing checkpoint", lambda: trainlab.train(tiny(work / "r-missing", train={
        "resume": str(work / "gone.pt")})), "gone.pt")
    notes = c.write("notes.pt", "my notes, not a checkpoint\n")
    c.api("file that is not a checkpoint", lambda: trainlab.load(notes), "notes.pt", keep=[notes])
    bomb = work / "bomb.pt"
    if c.wanted("checkpoint zip bomb"):
        with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open("archive/data.pkl", "w", force_zip64=True) as fh:
                for _ in range(256):  # 256 MiB of zeros, a few hundred kB on disk
                    fh.write(bytes(1 << 20))
    c.api("checkpoint zip bomb", lambda: trainlab.load(bomb), "bomb.pt")
    ckpt = torch.load(good.best_checkpoint, weights_only=True)
    ckpt["config"]["model"].update(class_path="cleanup:Model", init_args={})
    hostile = work / "hostile" / "hostile.pt"
    hostile.parent.mkdir(exist_ok=True)
    torch.save(ckpt, hostile)
    c.write("hostile/cleanup.py", f"open({str(work / 'ran.txt')!r}, 'w').write('the checkpoint ran my code')\n")
    c.cli("hostile class_path (must not run code)", ["eval", hostile], "never imports", cwd=hostile.parent,
          gone=[work / "ran.txt"])
    def load_from_its_folder():  # where its module could be imported
        sys.path.insert(0, str(hostile.parent))
        try:
            trainlab.load(hostile)
        finally:
            sys.path.remove(str(hostile.parent))

    c.api("hostile class_path from Python", load_from_its_folder, "never imports", gone=[work / "ran.txt"])


CORPUS = "the cat sat on the mat\nthe dog ate the bone\na caf\u00e9 served cr\u00e8me br\u00fbl\u00e9e\n" * 40


def language_model(work: Path):
    """A one-epoch word-level LSTM on a small corpus: the checkpoint the generate cases use."""
    import trainlab

    corpus = work / "corpus-good" / "tiny.txt"
    corpus.parent.mkdir(exist_ok=True)
    corpus.write_text(CORPUS, encoding="utf-8")
    return trainlab.train({
        "data": {"name": "text", "root": str(corpus), "batch_size": 4, "bptt": 8, "valid_fraction": 0.1,
                 "test_fraction": 0.1},
        "model": {"name": "rnn_lm", "init_args": {"emb_size": 16, "hidden_size": 16, "num_layers": 1}},
        "task": {"name": "language_model"}, "optim": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 1, "seed": 5, "monitor": "valid.ppl"},
        "run": {"dir": str(work / "lm"), "progress": False, "tensorboard": False}}).best_checkpoint


def bad_input_cases(work: Path, base: dict, only: str = "") -> list[Case]:
    """Every case (those whose name contains ``only``), in the order of the issue's list."""
    import trainlab
    from _fault_data import data_cases
    from _fault_runs import archive_cases, cli_cases, run_cases, sweep_cases

    c = Cases(work, only)
    good = trainlab.train(tiny(work / "good"))
    lm = language_model(work)
    config_cases(c, base)
    data_cases(c, work, base)
    model_cases(c, work, good)
    checkpoint_cases(c, work, good)
    run_cases(c, work, good)
    cli_cases(c, work, good, lm)
    sweep_cases(c, work)
    archive_cases(c, work)
    return c.rows
