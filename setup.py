"""Packaging beyond what pyproject.toml can say: the repository's recipes/ ships inside the wheel
as the package-data folder trainlab/recipes, so `trainlab speedrun` finds its speed recipes in an
installed trainlab too (no copy and no symlink in the source tree: one folder, mapped)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "trainlab.recipes"],
    package_dir={"": "src", "trainlab.recipes": "recipes"},
    package_data={"trainlab.recipes": ["*.yaml"], "trainlab.inference": ["static/*.html"]},
)
