"""The commit text we embed and index, and the code-aware tokenizer for lexical search.

Commit text format (``commit_text``), version ``COMMIT_TEXT_VERSION``::

    <subject>
    <body, trailers such as Signed-off-by removed, at most 1000 characters>
    Files: <path words>; <path words>; ...

where each touched path is split into words (``src/retry_policy.py`` ->
``src retry policy py``; camelCase split too) so that the embedding model's word
pieces see ``retry`` and ``policy`` rather than one unknown token. At most 30
paths are listed (the most specific ones, i.e. the deepest first would bias
towards vendored trees, so we keep the order git gave). Empty parts are left out.

The tokenizer keeps what people type when they look for code: whole identifiers
(``compute_backoff``, ``HTTPAdapter``, ``requests.adapters``) *and* their parts
(``compute``, ``backoff``, ``http``, ``adapter``), hash prefixes (``a1b2c3d``) and
issue references (``#1234``). Plain words get a light suffix stripping so that
``retries``/``retry`` and ``timeouts``/``timeout`` meet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

COMMIT_TEXT_VERSION = 1
MAX_BODY_CHARS = 1000
MAX_PATHS = 30

_PATH_SPLIT_RE = re.compile(r"[\\/_.\-\s:]+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_TRAILER_RE = re.compile(
    r"^(signed-off-by|co-authored-by|reviewed-by|acked-by|tested-by|change-id|cc):",
    re.IGNORECASE,
)
# A raw token: an issue reference, or a run of identifier/path characters.
_RAW_TOKEN_RE = re.compile(r"#\d+|[A-Za-z0-9_][A-Za-z0-9_./\-]*[A-Za-z0-9_]|[A-Za-z0-9]")
_HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
_PART_SPLIT_RE = re.compile(r"[_./\-]+")
_DIGIT_SPLIT_RE = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")

_STOPWORD_TEXT = """a an and are as at be been but by can could did do does for from had has have how i if
    in into is it its me my of on or our so that the their them then there these they this
    those to was we were what when where which who why will with would you your us all any
    some made make find commit commits change changed changes"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def path_words(path: str) -> str:
    """``src/retry_policy.py`` -> ``src retry policy py`` (camelCase parts split too)."""
    parts = [p for p in _PATH_SPLIT_RE.split(path) if p]
    return " ".join(_CAMEL_RE.sub(" ", p) for p in parts)


def clean_body(body: str | None) -> str:
    """Body without trailers (they name people, not changes) and with whitespace collapsed."""
    if not body:
        return ""
    lines = [ln for ln in body.splitlines() if not _TRAILER_RE.match(ln.strip())]
    text = " ".join(" ".join(lines).split())
    return text[:MAX_BODY_CHARS].rstrip()


def commit_text(subject: str | None, body: str | None, paths: Sequence[str] | None) -> str:
    """The one text format every commit is embedded and indexed in (see the module docstring)."""
    pieces: list[str] = []
    subj = " ".join((subject or "").split())
    if subj:
        pieces.append(subj)
    cleaned = clean_body(body)
    if cleaned:
        pieces.append(cleaned)
    words = [path_words(p) for p in list(paths or [])[:MAX_PATHS]]
    words = [w for w in words if w]
    if words:
        pieces.append("Files: " + "; ".join(words))
    return "\n".join(pieces)


def stem(word: str) -> str:
    """A deliberately small suffix stripper: plural, -ing, -ed. Identifiers are never stemmed."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
        return (
            word[:-1] if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "ls" else word
        )
    if word.endswith("ed") and len(word) > 4 and not word.endswith("eed"):
        word = word[:-2]
        return (
            word[:-1] if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "ls" else word
        )
    if word.endswith("es") and len(word) > 4 and word[-3] in "sxz":
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Token:
    """One indexed term and the text it came from (used to explain matches)."""

    term: str
    surface: str
    kind: str  # word | identifier | hex | issue


def _split_identifier(raw: str) -> list[str]:
    out: list[str] = []
    for piece in _PART_SPLIT_RE.split(raw):
        if not piece:
            continue
        for camel in _CAMEL_RE.sub(" ", piece).split():
            out.extend(p for p in _DIGIT_SPLIT_RE.sub(" ", camel).split() if p)
    return out


def _is_compound(raw: str) -> bool:
    return bool(re.search(r"[_./\-]", raw) or _CAMEL_RE.search(raw))


def analyze(text: str, *, drop_stopwords: bool = True) -> list[Token]:
    """Tokens with their kind; the basis of ``tokenize`` and of query parsing."""
    tokens: list[Token] = []
    for raw in _RAW_TOKEN_RE.findall(text):
        tokens += _analyze_raw(raw, drop_stopwords)
    return tokens


def _analyze_raw(raw: str, drop_stopwords: bool) -> list[Token]:
    """The tokens of one raw token (an identifier, word, hash or ``#N``); depends on it alone."""
    if raw.startswith("#"):
        return [Token(raw, raw, "issue")]
    low = raw.lower()
    if _HEX_RE.match(low) and any(c.isdigit() for c in low) and any(c.isalpha() for c in low):
        return [Token(low, raw, "hex")]
    tokens: list[Token] = []
    if _is_compound(raw):
        whole = low.strip("./-")
        if whole:
            tokens.append(Token(whole, raw, "identifier"))
    for part in _split_identifier(raw):
        p = part.lower()
        if drop_stopwords and p in STOPWORDS:
            continue
        if len(p) == 1 and not p.isdigit():
            continue
        tokens.append(Token(stem(p), part, "word"))
    return tokens


@lru_cache(maxsize=1 << 17)
def _raw_terms(raw: str) -> tuple[str, ...]:
    return tuple(t.term for t in _analyze_raw(raw, True))


def tokenize(text: str) -> list[str]:
    """Index terms of ``text``: identifiers whole and split, hash prefixes, ``#1234``, stems.

    The terms of a raw token depend on it alone and the same words recur in every
    commit, so they are remembered per raw token (a bounded cache): the publish
    tokenizes every commit text, and this is most of its time.
    """
    terms: list[str] = []
    for raw in _RAW_TOKEN_RE.findall(text):
        terms += _raw_terms(raw)
    return terms


@dataclass(frozen=True)
class ParsedQuery:
    """What a query asks for: its terms and the exact identifiers in it."""

    text: str
    tokens: tuple[Token, ...]
    hex_prefixes: tuple[str, ...]
    issue_refs: tuple[str, ...]
    identifiers: tuple[str, ...]

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(t.term for t in self.tokens))

    @property
    def has_identifier(self) -> bool:
        return bool(self.hex_prefixes or self.issue_refs or self.identifiers)

    def surface(self, term: str) -> str:
        for t in self.tokens:
            if t.term == term:
                return t.surface.lower() if t.kind == "word" else t.surface
        return term


def parse_query(query: str) -> ParsedQuery:
    """Split a query into terms and exact identifiers (hash prefixes, ``#N``, code names)."""
    tokens = analyze(query)
    if not tokens:  # a query of stopwords only still means something to the model
        tokens = analyze(query, drop_stopwords=False)
    return ParsedQuery(
        text=query,
        tokens=tuple(tokens),
        hex_prefixes=tuple(dict.fromkeys(t.term for t in tokens if t.kind == "hex")),
        issue_refs=tuple(dict.fromkeys(t.term for t in tokens if t.kind == "issue")),
        identifiers=tuple(dict.fromkeys(t.term for t in tokens if t.kind == "identifier")),
    )
