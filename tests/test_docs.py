"""The README is the door: it fits in about 150 lines, and every link in it and in docs/ leads
somewhere (a file of the project, or a heading of the page it names)."""

import os
import re
from pathlib import Path

import pytest

from helpers import ROOT

PAGES = [Path(ROOT) / "README.md", *sorted((Path(ROOT) / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as -."""
    heads = [line.lstrip("#").strip() for line in page.read_text().splitlines()
             if line.startswith("#")]  # fmt: skip
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_the_readme_fits_a_screenful_or_two():
    lines = (Path(ROOT) / "README.md").read_text().count("\n")
    assert lines <= 160, f"README.md has {lines} lines; move reference material into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        missing_anchor = anchor and where.suffix == ".md" and anchor not in _anchors(where)
        if not where.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    readme = (Path(ROOT) / "README.md").read_text()
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme]
    assert not missing, missing
    assert os.path.isdir(Path(ROOT) / "docs" / "figures")
