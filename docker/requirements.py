"""Print the pip requirements of one Bag Hunter image, read from ``pyproject.toml``.

The images must install exactly the versions the project declares, so pyproject.toml stays
the one place where a pin lives. A whole extra is not always the right unit, though:

* serving needs Keras and its TensorFlow backend from ``train``, but not the training-only
  companions (scikit-learn, matplotlib), so an extra can be narrowed to named packages;
* the CUDA images need ``tensorflow[and-cuda]`` *instead of* ``tensorflow-cpu``. Both
  distributions ship the same ``tensorflow`` package, so installing one over the other
  leaves a broken mix; ``--cuda`` swaps the name and keeps the pinned version and marker.

Usage (the output is a requirements file for ``pip install -r``)::

    python requirements.py [--cuda] [--no-base] [--pyproject FILE] EXTRA[:NAME,...] ...

The project's own dependencies come first unless ``--no-base`` is given: the image installs
them from this list and the project wheel with ``--no-deps``, so that changing the code
does not invalidate the cached layer holding TensorFlow. Unknown extras or package names
are errors, so a rename in pyproject.toml breaks the image build instead of silently
dropping a package from it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

CPU_TENSORFLOW = "tensorflow-cpu"
CUDA_TENSORFLOW = "tensorflow[and-cuda]"

# A requirement line starts with its distribution name (PEP 508); extras, versions and
# markers follow. Only the name is needed to select and swap lines.
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """The PEP 503 form of a distribution name: ``Tensorflow_CPU`` -> ``tensorflow-cpu``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    """The normalized distribution name a requirement line installs."""
    match = _NAME.match(line)
    if match is None:
        raise ValueError(f"not a requirement: {line!r}")
    return normalize(match.group(1))


def select(extras: dict[str, list[str]], spec: str) -> list[str]:
    """The lines of one ``EXTRA`` or ``EXTRA:NAME,NAME`` selection, in pyproject order."""
    extra, _, names = spec.partition(":")
    if extra not in extras:
        raise ValueError(f"pyproject.toml has no extra {extra!r} (has: {', '.join(extras)})")
    lines = extras[extra]
    if not names:
        return list(lines)
    wanted = {normalize(name) for name in names.split(",") if name}
    chosen = [line for line in lines if requirement_name(line) in wanted]
    missing = wanted - {requirement_name(line) for line in chosen}
    if missing:
        raise ValueError(f"extra {extra!r} does not list {', '.join(sorted(missing))}")
    return chosen


def to_cuda(lines: list[str]) -> list[str]:
    """Replace the CPU TensorFlow build by the CUDA one at the same version and marker."""
    swapped = [
        CUDA_TENSORFLOW + line.strip()[len(CPU_TENSORFLOW) :]
        if requirement_name(line) == CPU_TENSORFLOW
        else line
        for line in lines
    ]
    if swapped == lines:
        raise ValueError(f"--cuda given but the selection has no {CPU_TENSORFLOW} to replace")
    return swapped


def image_requirements(
    pyproject: dict[str, object], selections: list[str], *, cuda: bool, base: bool
) -> list[str]:
    """The requirement lines for an image: base dependencies, then each selection."""
    project = pyproject.get("project")
    if not isinstance(project, dict):
        raise ValueError("pyproject.toml has no [project] table")
    lines: list[str] = list(project.get("dependencies", [])) if base else []
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    for spec in selections:
        lines.extend(line for line in select(extras, spec) if line not in lines)
    return to_cuda(lines) if cuda else lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("selections", nargs="+", metavar="EXTRA[:NAME,...]")
    parser.add_argument("--cuda", action="store_true", help=f"use {CUDA_TENSORFLOW}")
    parser.add_argument("--no-base", action="store_true", help="omit [project] dependencies")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    pyproject = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
    try:
        lines = image_requirements(
            pyproject, args.selections, cuda=args.cuda, base=not args.no_base
        )
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
