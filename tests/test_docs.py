"""The documentation's links hold: every relative link in README.md and docs/ names a file of the repository (and a
heading of it, where the link names one), and no file of the repository points to a document it does not hold."""

import re
import subprocess
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# Documents that code comments once pointed to outside the repository (spelled in two pieces so that this file does
# not name them itself).
OUTSIDE_DOCUMENTS = ("ARCHITECTURE" + ".md", "RECIPE" + ".md")


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors: each heading lowercased, punctuation other than hyphens dropped, spaces as hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file of the repository
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.is_file() or REPO not in path.parents:
            broken.append(f"{target}: no such file in the repository")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
            broken.append(f"{target}: {path.name} has no heading #{anchor}")
    return broken


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.splitlines()  # fmt: skip
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_the_pages_exist_and_the_readme_is_a_front_page():
    assert {"training.md", "sharing.md", "results.md", "architecture.md"} <= {p.name for p in PAGES}
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# Here it is\n")
    page = tmp_path / "README.md"
    page.write_text("[a](docs/there.md) [b](docs/gone.md) [c](docs/there.md#here-it-is) [d](docs/there.md#nope)\n"
                    "```\n[e](in/a/code/block.md)\n```\n[f](https://example.org/x.md)\n")  # fmt: skip
    assert broken_links(page) == ["docs/gone.md: no such file in the repository",
                                  "docs/there.md#nope: there.md has no heading #nope"]  # fmt: skip


def test_no_file_names_a_document_the_repository_does_not_hold():
    held = {path.name for path in repository_files()}
    missing = [name for name in OUTSIDE_DOCUMENTS if name not in held]
    naming = [
        f"{path.relative_to(REPO)} names {name}"
        for path in repository_files()
        for name in missing
        if name.encode() in path.read_bytes()
    ]
    assert naming == []
