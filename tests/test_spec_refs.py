"""Every section reference in the code names a heading of docs/SPEC.md."""
from __future__ import annotations

import re

from tests.helpers import REPO

SIGN = "\u00a7"  # the section sign, spelled out so this file does not cite itself
REF = re.compile("SPEC " + SIGN + r"(\d+(?:\.\d+)?)")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)?)[. ]", re.M)
FOLDERS = ("server", "client", "protos", "bench", "torture", "tests")
SUFFIXES = {".py", ".proto", ".sh", ".js", ".html"}


def sources():
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8", errors="replace")


def test_spec_sections_are_numbered():
    sections = set(HEADING.findall((REPO / "docs" / "SPEC.md").read_text(encoding="utf-8")))
    assert {str(n) for n in range(1, 13)} <= sections
    assert {"2.3", "3.6", "3.7"} <= sections


def test_every_section_reference_resolves():
    sections = set(HEADING.findall((REPO / "docs" / "SPEC.md").read_text(encoding="utf-8")))
    problems, cited = [], 0
    for rel, text in sources():
        for n, line in enumerate(text.splitlines(), 1):
            if SIGN not in line:
                continue
            refs = REF.findall(line)
            cited += len(refs)
            if line.count(SIGN) != len(refs):
                problems.append(f"{rel}:{n}: a section sign not in the form 'SPEC {SIGN}N[.M]': {line.strip()}")
            problems += [f"{rel}:{n}: SPEC {SIGN}{r} is no heading of docs/SPEC.md" for r in refs if r not in sections]
    assert cited > 10, "the code cites the specification"
    assert problems == []
