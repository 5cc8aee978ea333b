"""The image carries every module and package the project ships (Docker does not run
here, so the Dockerfile is checked by reading)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_image_copies_every_shipped_module_and_package() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {f"{m}.py" for m in setuptools["py-modules"]}
    shipped |= {p.split(".")[0] for p in setuptools["packages"]}
    copied = {
        word
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for word in line.split()[1:-1]
    }
    assert shipped <= copied, f"not copied into the image: {sorted(shipped - copied)}"
