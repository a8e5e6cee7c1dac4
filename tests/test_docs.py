"""The docs run: checks on how README.md and docs/*.md are tested.

The code blocks themselves are collected by Sybil from the repository's root conftest.py (each block
of a page is a test, in order, sharing the page's namespace); pytest's ``testpaths`` names README.md and
docs. These tests hold the set-up to its promise: no Python block escapes collection under another
fence name, only a handful are skipped and each says why, and what the README says about the CLI is
what the CLI has.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\s`]*)", re.MULTILINE)
SKIP = re.compile(r"<!--\s*skip:\s*(\w+)(.*?)-->")
# fences Sybil does not run: shell, data and output formats; a Python block must be fenced ```python
NOT_PYTHON = {"", "bash", "json", "yaml", "text", "toml", "console", "csv", "markdown"}
MAX_SKIPPED = 5


def _fences(text: str) -> list[str]:
    """The info string of every opening fence (closing fences alternate with them)."""
    return [m.group(1) for m in FENCE.finditer(text)][0::2]


def test_every_python_block_is_fenced_as_python():
    for page in PAGES:
        fences = _fences(page.read_text(encoding="utf-8"))
        odd = sorted({f for f in fences if f not in NOT_PYTHON | {"python"}})
        assert not odd, f"{page.name}: code fences {odd} are not run; fence Python as ```python"


def test_sybil_collects_every_python_block():
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser

    sybil = Sybil(parsers=[PythonCodeBlockParser()], path=str(ROOT), patterns=["README.md", "docs/*.md"])
    total = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        expected = _fences(text).count("python")
        lines = {ex.line for ex in sybil.parse(page).examples()}
        blocks = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("```python")]
        # each block yields at least one example (a doctest block one per prompt), inside the block
        covered = {b for b in blocks if any(b <= ln < b + 200 for ln in lines)}
        assert len(blocks) == expected and covered == set(blocks), page.name
        total += expected
    assert total >= 30


def test_only_a_handful_of_blocks_are_skipped_and_each_says_why():
    skipped = []
    for page in PAGES:
        for action, reason in SKIP.findall(page.read_text(encoding="utf-8")):
            assert action == "next", f"{page.name}: use 'skip: next \"reason\"' (one block), not {action!r}"
            assert len(reason.strip().strip('"')) > 20, f"{page.name}: a skip needs its reason"
            skipped.append(page.name)
    assert len(skipped) <= MAX_SKIPPED, skipped


def test_readme_lists_the_cli_subcommands():
    import argparse

    from lowres_adapt.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if "lowres-adapt --help" in ln)
    listed = re.findall(r"`(\w+)`", line.split("subcommands", 1)[1])
    assert listed == list(sub.choices)
    words = {5: "five", 6: "six", 7: "seven", 8: "eight"}
    assert f"{words.get(len(sub.choices), len(sub.choices))} subcommands" in line
