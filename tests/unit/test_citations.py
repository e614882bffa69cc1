"""Code and config cite only what is in the repository: every `*.md` file named in a comment or
docstring exists, and every section `§N` names a numbered heading of the file cited before it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["src/**/*.py", "workflow/**/*.smk", "workflow/**/*.yaml", "config/*.yaml", "Snakefile"]
# a markdown file (repo-relative path) or a section sign with its number
CITATION = re.compile(r"(?P<file>[\w./-]*\w\.md)\b|§\s*(?P<section>\d+)")
# how far back (in characters) a `§N` looks for the file it belongs to: "docs/design.md §4, §6"
SECTION_REACH = 40


def cited(text: str) -> list[tuple[str | None, str | None]]:
    """(file, None) for each file cited and (file or None, section) for each section."""
    found, last_file, last_end = [], None, -(10**9)
    for match in CITATION.finditer(text):
        if match["file"]:
            last_file, last_end = match["file"], match.end()
            found.append((last_file, None))
        else:
            near = match.start() - last_end <= SECTION_REACH
            found.append((last_file if near else None, match["section"]))
            last_end = match.end() if near else last_end
    return found


def numbered_sections(markdown: Path) -> set[str]:
    return set(re.findall(r"^#+\s+(\d+)\.", markdown.read_text(), flags=re.MULTILINE))


def problems(path: Path) -> list[str]:
    where = path.relative_to(REPO)
    result = []
    for file, section in cited(path.read_text()):
        if file is None:
            result.append(f"{where}: §{section} names no file (e.g. 'docs/design.md §{section}')")
        elif not (REPO / file).is_file():
            result.append(f"{where}: cites {file}, which is not in the repository")
        elif section is not None and section not in numbered_sections(REPO / file):
            result.append(f"{where}: cites {file} §{section}, which has no heading '{section}.'")
    return result


def test_every_cited_file_and_section_exists() -> None:
    paths = sorted({path for pattern in SOURCES for path in REPO.glob(pattern)})
    assert len(paths) > 50, "the sources were not found"
    found = [problem for path in paths for problem in problems(path)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_missing_file_and_a_missing_section(tmp_path: Path) -> None:
    assert cited("see DESIGN.md §6 and docs/design.md §4, §5") == [
        ("DESIGN.md", None),
        ("DESIGN.md", "6"),
        ("docs/design.md", None),
        ("docs/design.md", "4"),
        ("docs/design.md", "5"),
    ]
    assert cited("the paper §1 steps") == [(None, "1")]
