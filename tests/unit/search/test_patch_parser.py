"""The piece-wise patch parser gives what a plain line-by-line reading gives, at any chunk size.

The input is real ``git log -p -U0`` output of this project's own history (or, outside a
checkout, of a repository built here); the reference reads it one line at a time, the
way the parser did before it worked on whole pieces.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gitrepo import ALICE, GitRepoBuilder

from symbiotic_assets.core.config import PROJECT_ROOT
from symbiotic_assets.search.change_terms import (
    _IDENT_RE,
    _KEYWORDS,
    LANGUAGE_ATTRIBUTES,
    MAX_DIFF_LINES,
    MAX_FUNCTIONS,
    MAX_IDENTIFIERS,
    MIN_IDENTIFIER,
    hunk_function,
    parse_patch_log,
)


def reference(data: bytes) -> list[tuple[str, list[str], list[str]]]:
    """One line at a time: hunk headers name functions; +/- lines (not ---/+++) give words."""
    out: list[tuple[str, list[str], list[str]]] = []
    state: tuple[str, list[str], dict[str, None], dict[str, None], list[int]] | None = None

    def finish() -> None:
        if state is not None:
            h, functions, added, removed, _ = state
            changed = [i for i in added if i not in removed] + [
                i for i in removed if i not in added
            ]
            out.append((h, functions, changed[:MAX_IDENTIFIERS]))

    for raw in data.split(b"\n"):
        if raw.startswith(b"\x00"):
            finish()
            state = (raw[1:].strip().decode("ascii", "replace"), [], {}, {}, [0])
            continue
        if state is None:
            continue
        _, functions, added, removed, count = state
        if raw.startswith(b"@@"):
            end = raw.find(b"@@", 2)
            header = raw[end + 2 :].decode("utf-8", "replace").strip() if end > 0 else ""
            name = hunk_function(header) if header else None
            if name and name not in functions and len(functions) < MAX_FUNCTIONS:
                functions.append(name)
            continue
        if raw.startswith((b"+++", b"---")) or raw[:1] not in (b"+", b"-"):
            continue
        count[0] += 1
        if count[0] > MAX_DIFF_LINES:
            continue
        target = added if raw[:1] == b"+" else removed
        for ident in _IDENT_RE.findall(raw[1:].decode("utf-8", "replace")):
            if len(ident) >= MIN_IDENTIFIER and ident not in _KEYWORDS:
                target.setdefault(ident, None)
    finish()
    return out


@pytest.fixture(scope="module")
def patch_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    repo = PROJECT_ROOT
    if not (repo / ".git").exists():  # an installed copy: build a history here
        b = GitRepoBuilder(tmp_path_factory.mktemp("patches") / "repo")
        for n in range(30):
            b.commit(f"Change {n}", f"2024-01-{n % 28 + 1:02d}T00:00:00+0000", ALICE,
                     {"m.py": "".join(f"def fn_{k}_{n}():\n    return {k}\n" for k in range(n))})  # fmt: skip
        repo = b.path
    attributes = tmp_path_factory.mktemp("attrs") / "attributes"
    attributes.write_text(LANGUAGE_ATTRIBUTES)
    hashes = subprocess.run(["git", "-C", str(repo), "rev-list", "--all", "--no-merges"],
                            capture_output=True, check=True).stdout  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), "-c", f"core.attributesFile={attributes}", "log",
         "--no-walk=unsorted", "--stdin", "--no-color", "-p", "-U0", "--no-renames",
         "--format=%x00%H"],
        input=hashes, capture_output=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
def test_pieces_read_like_lines(patch_log: bytes, size: int) -> None:
    want = reference(patch_log)
    chunks = [patch_log[i : i + size] for i in range(0, len(patch_log), size)]
    got = [(c.hash, c.functions, c.identifiers) for c in parse_patch_log(chunks)]
    assert len(want) > 20 and any(f for _, f, _ in want) and any(i for _, _, i in want)
    assert got == want


def test_edge_lines() -> None:
    """File lines, removed SQL comments, a hunk header without a closing @@, the line cap."""
    text = (
        b"noise before the first commit +ignored_word\n"
        b"\x00" + b"a" * 40 + b"\n\ndiff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
        b"@@ -1 +1 @@ def first_function(self):\n-old_name = 1\n+new_name = 1\n"
        b"@@ broken header\n+--not_a_file_line\n--- removed_sql_comment\n"
        b"\x00"
        + b"b" * 40
        + b"\n"
        + b"".join(b"+word_%d\n" % i for i in range(MAX_DIFF_LINES + 5))
        + b"\x00"
        + b"c" * 40  # no newline at the end
    )
    for size in (1, 3, len(text)):
        got = list(parse_patch_log([text[i : i + size] for i in range(0, len(text), size)]))
        assert [(c.hash, c.functions, c.identifiers) for c in got] == reference(text)
    assert got[0].functions == ["first_function"]
    assert got[0].identifiers == ["new_name", "not_a_file_line", "old_name"]
    assert len(got[1].identifiers) == MAX_IDENTIFIERS and got[2].identifiers == []


def test_more_than_the_line_cap_reads_only_the_first_lines(tmp_path: Path) -> None:
    text = b"\x00" + b"d" * 40 + b"\n" + b"".join(b"-gone_%d\n" % i for i in range(MAX_DIFF_LINES))
    text += b"+late_word\n"  # line MAX_DIFF_LINES + 1: not read
    (c,) = parse_patch_log([text])
    assert "late_word" not in c.identifiers and c.identifiers[0] == "gone_0"
