"""The repository speaks for itself: no logbook, no references a clone cannot follow, links that resolve.

Tracked text files (``git ls-files``; binary files and the committed run records left out) carry no
numbered work periods or issue numbers, no references into fidelity documents outside the repository,
and no paths outside it. Every relative link in README.md and docs/ reaches a file, and a ``#anchor``
reaches a heading of that file by GitHub's slug rules. README.md stays short.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT_BYTES = 12_800  # 12.5 KB
SKIPPED_PREFIXES = ("docs/results/records/",)

# Each pattern is written so that this file's own source does not match it.
WORK_PERIODS = re.compile(r"\b[Ss]essions? [0-9]")
ISSUE_NUMBERS = re.compile(r"\b[Ii]ssue #?[0-9]+|\([Ii]ssue\b")
FIDELITY_DOCUMENTS = re.compile("SPEC \u00a7|MODEL" + "-FACTS")
OUTSIDE_PATHS = re.compile(r"\.\./shared|/w[o]rk/")


def tracked_text_files() -> dict[str, str]:
    """Path -> text of every tracked file that is text, outside the skipped folders."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    texts = {}
    for name in listing.decode().split("\0"):
        if not name or name.startswith(SKIPPED_PREFIXES) or not (ROOT / name).is_file():
            continue
        data = (ROOT / name).read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def offending_lines(pattern: re.Pattern, texts: dict[str, str]) -> list[str]:
    """``path:line: text`` for every line matching ``pattern``."""
    found = []
    for name, text in sorted(texts.items()):
        for number, line in enumerate(text.splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{name}:{number}: {line.strip()[:120]}")
    return found


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return tracked_text_files()


def test_patterns_find_what_they_name_and_nothing_else():
    assert WORK_PERIODS.search("measured in sess" + "ion 4") and WORK_PERIODS.search("the grids of sess" + "ions 3-5")
    assert not WORK_PERIODS.search("Test-session set-up") and not WORK_PERIODS.search("this session's mean")
    assert ISSUE_NUMBERS.search("as iss" + "ue 16 asks") and ISSUE_NUMBERS.search("Target (iss" + "ue") \
        and ISSUE_NUMBERS.search("Iss" + "ue 15, item 4")
    assert not ISSUE_NUMBERS.search("a known issue with EGL") and not ISSUE_NUMBERS.search("the update issues 888 calls")
    assert FIDELITY_DOCUMENTS.search("(SPEC \u00a713.18)") and FIDELITY_DOCUMENTS.search("MODEL" + "-FACTS \u00a71")
    assert not FIDELITY_DOCUMENTS.search("the paper's spec")
    assert OUTSIDE_PATHS.search("see ../" + "shared/STACK.md") and OUTSIDE_PATHS.search("--compare_with /wo" + "rk/base")
    assert not OUTSIDE_PATHS.search("data/local/experiment")


def test_tracked_files_are_read_and_records_skipped(texts):
    assert "README.md" in texts and "run.py" in texts
    assert not any(name.startswith("docs/results/records/") for name in texts)
    assert not any(name.endswith(".png") for name in texts)


def test_no_work_periods_or_issue_numbers(texts):
    assert offending_lines(WORK_PERIODS, texts) + offending_lines(ISSUE_NUMBERS, texts) == []


def test_no_references_into_documents_outside_the_repository(texts):
    assert offending_lines(FIDELITY_DOCUMENTS, texts) == []


def test_no_paths_outside_the_repository(texts):
    assert offending_lines(OUTSIDE_PATHS, texts) == []


def test_readme_stays_short():
    assert (ROOT / "README.md").stat().st_size < README_LIMIT_BYTES


# ------------------------------------------------------------------------------------------ links
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def heading_text(markdown: str) -> str:
    """A heading's text as GitHub renders it: links and images by their text, code spans by their content,
    HTML tags dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"<[^>]+>", "", text)


def github_slug(markdown: str) -> str:
    """GitHub's anchor of a heading: lower case; every character that is not a letter, digit, space,
    hyphen or underscore dropped; spaces turned into hyphens (duplicates are numbered by ``anchors``)."""
    kept = []
    for character in heading_text(markdown).strip().lower():
        category = unicodedata.category(character)
        if character in " -_" or category[0] in "LN" or category == "Mn":
            kept.append(character)
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file offers: its headings' slugs (repeated ones as slug-1, slug-2, ...) and
    explicit HTML anchors."""
    found, counts = set(), {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            seen = counts.get(slug, 0)
            counts[slug] = seen + 1
            found.add(slug if seen == 0 else f"{slug}-{seen}")
    return found


def links(path: Path) -> list[str]:
    """The link targets of a Markdown file, outside code blocks and code spans."""
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)
        targets.extend(INLINE_LINK.findall(line))
        reference = REFERENCE_LINK.match(line)
        if reference:
            targets.append(reference.group(1))
    return targets


def link_problem(page: Path, target: str) -> str | None:
    """Why a relative link of ``page`` does not resolve, or None when it does (or is not relative)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
        return None
    file_part, _, anchor = target.partition("#")
    destination = (page.parent / unquote(file_part)).resolve() if file_part else page
    if ROOT not in destination.parents and destination != ROOT:
        return f"{target}: outside the repository"
    if not destination.exists():
        return f"{target}: no such file"
    if anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination):
        return f"{target}: no heading with anchor #{anchor} in {destination.relative_to(ROOT)}"
    return None


def documentation_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_slugs_follow_github_rules():
    assert github_slug("Weights & Biases") == "weights--biases"
    assert github_slug("Plots: `python -m learning.analysis`") == "plots-python--m-learninganalysis"
    assert github_slug("Environment steps (`env_step_rates`)") == "environment-steps-env_step_rates"
    assert github_slug("The GPU path (untested on CUDA; its check is prepared)") \
        == "the-gpu-path-untested-on-cuda-its-check-is-prepared"
    assert github_slug("Ray: local and cluster") == "ray-local-and-cluster"
    assert github_slug("2. The environment") == "2-the-environment"
    assert github_slug("[Results](results.md) of the *paper*") == "results-of-the-paper"


def test_anchor_and_link_extraction(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n## Same\n## Same\n```\n## Not a heading\n[not a link](nowhere.md)\n```\n"
                    "See [a](other.md#x) and ![b](fig.png \"title\"), `[c](code.md)`.\n[ref]: ref.md\n",
                    encoding="utf-8")
    assert anchors(page) == {"top", "same", "same-1"}
    assert links(page) == ["other.md#x", "fig.png", "ref.md"]


def test_link_problems_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "a.md"
    page.write_text("# Alpha beta\n", encoding="utf-8")
    (tmp_path / "docs" / "b.md").write_text("## Gamma\n", encoding="utf-8")
    assert link_problem(page, "b.md#gamma") is None
    assert link_problem(page, "#alpha-beta") is None
    assert link_problem(page, "https://example.org/x.md#nothing") is None
    assert "no heading" in link_problem(page, "b.md#delta")
    assert "no such file" in link_problem(page, "c.md")
    assert "outside the repository" in link_problem(page, "../../elsewhere.md")


def link_cases() -> list:
    cases = []
    for page in documentation_pages():
        name = page.relative_to(ROOT).as_posix()
        for target in links(page):
            cases.append(pytest.param(name, target, id=f"{name}->{target}"))
    return cases


@pytest.mark.parametrize("page, target", link_cases())
def test_relative_link_resolves(page, target):
    assert link_problem(ROOT / page, target) is None


def test_every_docs_page_is_listed_in_the_index():
    listed = {(ROOT / "docs" / target.partition("#")[0]).resolve() for target in links(ROOT / "docs" / "README.md")}
    pages = {page.resolve() for page in (ROOT / "docs").rglob("*.md") if page.name != "README.md"}
    assert sorted(str(page.relative_to(ROOT)) for page in pages - listed) == []
