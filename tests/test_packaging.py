"""An installed trainlab (a wheel, no source checkout) finds its speedrun recipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import REPO

FIND_RECIPES = """
from trainlab.speedrun import TARGETS, recipe_path
for t in TARGETS.values():
    print(recipe_path(t).resolve())
"""


def test_a_wheel_ships_the_speed_recipes_and_speedrun_finds_them(tmp_path):
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    src = tmp_path / "src-copy"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "recipes", src / "recipes")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("trainlab-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(site)
    assert {f"trainlab/recipes/{p.name}" for p in (REPO / "recipes").glob("speed-*.yaml")} <= names
    shutil.rmtree(src)  # no source tree left to fall back on
    cwd = tmp_path / "elsewhere"  # and no ./recipes
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", FIND_RECIPES], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    paths = out.stdout.split()
    assert len(paths) == 4 and all(p.startswith(str(site.resolve())) for p in paths), paths
