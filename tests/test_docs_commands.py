"""Every `trainlab ...` command line in README.md and docs/*.md parses, and runs, as written.

A command is a line of a fenced code block that begins with `trainlab ` or `$ trainlab `
(a trailing backslash continues it; a `# comment` is dropped). The fast test parses every one
with the real parser, so an option or override the CLI does not take fails here. The slow
test runs every one, in doc order, in a scratch folder laid out like a checkout (recipes/,
../shared/data); a new command is run by default. Training is shrunk by options and overrides
appended to the line (`train.epochs=1 data.max_samples=64 ...`, `--runs 1`, `--steps 2`),
and placeholders (`<timestamp>`, `CKPT_A`, `my_digits/`) become artefacts made first: the
newest run of that recipe (trained on demand), two tiny MNIST checkpoints, a folder of digits.
`trainlab serve` starts in the background (on a free loopback port standing for the doc's) and
the `curl` lines after it run against it, each of them required to succeed (`curl -f`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, SHARED

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Commands that stop on purpose, with the exit code they must give.
EXPECTED_RC = {"trainlab train recipes/mnist.yaml optim.lrr=1e-3": 2}  # README: the unknown-key error
# Commands that cannot run here, with the reason. Keep it short: every other command runs.
CANNOT_RUN: dict[str, str] = {}
# Run in the default suite too: no training, a few seconds in all.
QUICK = ("config", "list", "summary")

# One epoch of little data, not train.max_steps: a stop mid-epoch is a pause that writes no best.pt.
TINY = ["train.epochs=1", "data.max_samples=64", "data.max_tokens=4000"]
TINY_RUN = [*TINY, "run.progress=false", "run.tensorboard=false"]
# subcommand -> what shrinks it. Later options win in argparse; options come before the overrides,
# which would otherwise become values of a trailing `--space ...` or `--grid ...`.
APPEND = {
    "train": TINY_RUN,
    "eval": ["data.max_samples=64", "data.max_tokens=4000"],
    "diff": ["--sheet", "8", "data.max_samples=64"],
    "sweep": ["--seeds", "1", *TINY],
    "lab": ["--seeds", "1", *TINY],
    "cv": ["--folds", "2", *TINY],
    "speedrun": ["--runs", "1", "--baseline-seconds", "1", *TINY],
    "bench": ["--steps", "2", "data.max_samples=64"],
    "lr-find": ["--steps", "5", "data.max_samples=64"],
}


@dataclass(frozen=True)
class DocCommand:
    where: str   # README.md:17
    line: str    # the command as written, comment dropped
    argv: tuple  # after `trainlab`


def doc_commands(programs: tuple = ("trainlab",)) -> list[DocCommand]:
    """Lines of fenced blocks that run ``programs``; argv drops the program name for trainlab only."""
    out = []
    for path in DOCS:
        lines, fenced, i = path.read_text(encoding="utf-8").splitlines(), False, 0
        while i < len(lines):
            text = lines[i].strip()
            if text.startswith("```"):
                fenced = not fenced
            elif fenced and text.removeprefix("$ ").startswith(tuple(p + " " for p in programs)):
                text, start = text.removeprefix("$ "), i
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1].rstrip() + " " + lines[i].strip()
                argv = shlex.split(text, comments=True)
                args = tuple(argv[1:]) if argv[0] == "trainlab" else tuple(argv)
                out.append(DocCommand(f"{path.relative_to(REPO)}:{start + 1}", " ".join(argv), args))
            i += 1
    return out


COMMANDS = doc_commands()
IDS = [c.where for c in COMMANDS]
# with the curl lines that talk to a `trainlab serve` above them, in doc order (the slow test)
RUNNABLE = doc_commands(("trainlab", "curl"))


def test_the_docs_have_commands_and_the_lists_name_real_ones():
    lines = {c.line for c in COMMANDS}
    assert len(COMMANDS) > 40
    assert set(EXPECTED_RC) <= lines and set(CANNOT_RUN) <= lines


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_every_doc_command_parses(cmd):
    from trainlab.cli import parse_args

    try:
        parse_args(list(cmd.argv))
    except SystemExit as e:  # argparse's error (its message is in the captured stderr)
        pytest.fail(f"{cmd.where}: `{cmd.line}` does not parse (exit {e.code})")


class Workspace:
    """A scratch folder laid out like a checkout, and the artefacts the doc commands name."""

    def __init__(self, root: Path):
        self.root, self.cwd = root, root / "work"
        self.cwd.mkdir(parents=True)
        (self.cwd / "recipes").symlink_to(REPO / "recipes")
        (root / "shared").mkdir()
        (root / "shared" / "data").symlink_to(SHARED)  # ../shared/data, as the recipes say
        (root / "tmp").mkdir()
        self.servers, self.ports = [], {}

    def port(self, doc_port: str) -> str:
        """A free loopback port standing for the doc's ``doc_port``."""
        if doc_port not in self.ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.ports[doc_port] = str(sock.getsockname()[1])
        return self.ports[doc_port]

    def serve(self, argv: list[str]) -> int:
        """`trainlab serve` in the background, until the module's tests end; 0 once /health answers."""
        import httpx

        i = argv.index("--port") + 1 if "--port" in argv else None
        port = self.port(argv[i] if i else "8000")
        argv = [*argv[:i], port, *argv[i + 1:]] if i else [*argv, "--port", port]
        proc = subprocess.Popen([sys.executable, "-m", "trainlab", *argv], cwd=self.cwd)
        self.servers.append(proc)
        for _ in range(300):
            if proc.poll() is not None:
                return proc.returncode
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                return 0
            except httpx.TransportError:
                time.sleep(0.1)
        return 1

    def curl(self, argv: list[str]) -> int:
        if any("my_digits/" in t for t in argv):
            self.digits()
        argv = [re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{self.port(m.group(1))}", t) for t in argv]
        return subprocess.run(argv, cwd=self.cwd, timeout=120).returncode

    def stop_servers(self) -> None:
        for proc in self.servers:
            proc.terminate()
            proc.wait(10)

    def run(self, argv: list[str]) -> int:
        import torch

        if argv[0] == "serve":
            return self.serve(argv)

        from trainlab.cli import main

        if any(re.fullmatch(r"train\.devices=([2-9]|\d\d+)", t) for t in argv):
            # train.devices=N replaces its process by torchrun (exec): not this one
            return subprocess.run([sys.executable, "-m", "trainlab", *argv], cwd=self.cwd, timeout=600).returncode
        threads, cwd = torch.get_num_threads(), os.getcwd()
        os.chdir(self.cwd)
        try:
            return main(list(argv))
        finally:
            os.chdir(cwd)
            torch.set_num_threads(threads)  # a command's train.threads=1 must not slow the next tests

    def run_dir(self, name: str, index: int = 0) -> str:
        """The index-th newest run of recipes/NAME.yaml here, trained (tiny) if there are not enough."""
        base = self.cwd / "runs" / name
        def runs():
            return sorted(p for p in base.glob("*") if (p / "checkpoints" / "best.pt").is_file())

        for _ in range(index + 1 - len(runs())):
            assert self.run(["train", f"recipes/{name}.yaml", *TINY_RUN]) == 0, f"could not make a {name} run"
        assert len(runs()) > index, f"training recipes/{name}.yaml here leaves no checkpoints/best.pt"
        return str(runs()[-1 - index].relative_to(self.cwd))

    def named_run(self, name: str, *overrides: str) -> str:
        """runs/NAME: a tiny MNIST run in that exact folder (the reports guide's runs/adam, runs/sgd)."""
        if not (self.cwd / "runs" / name / "checkpoints" / "best.pt").is_file():
            assert self.run(["train", "recipes/mnist.yaml", *overrides, f"run.dir=runs/{name}", *TINY_RUN]) == 0
        return f"runs/{name}"

    def digits(self) -> str:
        folder = self.cwd / "my_digits"
        if not folder.is_dir():
            from PIL import Image

            from trainlab.config import DataConfig
            from trainlab.data.embedded import mnist5k

            folder.mkdir()
            images = mnist5k(DataConfig()).train.images
            for i in (0, 1, 2):
                Image.fromarray(images[i, 0].numpy()).save(folder / f"digit_{i}.png")
        return "my_digits/"

    def substitute(self, token: str, stamps: dict) -> str:
        def run_stamp(m):  # runs/NAME/<timestamp> (or a made-up stamp): a real run, in order of mention
            key = (m.group(1), m.group(2))
            index = stamps.setdefault(key, len([k for k in stamps if k[0] == m.group(1)]))
            return self.run_dir(m.group(1), index)

        token = re.sub(r"runs/([\w.-]+)/(<timestamp>|<stamp>|\d{8}-\d{6})", run_stamp, token)
        if token == "runs/mnist-full":
            return self.run_dir("mnist")
        if m := re.fullmatch(r"runs/(adam|sgd)(/.*)?", token):
            return self.named_run(m.group(1), f"optim.name={m.group(1)}") + (m.group(2) or "")
        if token in ("CKPT_A", "CKPT_B"):
            name = "adam" if token == "CKPT_A" else "sgd"
            return self.named_run(name, f"optim.name={name}") + "/checkpoints/best.pt"
        if token == "CKPT":  # the language-model guide's checkpoint
            return self.run_dir("ptb-lstm") + "/checkpoints/best.pt"
        if token == "my_digits/":
            return self.digits()
        return token.replace("/tmp/", f"{self.root / 'tmp'}/")

    def argv(self, cmd: DocCommand) -> list[str]:
        stamps: dict = {}
        argv = [self.substitute(t, stamps) for t in cmd.argv]
        extra = list(APPEND.get(argv[0], ()))
        if argv[0] == "prepare" and argv[1] == "moving-digits":
            extra = ["--train-per-class", "2", "--test-per-class", "4"]
        if argv[0] == "sweep" and "--search" in argv:
            extra = ["--trials", "2", *extra]
        return argv + extra


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, monkeypatch_module):
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"the doc commands read ../shared/data; not found at {SHARED}")
    # torchrun and sweep children import this same trainlab, from any folder
    monkeypatch_module.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    ws = Workspace(tmp_path_factory.mktemp("docs"))
    yield ws
    ws.stop_servers()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _run(cmd: DocCommand, workspace: Workspace):
    if cmd.line in CANNOT_RUN:
        pytest.skip(CANNOT_RUN[cmd.line])
    if cmd.argv[0] == "curl":
        if shutil.which("curl") is None:
            pytest.skip("no curl on this machine")
        rc = workspace.curl(list(cmd.argv))
        assert rc == 0, f"{cmd.where}: `{cmd.line}` exited {rc} (22: an HTTP error)"
        return
    argv = workspace.argv(cmd)
    rc = workspace.run(argv)
    assert rc == EXPECTED_RC.get(cmd.line, 0), f"{cmd.where}: `trainlab {' '.join(argv)}` exited {rc}"


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.argv[0] in QUICK or c.line in EXPECTED_RC],
                         ids=[c.where for c in COMMANDS if c.argv[0] in QUICK or c.line in EXPECTED_RC])
def test_quick_doc_commands_run(cmd, workspace):
    _run(cmd, workspace)


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in RUNNABLE if c.argv[0] not in QUICK and c.line not in EXPECTED_RC],
                         ids=[c.where for c in RUNNABLE if c.argv[0] not in QUICK and c.line not in EXPECTED_RC])
def test_every_doc_command_runs(cmd, workspace):
    _run(cmd, workspace)
