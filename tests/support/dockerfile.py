"""The project's Dockerfile, read as Docker reads it (enough for the tests' questions)."""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

Instruction = tuple[str, str]


def instructions(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def stages(path: Path = ROOT / "Dockerfile") -> list[list[Instruction]]:
    """The instructions of each stage, a FROM first."""
    out: list[list[Instruction]] = []
    for instruction, args in instructions(path):
        if instruction == "FROM":
            out.append([])
        out[-1].append((instruction, args))
    return out


def copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY lines that read the build context."""
    found = []
    for instruction, args in stage:
        if instruction != "COPY":
            continue
        words = shlex.split(args)
        if any(word.startswith("--from") for word in words):
            continue
        paths = [word for word in words if not word.startswith("--")]
        found.append((paths[:-1], paths[-1]))
    return found
