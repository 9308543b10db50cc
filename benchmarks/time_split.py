"""A leak-free, time-split copy of a repository's history for retrieval evaluation.

Pull requests are found on the default branch's first-parent history in both
GitHub styles:

* merge commits ``Merge pull request #N from owner/branch`` whose body's first
  line is the PR title; the PR's commits are ``rev-list --no-merges P2 ^P1``;
* squash merges: a first-parent, non-merge commit whose subject ends in
  ``(#N)``; the title is the subject without it, the PR's commit is itself.

The newest ``test_share`` of them (by committer date) are *test* PRs. The copy is
the same history written again through ``git fast-export | edit | git
fast-import`` (``--no-data``: the blobs stay in the source repository, reached
as an alternate), with every test title removed: a test merge keeps only its
first line (PR number and branch), a test squash commit keeps ``(#N)`` and its
body, and any other commit message quoting a test title (a revert, a release
note) has the quote replaced by ``...``. The PR's own commits keep their
messages: they are the evidence a search has to find. Older PRs are *train*
PRs and keep their titles; anything learned for the evaluation learns from
those only. Rewriting messages changes every later hash; ``old_to_new`` maps
them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MERGE_RE = re.compile(r"^Merge pull request #(\d+) from (\S+)")
SQUASH_RE = re.compile(r"^(.*\S)\s+\(#(\d+)\)$")
# Flags that keep a repository's own configuration from running programs or
# changing what the output looks like (the clone under evaluation is not ours).
SAFE_GIT = [
    "-c", "core.quotepath=off", "-c", "log.showSignature=false", "-c", "core.pager=cat",
    "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",
]  # fmt: skip


@dataclass
class PullRequest:
    number: int
    title: str
    commit: str  # the merge or squash commit (hash in the repository it was read from)
    members: list[str]  # non-merge commits the PR brought in
    branch: str | None  # head branch for merge PRs, None for squash merges
    committed_at: int
    squash: bool
    test: bool = False


@dataclass
class TimeSplit:
    path: Path  # the rewritten repository (bare)
    branch: str  # ref the history was written to, e.g. refs/heads/main
    pulls: list[PullRequest]  # hashes mapped to the new repository, oldest first
    old_to_new: dict[str, str] = field(default_factory=dict)

    @property
    def train(self) -> list[PullRequest]:
        return [p for p in self.pulls if not p.test]

    @property
    def test(self) -> list[PullRequest]:
        return [p for p in self.pulls if p.test]


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", *SAFE_GIT, "-C", str(repo), *args], input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args[:3])} in {repo} failed: {proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout


def default_branch(repo: Path) -> str:
    """The ref HEAD names (``refs/heads/main``); refuses a detached HEAD."""
    out = subprocess.run(
        ["git", *SAFE_GIT, "-C", str(repo), "symbolic-ref", "-q", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise ValueError(f"{repo}: HEAD is detached; check out the default branch first")
    return out.stdout.strip()


def find_pulls(repo: Path, ref: str, max_commits: int | None = None) -> list[PullRequest]:
    """PRs merged into ``ref`` (its first-parent chain), oldest first."""
    limit = [f"--max-count={max_commits}"] if max_commits else []
    out = _git(repo, "log", "--first-parent", *limit, "--format=%H%x00%P%x00%ct%x00%B%x1e", ref)
    pulls: list[PullRequest] = []
    for rec in out.decode("utf-8", errors="replace").split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        commit, parents_s, ct, message = rec.split("\x00", 3)
        parents = parents_s.split()
        lines = [ln.strip() for ln in message.splitlines()]
        subject = lines[0] if lines else ""
        m = MERGE_RE.match(subject)
        if m and len(parents) == 2:
            body = [ln for ln in lines[1:] if ln]
            if not body:
                continue
            members = _git(repo, "rev-list", "--no-merges", parents[1], f"^{parents[0]}")
            hashes = members.decode().split()
            if hashes:
                pulls.append(PullRequest(int(m.group(1)), body[0], commit, hashes,
                                         m.group(2), int(ct), squash=False))  # fmt: skip
            continue
        s = SQUASH_RE.match(subject)
        if s and len(parents) == 1:
            pulls.append(PullRequest(int(s.group(2)), s.group(1), commit, [commit], None,
                                     int(ct), squash=True))  # fmt: skip
    pulls.sort(key=lambda p: (p.committed_at, p.commit))
    return pulls


def _records(stream: bytes) -> Iterator[tuple[str, bytes]]:
    """The fast-export stream cut into ('line', line) and ('data', payload) pieces."""
    pos = 0
    n = len(stream)
    while pos < n:
        end = stream.find(b"\n", pos)
        if end < 0:
            end = n
        line = stream[pos:end]
        pos = end + 1
        if line.startswith(b"data "):
            size = int(line[5:])
            yield "data", stream[pos : pos + size]
            pos += size
            if pos < n and stream[pos : pos + 1] == b"\n":
                pos += 1  # the optional LF after a data block
        else:
            yield "line", line


def _scrub(message: bytes, titles: list[tuple[str, str]]) -> bytes:
    """``message`` with every quoted test title replaced by '...' (case-insensitive)."""
    text = message.decode("utf-8", errors="surrogateescape")
    low = text.lower()
    for title, low_title in titles:
        if low_title in low:
            text = re.sub(re.escape(title), "...", text, flags=re.IGNORECASE)
            low = text.lower()
    return text.encode("utf-8", errors="surrogateescape")


def _missing_blobs(source: Path, stream: bytes) -> set[bytes]:
    """Blobs the stream names that the source does not hold (a partial clone's big files).

    They are written as empty files in the copy: trees differ there, messages and
    history do not, which is all the evaluation reads.
    """
    shas = {
        line.split(b" ", 3)[2]
        for line in stream.split(b"\n")
        if line.startswith(b"M ") and line.count(b" ") >= 3
    }
    shas.discard(b"inline")
    if not shas:
        return set()
    out = _git(source, "cat-file", "--batch-check=%(objectname) %(objecttype)",
               input=b"\n".join(sorted(shas)) + b"\n")  # fmt: skip
    return {line.split(b" ")[0] for line in out.splitlines() if line.endswith(b" missing")}


def build_time_split(
    source: Path,
    target: Path,
    test_share: float = 0.5,
    max_commits: int | None = None,
) -> TimeSplit:
    """Write the time-split copy of ``source`` to ``target`` (a new bare repository).

    ``max_commits`` keeps only PRs among the newest N first-parent commits (the
    whole history is still copied; older commits simply yield no queries).
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share={test_share}: must be between 0 and 1")
    if target.exists():
        raise FileExistsError(f"{target}: the time-split copy must go to a new folder")
    ref = default_branch(source)
    pulls = find_pulls(source, ref, max_commits)
    if len(pulls) < 2:
        raise ValueError(f"{source}: found {len(pulls)} pull requests on {ref}; need at least 2")
    n_test = max(1, int(round(len(pulls) * test_share)))
    for p in pulls[len(pulls) - n_test :]:
        p.test = True
    test_by_commit = {p.commit: p for p in pulls if p.test}
    own = {h for p in pulls if p.test and not p.squash for h in p.members}
    titles = [(p.title, p.title.lower()) for p in pulls if p.test and len(p.title) >= 12]

    objects = Path(_git(source, "rev-parse", "--path-format=absolute", "--git-path", "objects")
                   .decode().strip())  # fmt: skip
    stream = _git(source, "fast-export", "--no-data", "--show-original-ids",
                  "--signed-tags=strip", "--reencode=yes", ref)  # fmt: skip
    missing = _missing_blobs(source, stream)
    out: list[bytes] = []
    mark_old: dict[str, str] = {}
    mark = ""
    original = ""
    for kind, value in _records(stream):
        if kind == "line":
            if value.startswith(b"commit "):
                mark, original = "", ""
            elif value.startswith(b"mark :"):
                mark = value[5:].decode()
            elif value.startswith(b"original-oid "):
                original = value[13:].decode()
                mark_old[mark] = original
                continue  # fast-import does not need it
            elif value.startswith(b"M ") and value.split(b" ", 3)[2] in missing:
                mode, _, path = value[2:].split(b" ", 2)
                out.append(b"M " + mode + b" inline " + path + b"\ndata 0\n")
                continue
            out.append(value + b"\n")
            continue
        message = value
        pr = test_by_commit.get(original)
        if pr is not None and not pr.squash:
            message = message.split(b"\n", 1)[0] + b"\n"
        elif pr is not None:
            rest = message.split(b"\n", 1)[1] if b"\n" in message else b""
            message = f"(#{pr.number})\n".encode() + rest
        elif original not in own:
            message = _scrub(message, titles)
        out.append(b"data %d\n" % len(message) + message + b"\n")

    subprocess.run(["git", "init", "-q", "--bare", str(target)], check=True, capture_output=True)
    (target / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (target / "objects" / "info" / "alternates").write_text(str(objects) + "\n")
    marks = target / "marks.txt"
    _git(
        target,
        "fast-import",
        "--quiet",
        "--date-format=raw-permissive",
        f"--export-marks={marks}",
        input=b"".join(out),
    )
    _git(target, "symbolic-ref", "HEAD", ref)
    new_of_mark = dict(line.split() for line in marks.read_text().splitlines() if line.strip())
    old_to_new = {old: new_of_mark[m] for m, old in mark_old.items() if m in new_of_mark}
    marks.unlink()
    for p in pulls:
        p.commit = old_to_new[p.commit]
        p.members = [old_to_new[h] for h in p.members if h in old_to_new]
    return TimeSplit(path=target, branch=ref, pulls=pulls, old_to_new=old_to_new)
