"""Runs, CLI outputs, sweeps and archives for benchmarks/faults.py (harness in _fault_cases.py):
each must be refused without touching what the user already has."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from _fault_cases import ENV, Cases, tiny


def run_cases(c: Cases, work: Path, good) -> None:
    import trainlab

    if c.wanted("second writer"):
        locked = work / "locked"
        locked.mkdir(exist_ok=True)
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys; from trainlab.tracking.lock import RunLock\n"
            f"lock = RunLock({str(locked)!r}).acquire(); print('locked', flush=True); sys.stdin.read()")],
            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            c.api("second writer on a locked run.dir", lambda: trainlab.train(tiny(locked, train={"resume": "auto"})),
                  f"process {holder.pid}")
        finally:
            holder.kill()
            holder.wait()
    mine = work / "mine"
    c.write("mine/notes.txt", "my notes")
    c.write("mine/config.yaml", "mine: true\n")
    c.api("run.dir holding the user's files", lambda: trainlab.train(tiny(mine)), "not empty", keep=[mine])
    finished = good.dir
    c.api("training again into a finished run", lambda: trainlab.train(tiny(finished, optim={"lr": 1e-2})),
          "not empty", keep=[finished / "checkpoints", finished / "metrics.jsonl"])
    c.api("resume with a changed optim.lr",
          lambda: trainlab.train(tiny(finished, optim={"lr": 0.1}, train={"epochs": 2, "resume": "auto"})),
          "optim.lr", keep=[finished / "config.yaml", finished / "checkpoints"])
    blocker = c.write("a_file", "x")
    c.api("run.dir under a file", lambda: trainlab.train(tiny(blocker / "run")), "a_file", keep=[blocker])
    recipe = c.write("tiny.yaml", tiny(work / "unused"))
    c.cli("unwritable run.dir (CLI)", ["train", recipe, f"run.dir={blocker / 'run'}"], "a_file", keep=[blocker])


def cli_cases(c: Cases, work: Path, good, lm) -> None:
    image = work / "digit.png"
    from PIL import Image

    Image.new("L", (28, 28), 128).save(image)
    ckpt = good.best_checkpoint
    c.cli("predict --topk 0", ["predict", ckpt, image, "--topk", "0"], "--topk")
    c.cli("generate --words -5", ["generate", lm, "--words", "-5"], "--words")
    c.cli("generate --top-p 1.5", ["generate", lm, "--top-p", "1.5"], "--top-p")
    c.cli("eval --split nosuch", ["eval", ckpt, "--split", "nosuch"], "nosuch")
    c.cli("eval override of a training key", ["eval", ckpt, "optim.lr=0.1"], "optim.lr")
    c.cli("predict of a language model", ["predict", lm, image], "language model")
    c.cli("generate from a classifier", ["generate", ckpt], "classification checkpoint")
    c.cli("predict of a missing input", ["predict", ckpt, work / "no-such.png"], "no-such.png")
    broken = c.write("broken.jpg", b"\xff\xd8\xff\xe0 not really a JPEG")
    c.cli("predict of a corrupt image", ["predict", ckpt, broken, "--out", work / "p-broken.csv"], "broken.jpg",
          gone=[work / "p-broken.csv"])
    c.cli("report of a folder that is no run", ["report", work / "a-folder"], "a-folder")
    for cmd, extra in (("predict", [image]), ("generate", ["--words", "5", "--quiet"]), ("eval", [])):
        mine = c.write(f"mine-{cmd}.out", f"the user's own {cmd} file")
        c.cli(f"{cmd} --out that exists", [cmd, lm if cmd == "generate" else ckpt, *extra, "--out", mine], "exists",
              keep=[mine])
        c.cli(f"{cmd} --out in a missing folder",
              [cmd, lm if cmd == "generate" else ckpt, *extra, "--out", work / "no" / "such" / "x.out"],
              "does not exist", gone=[work / "no"])
    folder = work / "a-folder"
    folder.mkdir(exist_ok=True)
    c.cli("predict --out that is a folder", ["predict", ckpt, image, "--out", folder], "is a folder", keep=[folder])
    c.cli("generate --out that is a folder", ["generate", lm, "--out", folder], "generated.txt", keep=[folder])


def sweep_cases(c: Cases, work: Path) -> None:
    recipe = c.write("sweep-recipe.yaml", {k: v for k, v in tiny(work / "unused").items() if k != "run"})
    c.cli("two grid points sharing a folder", ["sweep", recipe, "--grid", "optim.lr=0.1,0.1", "--out", work / "sw"],
          "the same values", gone=[work / "sw" / "runs"])
    c.cli("grid item without values", ["sweep", recipe, "--grid", "optim.lr", "--out", work / "sw3"], "optim.lr",
          gone=[work / "sw3" / "runs"])
    c.cli("grid values becoming one folder name",
          ["sweep", recipe, "--grid", "data.cache_dir=a/b,a_b", "--out", work / "sw2"], "same folder name",
          gone=[work / "sw2" / "runs"])


def archive_cases(c: Cases, work: Path) -> None:
    bomb = work / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small.txt", "fine")
        zf.writestr("zeros.bin", bytes(8 << 20))  # 8 MiB of zeros: a few kB compressed
    c.cli("archive bomb (prepare extract --max-bytes)",
          ["prepare", "extract", bomb, work / "x-bomb", "--max-bytes", 1 << 20], "--max-bytes",
          gone=[work / "x-bomb" / "small.txt", work / "x-bomb" / "zeros.bin"])
    evil = work / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr("../../escaped.txt", "bad")
    c.cli("archive member with path traversal", ["prepare", "extract", evil, work / "x-evil" / "out"], "outside",
          gone=[work / "escaped.txt", work / "x-evil" / "escaped.txt"])
    link = work / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tf:
        member = tarfile.TarInfo("data/passwd")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(member)
    c.cli("archive symlink member", ["prepare", "extract", link, work / "x-link"], "link",
          gone=[work / "x-link" / "data" / "passwd"])
    c.write("x-mine/small.txt", "my own file")
    c.cli("archive member replacing an existing file", ["prepare", "extract", bomb, work / "x-mine"], "small.txt",
          keep=[work / "x-mine"])
    c.write("not-an-archive.zip", "my notes, not an archive\n")
    c.cli("file that is not an archive", ["prepare", "extract", work / "not-an-archive.zip", work / "x-not"],
          "not-an-archive.zip")
    c.cli("extracting into a file", ["prepare", "extract", bomb, work / "x-mine" / "small.txt"], "it is a file",
          keep=[work / "x-mine"])
