"""What git can still read in a repository whose object store lacks some objects.

A partial clone (``git clone --filter=blob:none``), a damaged pack or an interrupted
fetch leaves commits whose diff needs a blob that is not there. ``git log --numstat``
dies on the first such commit, and in a partial clone it first asks the promisor
remote for the blob, one fetch per missing object. Neither may cost us the history:
commits, refs and the reflog need no blob at all.

So, for such a repository, the extraction splits the commits in two before any diff
is computed. ``git rev-list --objects --missing=print`` lists the missing objects
without fetching them (``--missing`` switches lazy fetching off on every git since
2.20, where ``GIT_NO_LAZY_FETCH`` needs 2.44); ``git log --raw --no-renames`` names,
from trees alone, the blobs each commit's diff reads. A commit that reads a missing
blob gets its header only and unknown churn; the others get ``--numstat`` exactly as
usual, through ``git log --no-walk`` over their hashes, so no missing object is ever
asked for.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from symbiotic_assets.git.repository import GitRepository, RepositoryError

_MISSING_LINE = re.compile(rb"^\?([0-9a-f]{40,64})$", re.MULTILINE)
_ZERO = re.compile(r"^0+$")
_GITLINK = "160000"


@dataclass
class ReadablePlan:
    """Commits of a revision range split by whether git can compute their diff."""

    readable: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    missing_objects: int = 0
    reason: str = ""


def is_partial_clone(repo: GitRepository) -> bool:
    """True when the repository names a promisor remote (``--filter`` clones do).

    Such a repository lacks objects by design, and git would fetch each one it
    touches; it is read the missing-object-tolerant way from the start.
    """
    _, out, _ = repo.run(
        ["config", "--get-regexp", r"^(extensions\.partialclone|remote\..*\.promisor)$"],
        ok_codes=(0, 1),
    )
    for line in out.decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "extensions.partialclone" and value.strip():
            return True
        if key.endswith(".promisor") and value.strip().lower() in ("true", "yes", "on", "1"):
            return True
    return False


def missing_objects(repo: GitRepository, revs: Sequence[str]) -> set[str]:
    """Objects reachable from ``revs`` that the object store does not have.

    ``--missing=print`` walks every tree without fetching anything and prints a
    missing object as ``?<id>`` (a missing tree is not descended into).
    """
    missing: set[str] = set()
    rest = b""
    args = ["rev-list", "--objects", "--missing=print", "--no-object-names", "--stdin"]
    for chunk in repo.stream(args, stdin_lines=revs):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        missing.update(m.decode() for m in _MISSING_LINE.findall(data, 0, cut))
    missing.update(m.decode() for m in _MISSING_LINE.findall(rest))
    return missing


def diff_blobs(chunks: Iterable[bytes]) -> Iterator[tuple[str, set[str]]]:
    """(commit, blob ids its diff reads) from ``git log --raw --no-renames -z --format=%x1e%H``.

    The stream is tokens split by NUL: ``\\x1e<hash>``, then per changed path a
    ``:<mode> <mode> <old> <new> <status>`` token followed by the path. Paths are
    skipped by position, so a path that looks like either token is not misread.
    Gitlinks (submodule commits) and the all-zero id of an added or deleted side
    are not objects of this repository.
    """
    commit: str | None = None
    blobs: set[str] = set()
    skip_path = False
    pending = b""
    for chunk in itertools.chain(chunks, [None]):
        if chunk is None:
            tokens, pending = [pending], b""
        else:
            tokens = (pending + chunk).split(b"\0")
            pending = tokens.pop()
        for raw in tokens:
            if skip_path:
                skip_path = False
                continue
            tok = raw.lstrip(b"\n")
            if tok.startswith(b"\x1e"):
                if commit is not None:
                    yield commit, blobs
                commit, blobs = tok[1:].decode(), set()
            elif tok.startswith(b":"):
                skip_path = True
                parts = tok[1:].decode().split(" ")
                if len(parts) < 5:
                    raise ValueError(f"unexpected raw diff entry {tok[:200]!r} in commit {commit}")
                old_mode, new_mode, old_id, new_id = parts[:4]
                for mode, oid in ((old_mode, old_id), (new_mode, new_id)):
                    if mode != _GITLINK and not _ZERO.match(oid):
                        blobs.add(oid)
            elif tok:
                raise ValueError(f"unexpected token {tok[:200]!r} in git log --raw output")
    if commit is not None:
        yield commit, blobs


def plan_readable(repo: GitRepository, revs: Sequence[str]) -> ReadablePlan:
    """Split the commits of ``revs`` into those whose diff git can compute and the rest."""
    plan = ReadablePlan()
    missing = missing_objects(repo, revs)
    plan.missing_objects = len(missing)
    try:
        raw = repo.stream(
            ["log", "--raw", "--no-renames", "--no-abbrev", "-z", "--format=%x1e%H", "--stdin"],
            stdin_lines=revs,
        )
        for commit, blobs in diff_blobs(raw):
            if blobs & missing:
                plan.unreadable.append(commit)
            else:
                plan.readable.append(commit)
    except RepositoryError as exc:
        # trees are missing too: no diff can be trusted, but every commit still can
        plan.readable = []
        plan.unreadable = _rev_list(repo, revs)
        plan.reason = f"trees cannot be read ({exc.cause[:200]})"
        return plan
    if plan.unreadable:
        plan.reason = (
            f"{plan.missing_objects} objects missing from the object store; "
            f"{len(plan.unreadable)} commits have a diff that needs one"
        )
    return plan


def _rev_list(repo: GitRepository, revs: Sequence[str]) -> list[str]:
    return b"".join(repo.stream(["rev-list", "--stdin"], stdin_lines=revs)).decode().split()
