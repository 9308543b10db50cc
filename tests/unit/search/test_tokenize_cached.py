"""``tokenize`` remembers the terms per raw token: it must give exactly ``analyze``'s terms.

Real text: this project's own modules (identifiers, prose, hashes, paths, numbers)
as commit texts. ``analyze`` computes every token afresh; ``tokenize`` goes
through the per-raw-token cache the publish relies on for speed.
"""

from __future__ import annotations

from symbiotic_assets.core.config import PROJECT_ROOT
from symbiotic_assets.search.text import analyze, commit_text, tokenize


def texts() -> list[str]:
    out: list[str] = []
    for path in sorted((PROJECT_ROOT / "symbiotic_assets").rglob("*.py")):
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        for part in path.read_text(encoding="utf-8").split("\n\n"):
            out.append(commit_text(part[:80], part, [rel]))
    return out


def test_cached_terms_equal_analyze_terms() -> None:
    corpus = texts()
    assert len(corpus) > 1000
    for text in corpus + corpus:  # the second pass is served from the cache
        assert tokenize(text) == [t.term for t in analyze(text)], text[:80]


def test_returned_lists_are_the_callers_own() -> None:
    first = tokenize("Retry the compute_backoff call #42 after a1b2c3d")
    first.append("mutated")
    again = tokenize("Retry the compute_backoff call #42 after a1b2c3d")
    assert again == [
        "retry",
        "compute_backoff",
        "compute",
        "backoff",
        "call",
        "#42",
        "after",
        "a1b2c3d",
    ]
