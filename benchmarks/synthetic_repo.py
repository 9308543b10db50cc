"""A generated git repository whose every merge outcome is known in advance.

The benchmark needs a history large enough to show throughput (tens of thousands
of commits) and realistic enough to exercise what extraction has to get right:
several authors with positive, negative and half-hour UTC offsets, a bot, a
``.mailmap`` alias, renames, deletions, binary files, a symlink, long-lived
branches, pull-request style topic branches, two-parent merges of which a known
share conflict, octopus merges, annotated and lightweight tags.

Everything is written by one ``git fast-import`` process fed from Python, so
50,000 commits take seconds, not the minutes that one ``git commit`` per commit
would. Fast-import does not merge anything: a merge commit's tree is whatever we
say it is. So the generator keeps every branch's tree in memory and performs the
three-way merge itself, which is also how it knows which merges conflict:

* every ordinary path belongs to exactly one branch or topic lane (its
  *territory*); only the owner adds, edits, renames or deletes it, so a merge
  never meets the same ordinary file changed on both sides;
* a few *hot* files are edited by everybody, one line ("slot") at a time, each
  slot set between unchanged unique filler lines so that git's line merge sees
  independent hunks. Most slots have one owner; the *shared* slots are edited on
  both sides right before a merge that is meant to conflict.

Merges are computed slot by slot; a slot changed on both sides to different
values since the merge base is a conflict, exactly what ``git merge-tree
--write-tree`` reports. Only ``main`` merges other branches, and other branches
only merge ``main`` (to catch up), so each merge has a single merge base: the
last point where the two branches met.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

ZERO_HASH = "0" * 40
START_EPOCH = 1_546_851_600  # 2019-01-07 09:00 UTC
HOT_FILES = ("src/core/settings.py", "src/core/registry.py", "CHANGELOG.md")
SHARED_SLOTS = 4
CONFIG_MARKER = "symbiotic.synthetic"  # set in generated repositories' config


@dataclass(frozen=True)
class Identity:
    name: str
    email: str
    tz: str  # git's +HHMM / -HHMM

    def line(self, epoch: int) -> str:
        return f"{self.name} <{self.email}> {epoch} {self.tz}"


MAINTAINERS = (
    Identity("Ana Souza", "ana.souza@example.com", "-0300"),
    Identity("Kenji Watanabe", "kenji@example.jp", "+0900"),
)
DEVELOPERS = (
    Identity("Priya Raman", "priya.raman@example.in", "+0530"),
    Identity("Liam O'Connor", "liam@example.ie", "+0000"),
    Identity("Zoë Müller", "zoe.mueller@example.de", "+0100"),
    Identity("Marcus Lee", "marcus.lee@example.com", "-0800"),
    Identity("Chidi Okafor", "chidi@example.ng", "+0100"),
    Identity("Sarah Tremblay", "sarah@example.ca", "-0330"),
    Identity("李雷", "li.lei@example.cn", "+0800"),
    Identity("Dana Kowalski", "dana.k@example.com", "-0500"),
)
# Ana's old laptop identity, mapped to her canonical one by .mailmap
ALIAS = Identity("ana", "ana@old-laptop.local", "-0300")
BOT = Identity("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com", "+0000")
GITHUB = Identity("GitHub", "noreply@github.com", "+0000")
MAILMAP = "Ana Souza <ana.souza@example.com> ana <ana@old-laptop.local>\n"


@dataclass(frozen=True)
class _LongLived:
    name: str
    territory: tuple[str, ...]
    starts: float  # share of the history at which it branches off main
    stops: float  # share of the history after which it gets no commits
    merges_into_main: bool
    weight: float
    team: tuple[Identity, ...]


LONG_LIVED = (
    _LongLived("develop", ("src/platform/",), 0.01, 1.0, True, 0.40, DEVELOPERS[:4]),
    _LongLived("legacy/v1", ("legacy/",), 0.005, 0.35, True, 0.10, DEVELOPERS[6:]),
    _LongLived("feature/web-ui", ("web/",), 0.10, 1.0, True, 0.25, DEVELOPERS[2:5]),
    _LongLived("experiment/native-core", ("native/",), 0.30, 1.0, False, 0.10, DEVELOPERS[5:7]),
    _LongLived("release/2.x", ("src/compat/",), 0.60, 1.0, True, 0.15, MAINTAINERS),
)
# topic lanes: a topic branch works in its lane's directory; lanes are reused
LANES = (
    ("search", ("src/search/",)),
    ("billing", ("src/billing/",)),
    ("auth", ("src/auth/",)),
    ("deps", ("requirements/",)),  # dependabot's lane
)
MAIN_TERRITORY = ("src/app/", "docs/", "scripts/", "assets/")
WORDS = (
    "client", "server", "cache", "index", "query", "model", "parser", "loader", "writer",
    "schema", "router", "worker", "queue", "policy", "token", "session", "report", "metrics",
    "store", "config", "events", "retry", "backoff", "format", "encode", "decode", "search",
)  # fmt: skip
SUBJECTS = (
    "fix", "feat", "refactor", "test", "docs", "perf", "chore", "style",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One blob at one path; identity (``is``) is what the three-way merge compares."""

    mark: int
    mode: str
    lines: tuple[str, ...] | None = None  # text files
    slots: tuple[str, ...] | None = None  # hot files


@dataclass
class _Branch:
    name: str
    territory: tuple[str, ...]
    slot_class: int
    files: dict[str, FileVersion]
    own: list[str]
    tip: int = 0
    ahead: bool = False  # has commits main does not have
    team: tuple[Identity, ...] = DEVELOPERS
    commits: int = 0
    planned: int = 0  # topics: commits before the pull request is merged
    lane: int = -1


@dataclass
class SyntheticRepo:
    """What was generated; counts are by construction, hashes from fast-import's marks."""

    path: Path
    commits: int
    merges: int  # commits with two or more parents (git rev-list --merges)
    two_parent_merges: int
    octopus_merges: int
    conflicting_merges: int
    clean_merges: int
    tags: int
    branches: int
    files_at_head: int
    seed: int
    seconds: float
    conflicting_merge_hashes: list[str] = field(default_factory=list, repr=False)
    clean_merge_hashes: list[str] = field(default_factory=list, repr=False)
    octopus_merge_hashes: list[str] = field(default_factory=list, repr=False)

    def counts(self) -> dict[str, object]:
        """The summary without the hash lists (for printing and JSON)."""
        data = asdict(self)
        for key in ("conflicting_merge_hashes", "clean_merge_hashes", "octopus_merge_hashes"):
            data.pop(key)
        data["path"] = str(self.path)
        return data


class _Stream:
    """Buffered writer to fast-import's stdin."""

    def __init__(self, sink: IO[bytes]):
        self._sink = sink
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._sink.write(b"".join(self._parts))
            self._parts = []
            self._size = 0


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


class _Generator:
    def __init__(self, stream: _Stream, commits: int, seed: int, conflict_share: float):
        self.out = stream
        self.target = commits
        self.rng = random.Random(seed)
        self.conflict_share = conflict_share
        self.mark = 0
        self.count = 0
        self.clock = START_EPOCH
        self.counter = 0  # makes every generated line unique
        self.branches: dict[str, _Branch] = {}
        self.bases: dict[str, dict[str, FileVersion]] = {}  # merge base tree, per branch vs main
        self.main_tip_at_base: dict[str, int] = {}
        self.lanes: list[_Branch | None] = [None] * len(LANES)
        self.topic_serial = 0
        self.merged_topics: list[str] = []
        self.conflicting: list[int] = []
        self.clean: list[int] = []
        self.octopus: list[int] = []
        self.tags = 0
        self.slot_classes = 1 + len(LONG_LIVED) + len(LANES)
        self.slots_per_file = 2 * self.slot_classes + SHARED_SLOTS
        self.octopus_due = [int(commits * 0.4), int(commits * 0.8)] if commits >= 50 else []
        self.tag_every = max(commits // 8, 1)

    # -- primitives ------------------------------------------------------------------------
    def _next_mark(self) -> int:
        self.mark += 1
        return self.mark

    def _token(self) -> str:
        self.counter += 1
        return f"{self.counter:x}"

    def _tick(self) -> int:
        self.clock += self.rng.randint(60, 5400)
        return self.clock

    def _blob(self, content: bytes) -> int:
        mark = self._next_mark()
        self.out.write(b"blob\nmark :%d\n" % mark + _data(content))
        return mark

    def _text(self, path: str, lines: tuple[str, ...], mode: str = "100644") -> FileVersion:
        mark = self._blob(("\n".join(lines) + "\n").encode())
        return FileVersion(mark, mode, lines=lines)

    def _hot(self, path: str, slots: tuple[str, ...]) -> FileVersion:
        lines: list[str] = [f"# {path}: generated settings, one section per slot"]
        for i, value in enumerate(slots):
            lines += [f"# {path} section {i} begins", f"SLOT_{i} = {value!r}",
                      f"# {path} section {i} ends"]  # fmt: skip
        mark = self._blob(("\n".join(lines) + "\n").encode())
        return FileVersion(mark, "100644", slots=slots)

    def _binary(self) -> FileVersion:
        body = self.rng.randbytes(self.rng.randint(200, 3000))
        return FileVersion(self._blob(b"\x89PNG\r\n\x1a\n\x00" + body), "100644")

    def _commit(
        self,
        branch: _Branch,
        author: Identity,
        message: str,
        changes: dict[str, FileVersion | None],
        merge_parents: Iterable[int] = (),
        committer: Identity | None = None,
    ) -> int:
        mark = self._next_mark()
        when = self._tick()
        committed = when
        if committer is None:
            committer = author
        elif committer is not author:
            committed = when + self.rng.randint(0, 7200)
            self.clock = committed
        head = (
            f"commit refs/heads/{branch.name}\nmark :{mark}\n"
            f"author {author.line(when)}\ncommitter {committer.line(committed)}\n"
        ).encode()
        parts = [head, _data(message.encode())]
        if branch.tip:
            parts.append(b"from :%d\n" % branch.tip)
        for parent in merge_parents:
            parts.append(b"merge :%d\n" % parent)
        for path, version in changes.items():
            if version is None:
                parts.append(f"D {path}\n".encode())
            else:
                parts.append(f"M {version.mode} :{version.mark} {path}\n".encode())
        parts.append(b"\n")
        self.out.write(b"".join(parts))
        branch.tip = mark
        branch.commits += 1
        self.count += 1
        return mark

    def _tag(self, name: str, target: int, annotated: bool) -> None:
        if annotated:
            tagger = MAINTAINERS[self.tags % len(MAINTAINERS)]
            msg = f"Release {name}\n".encode()
            head = f"tag {name}\nfrom :{target}\ntagger {tagger.line(self.clock)}\n".encode()
            self.out.write(head + _data(msg))
        else:
            self.out.write(f"reset refs/tags/{name}\nfrom :{target}\n\n".encode())
        self.tags += 1

    # -- content -------------------------------------------------------------------------
    def _new_lines(self, n: int) -> list[str]:
        rng = self.rng
        out = []
        for _ in range(n):
            w1, w2 = rng.choice(WORDS), rng.choice(WORDS)
            out.append(f"    {w1}_{self._token()} = {w2}(limit={rng.randint(1, 999)})")
        return out

    def _edited(self, lines: tuple[str, ...]) -> tuple[str, ...]:
        rng = self.rng
        work = list(lines)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            at = rng.randrange(len(work) + 1)
            kind = rng.random()
            if kind < 0.5 and at < len(work):  # rewrite a few lines
                span = rng.randint(1, 4)
                work[at : at + span] = self._new_lines(min(span, len(work) - at))
            elif kind < 0.85 or len(work) < 8:  # insert
                work[at:at] = self._new_lines(rng.randint(1, 8))
            else:  # delete
                del work[at : at + rng.randint(1, 5)]
        if len(work) > 160:
            del work[100:]
        return tuple(work)

    def _new_path(self, branch: _Branch) -> str:
        prefix = self.rng.choice(branch.territory)
        sub = self.rng.choice(("", "core/", "io/", "api/", "tests/"))
        ext = ".md" if prefix == "docs/" else ".sh" if prefix == "scripts/" else ".py"
        if prefix == "requirements/":
            sub, ext = "", ".txt"
        return f"{prefix}{sub}{self.rng.choice(WORDS)}_{self._token()}{ext}"

    def _add(self, branch: _Branch, changes: dict[str, FileVersion | None]) -> None:
        path = self._new_path(branch)
        if path.startswith("assets/"):
            path = path.rsplit(".", 1)[0] + ".png"
            version = self._binary()
        else:
            mode = "100755" if path.endswith(".sh") else "100644"
            header = f"# {path.rsplit('/', 1)[-1]}"
            version = self._text(path, (header, *self._new_lines(self.rng.randint(5, 40))), mode)
        changes[path] = version
        branch.files[path] = version
        branch.own.append(path)

    def _ordinary_commit(
        self, branch: _Branch, author: Identity, committer: Identity | None = None
    ) -> None:
        rng = self.rng
        changes: dict[str, FileVersion | None] = {}
        n_ops = rng.choice((1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 6))
        if rng.random() < 0.01:
            n_ops = rng.randint(10, 30)  # an occasional large commit
        for _ in range(n_ops):
            own = [p for p in branch.own if p not in changes]
            r = rng.random()
            if not own or (r < 0.12 and len(branch.own) < 60) or len(branch.own) < 3:
                self._add(branch, changes)
            elif r < 0.20 and len(branch.own) > 8:  # delete
                path = rng.choice(own)
                branch.own.remove(path)
                del branch.files[path]
                changes[path] = None
            elif r < 0.28:  # rename, sometimes with an edit
                path = rng.choice(own)
                version = branch.files.pop(path)
                branch.own.remove(path)
                new_path = self._new_path(branch)
                if path.endswith(".png"):
                    new_path = new_path.rsplit(".", 1)[0] + ".png"
                if version.lines is not None and rng.random() < 0.4:
                    edited = list(version.lines)
                    edited[-1:] = self._new_lines(2)
                    version = self._text(new_path, tuple(edited), version.mode)
                changes[path] = None
                changes[new_path] = version
                branch.files[new_path] = version
                branch.own.append(new_path)
            elif r < 0.36:  # one of this branch's slots in a hot file
                hot = rng.choice([h for h in HOT_FILES if h not in changes] or [None])
                if hot is None:
                    continue
                slot = branch.slot_class + self.slot_classes * rng.randint(0, 1)
                self._set_slot(branch, hot, slot, f"{branch.name}@{self._token()}", changes)
            else:  # modify
                path = rng.choice(own)
                version = branch.files[path]
                if version.lines is None:
                    version = self._binary()
                else:
                    version = self._text(path, self._edited(version.lines), version.mode)
                branch.files[path] = version
                changes[path] = version
        if not changes:
            self._add(branch, changes)
        kind = rng.choice(SUBJECTS)
        first = next(iter(changes)).rsplit("/", 1)[-1]
        message = f"{kind}: {rng.choice(WORDS)} {rng.choice(WORDS)} in {first}"
        if rng.random() < 0.3:
            message += f"\n\nTouches {len(changes)} paths.\nRefs #{rng.randint(1, 9999)}"
        self._commit(branch, author, message + "\n", changes, committer=committer)
        if branch.name != "main":
            branch.ahead = True

    def _set_slot(self, branch: _Branch, hot: str, slot: int, value: str,
                  changes: dict[str, FileVersion | None]) -> None:  # fmt: skip
        current = branch.files[hot]
        assert current.slots is not None
        slots = list(current.slots)
        slots[slot] = value
        version = self._hot(hot, tuple(slots))
        branch.files[hot] = version
        changes[hot] = version

    # -- merging -------------------------------------------------------------------------
    def _three_way(
        self,
        base: dict[str, FileVersion],
        ours: dict[str, FileVersion],
        theirs: dict[str, FileVersion],
    ) -> tuple[dict[str, FileVersion], list[str]]:
        """Merge ``theirs`` into ``ours``; returns the tree and the conflicted paths."""
        result = dict(ours)
        conflicted: list[str] = []
        for path in base.keys() | theirs.keys():
            b, o, t = base.get(path), ours.get(path), theirs.get(path)
            if t is b or t is o:
                continue
            if o is b:
                if t is None:
                    del result[path]
                else:
                    result[path] = t
                continue
            if b is None or o is None or t is None or None in (b.slots, o.slots, t.slots):
                raise AssertionError(f"generator bug: {path} changed on both sides")
            assert b.slots is not None and o.slots is not None and t.slots is not None
            merged: list[str] = []
            clash = False
            for bs, os_, ts in zip(b.slots, o.slots, t.slots, strict=True):
                if os_ == ts or ts == bs:
                    merged.append(os_)
                elif os_ == bs:
                    merged.append(ts)
                else:
                    clash = True
                    merged.append(f"resolved@{self._token()}")
            if clash:
                conflicted.append(path)
            # written later by _materialize: an octopus merge may merge this file again
            result[path] = FileVersion(0, o.mode, slots=tuple(merged))
        return result, conflicted

    def _materialize(self, tree: dict[str, FileVersion]) -> None:
        """Write the blobs of merged hot files (mark 0) now that the merge is final."""
        for path, version in tree.items():
            if version.mark == 0:
                assert version.slots is not None
                tree[path] = self._hot(path, version.slots)

    @staticmethod
    def _changes(before: dict[str, FileVersion], after: dict[str, FileVersion]) -> dict[str, FileVersion | None]:  # fmt: skip
        changes: dict[str, FileVersion | None] = {
            p: v for p, v in after.items() if before.get(p) is not v
        }
        for p in before.keys() - after.keys():
            changes[p] = None
        return changes

    def _merge_into_main(self, branches: list[_Branch], conflict: bool) -> None:
        main = self.branches["main"]
        if conflict:  # both sides rewrite the same shared slot, differently
            theirs = branches[0]
            hot = self.rng.choice(HOT_FILES)
            slot = 2 * self.slot_classes + self.rng.randrange(SHARED_SLOTS)
            for side in (theirs, main):
                changes: dict[str, FileVersion | None] = {}
                self._set_slot(side, hot, slot, f"{side.name}@{self._token()}", changes)
                author = self.rng.choice(side.team)
                self._commit(side, author, f"fix: adjust {hot.rsplit('/', 1)[-1]} for {side.name}\n",
                             changes)  # fmt: skip
            theirs.ahead = True
        tree = main.files
        conflicted: list[str] = []
        for other in branches:
            tree, clash = self._three_way(self.bases[other.name], tree, other.files)
            conflicted += clash
        if len(branches) > 1 and conflicted:
            raise AssertionError(f"generator bug: octopus merge conflicts in {conflicted}")
        self._materialize(tree)
        names = [b.name for b in branches]
        if len(branches) == 1:
            message = f"Merge branch '{names[0]}'"
            if names[0].startswith(("feature/", "fix/", "dependabot/")):
                message = f"Merge pull request #{self.rng.randint(100, 99999)} from org/{names[0]}"
        else:
            message = (
                "Merge branches " + ", ".join(f"'{n}'" for n in names[:-1]) + f" and '{names[-1]}'"
            )
        if conflicted:
            message += "\n\nConflicts:\n" + "".join(f"\t{p}\n" for p in sorted(set(conflicted)))
        changes = self._changes(main.files, tree)
        maintainer = self.rng.choice(MAINTAINERS)
        mark = self._commit(main, maintainer, message + "\n", changes,
                            merge_parents=[b.tip for b in branches])  # fmt: skip
        main.files = tree
        if len(branches) > 1:
            self.octopus.append(mark)
        elif conflicted:
            self.conflicting.append(mark)
        else:
            self.clean.append(mark)
        for other in branches:
            self.bases[other.name] = dict(other.files)
            self.main_tip_at_base[other.name] = main.tip
            other.ahead = False

    def _sync_from_main(self, branch: _Branch) -> None:
        """The branch catches up with main (a merge of main into it)."""
        main = self.branches["main"]
        tree, conflicted = self._three_way(self.bases[branch.name], branch.files, main.files)
        self._materialize(tree)
        message = f"Merge branch 'main' into {branch.name}\n"
        if conflicted:
            message += "\nConflicts:\n" + "".join(f"\t{p}\n" for p in conflicted)
        changes = self._changes(branch.files, tree)
        mark = self._commit(branch, self.rng.choice(branch.team), message, changes,
                            merge_parents=[main.tip])  # fmt: skip
        branch.files = tree
        (self.conflicting if conflicted else self.clean).append(mark)
        self.bases[branch.name] = dict(main.files)
        self.main_tip_at_base[branch.name] = main.tip
        branch.ahead = True

    # -- branches ------------------------------------------------------------------------
    def _branch_off(self, name: str, territory: tuple[str, ...], slot_class: int,
                    team: tuple[Identity, ...]) -> _Branch:  # fmt: skip
        main = self.branches["main"]
        own = [p for p in main.files if p.startswith(territory)]
        branch = _Branch(
            name, territory, slot_class, dict(main.files), own, tip=main.tip, team=team
        )
        self.branches[name] = branch
        self.bases[name] = dict(main.files)
        self.main_tip_at_base[name] = main.tip
        return branch

    def _start_topic(self, lane: int) -> None:
        self.topic_serial += 1
        lane_name, territory = LANES[lane]
        if lane_name == "deps":
            pkg = self.rng.choice(("requests", "pydantic", "duckdb", "numpy", "urllib3", "rich"))
            name = f"dependabot/pip/{pkg}-{self.topic_serial}"
            team: tuple[Identity, ...] = (BOT,)
            planned = 1
        else:
            name = f"feature/{lane_name}-{self.rng.choice(WORDS)}-{self.topic_serial}"
            team = (self.rng.choice(DEVELOPERS),)
            planned = self.rng.choice((1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 14))
        topic = self._branch_off(name, territory, 1 + len(LONG_LIVED) + lane, team)
        topic.planned = planned
        topic.lane = lane
        self.lanes[lane] = topic

    def _initial_commit(self) -> None:
        main = _Branch("main", MAIN_TERRITORY, 0, {}, [], team=MAINTAINERS + DEVELOPERS[:3])
        self.branches["main"] = main
        changes: dict[str, FileVersion | None] = {}
        for _ in range(120):
            self._add(main, changes)
        for lane_name, territory in LANES:  # lanes start with a few files on main
            lane = _Branch(lane_name, territory, 0, main.files, main.own)
            for _ in range(4 if lane_name == "deps" else 12):
                self._add(lane, changes)
        main.own = [p for p in main.own if p.startswith(MAIN_TERRITORY)]
        fixed = {
            "README.md": ("# Synthetic project", "", "Generated for benchmarks."),
            ".gitignore": ("__pycache__/", "*.pyc", ".venv/"),
            "docs/guía de instalación.md": ("# Guía de instalación", "", "Paso 1."),
        }
        for path, lines in fixed.items():
            version = self._text(path, lines)
            changes[path] = main.files[path] = version
        mailmap = FileVersion(self._blob(MAILMAP.encode()), "100644")
        changes[".mailmap"] = main.files[".mailmap"] = mailmap
        link = FileVersion(self._blob("docs/guía de instalación.md".encode()), "120000")
        changes["INSTALL.md"] = main.files["INSTALL.md"] = link
        for hot in HOT_FILES:
            version = self._hot(hot, tuple(f"initial@{i}" for i in range(self.slots_per_file)))
            changes[hot] = main.files[hot] = version
        self._commit(main, MAINTAINERS[0], "Initial commit\n", changes)

    # -- the history ---------------------------------------------------------------------
    def run(self) -> None:
        rng = self.rng
        self._initial_commit()
        main = self.branches["main"]
        while self.count < self.target:
            left = self.target - self.count
            progress = self.count / self.target
            for spec in LONG_LIVED:
                if spec.name not in self.branches and progress >= spec.starts:
                    self._branch_off(
                        spec.name, spec.territory, 1 + LONG_LIVED.index(spec), spec.team
                    )
            if self.count // self.tag_every > self.tags and self.count > 1:
                n = self.tags
                self._tag(f"v1.{n}.0" if n % 3 else f"nightly-{n}", main.tip, annotated=n % 3 != 0)

            ahead_topics = [t for t in self.lanes if t is not None and t.ahead]
            if self.octopus_due and self.count >= self.octopus_due[0] and len(ahead_topics) >= 2:
                self.octopus_due.pop(0)
                self._merge_into_main(ahead_topics[:3], conflict=False)
                for t in ahead_topics[:3]:
                    self._finish_topic(t)
                continue

            ready = [t for t in ahead_topics if t.commits >= t.planned]
            if ready:
                topic = ready[0]
                conflict = left >= 3 and rng.random() < self.conflict_share
                self._merge_into_main([topic], conflict)
                self._finish_topic(topic)
                continue

            active = [
                self.branches[s.name] for s in LONG_LIVED
                if s.name in self.branches and progress < s.stops
            ]  # fmt: skip
            r = rng.random()
            mergeable = [
                b for b in active
                if b.ahead and next(s for s in LONG_LIVED if s.name == b.name).merges_into_main
            ]  # fmt: skip
            if r < 0.02 and mergeable:
                conflict = left >= 3 and rng.random() < self.conflict_share
                self._merge_into_main([rng.choice(mergeable)], conflict)
                continue
            if r < 0.03 and active:
                branch = rng.choice(active)
                if self.main_tip_at_base[branch.name] != main.tip:
                    self._sync_from_main(branch)
                    continue
            free = [i for i, t in enumerate(self.lanes) if t is None]
            if free and r < 0.35:
                self._start_topic(rng.choice(free))

            topics = [t for t in self.lanes if t is not None]
            pick = rng.random()
            if topics and pick < 0.45:
                branch = rng.choice(topics)
                author = branch.team[0]
                committer = GITHUB if author is BOT else None
                self._ordinary_commit(branch, author, committer)
            elif active and pick < 0.70:
                weights = [next(s.weight for s in LONG_LIVED if s.name == b.name) for b in active]
                branch = rng.choices(active, weights)[0]
                self._ordinary_commit(branch, rng.choice(branch.team))
            else:
                roll = rng.random()
                author = ALIAS if roll < 0.03 else rng.choice(main.team)
                committer = MAINTAINERS[1] if roll > 0.95 and author is not MAINTAINERS[1] else None
                self._ordinary_commit(main, author, committer)

    def _finish_topic(self, topic: _Branch) -> None:
        self.lanes[topic.lane] = None
        self.merged_topics.append(topic.name)

    def finish(self, keep_merged_topics: int = 6) -> None:
        """Delete merged topic branches (as a hosting service would), keeping a few."""
        doomed = (
            self.merged_topics[:-keep_merged_topics] if keep_merged_topics else self.merged_topics
        )
        for name in doomed:
            self.out.write(f"reset refs/heads/{name}\nfrom {ZERO_HASH}\n\n".encode())
            del self.branches[name]
        self.out.write(b"done\n")


def _git(path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, check=check)


def _git_env() -> dict[str, str]:
    """An environment where the user's git configuration cannot change the result."""
    env = dict(os.environ)
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


def _read_marks(path: Path) -> dict[int, str]:
    marks: dict[int, str] = {}
    with path.open() as f:
        for line in f:
            mark, sha = line.split()
            marks[int(mark[1:])] = sha
    return marks


def build_synthetic_repo(
    path: str | Path | None = None,
    commits: int = 50_000,
    seed: int = 1,
    conflict_share: float = 0.15,
) -> SyntheticRepo:
    """Generate the repository at ``path`` (a new temporary directory when None).

    ``path`` must not exist or be an empty directory. ``conflict_share`` is the
    probability that a merge into main is set up to conflict.
    """
    if commits < 1:
        raise ValueError(f"commits must be at least 1, got {commits}")
    started = time.perf_counter()
    repo = Path(tempfile.mkdtemp(prefix="symbiotic-synthetic-")) if path is None else Path(path)
    if repo.exists() and (not repo.is_dir() or any(repo.iterdir())):
        raise FileExistsError(f"{repo} exists and is not an empty directory")
    repo.mkdir(parents=True, exist_ok=True)
    env = _git_env()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    for key, value in (
        (CONFIG_MARKER, "true"),
        ("gc.auto", "0"),
        ("core.logAllRefUpdates", "true"),
    ):
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True, env=env)

    with tempfile.TemporaryDirectory(prefix="symbiotic-marks-") as scratch:
        marks_file = Path(scratch) / "marks"
        proc = subprocess.Popen(
            ["git", "-C", str(repo), "fast-import", "--quiet", "--done", "--active-branches=64",
             f"--export-marks={marks_file}"],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stderr is not None
        stream = _Stream(proc.stdin)
        gen = _Generator(stream, commits, seed, conflict_share)
        try:
            gen.run()
            gen.finish()
            stream.flush()
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise RuntimeError(f"git fast-import failed in {repo}: {err.strip()[:2000]}")
        marks = _read_marks(marks_file)

    # populate the work tree and leave a few branch switches in the reflog
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", "main"], check=True, env=env)
    for other in ("develop", "main"):
        if other in gen.branches:
            subprocess.run(["git", "-C", str(repo), "checkout", "-q", other], check=True, env=env)

    two_parent = len(gen.conflicting) + len(gen.clean)
    return SyntheticRepo(
        path=repo,
        commits=gen.count,
        merges=two_parent + len(gen.octopus),
        two_parent_merges=two_parent,
        octopus_merges=len(gen.octopus),
        conflicting_merges=len(gen.conflicting),
        clean_merges=len(gen.clean),
        tags=gen.tags,
        branches=len(gen.branches),
        files_at_head=len(gen.branches["main"].files),
        seed=seed,
        seconds=time.perf_counter() - started,
        conflicting_merge_hashes=[marks[m] for m in gen.conflicting],
        clean_merge_hashes=[marks[m] for m in gen.clean],
        octopus_merge_hashes=[marks[m] for m in gen.octopus],
    )


def append_commits(path: str | Path, count: int, branch: str = "main", seed: int = 2) -> str:
    """Add ``count`` ordinary commits on top of ``branch``; returns the new tip hash.

    Used to measure an incremental refresh. Refuses repositories this module
    did not generate, so that it never writes to somebody's real repository.
    """
    repo = Path(path)
    env = _git_env()
    marker = _git(repo, "config", "--get", CONFIG_MARKER, check=False).stdout.decode().strip()
    if marker != "true":
        raise ValueError(
            f"{repo} was not generated by benchmarks.synthetic_repo; not writing to it"
        )
    last = int(_git(repo, "log", "-1", "--format=%ct", branch).stdout.decode().strip())
    rng = random.Random(seed)
    parts: list[bytes] = []
    when = last
    for i in range(count):
        who = rng.choice(DEVELOPERS)
        when += rng.randint(60, 3600)
        content = f"increment {i} ({rng.getrandbits(64):x})\n".encode()
        parts.append(b"blob\nmark :%d\n" % (i + 1) + _data(content))
        head = (
            f"commit refs/heads/{branch}\nauthor {who.line(when)}\ncommitter {who.line(when)}\n"
        ).encode()
        msg = f"chore: incremental change {i}\n".encode()
        start = f"from refs/heads/{branch}^0\n".encode() if i == 0 else b""
        fmod = f"M 100644 :{i + 1} bench/incremental/part_{i % 10}.txt\n\n".encode()
        parts.append(head + _data(msg) + start + fmod)
    parts.append(b"done\n")
    subprocess.run(
        ["git", "-C", str(repo), "fast-import", "--quiet", "--done"],
        input=b"".join(parts), check=True, capture_output=True, env=env,
    )  # fmt: skip
    head_ref = _git(repo, "symbolic-ref", "-q", "HEAD", check=False).stdout.decode().strip()
    if head_ref == f"refs/heads/{branch}" and (repo / ".git").exists():
        _git(repo, "reset", "-q", "--hard", branch)
    return _git(repo, "rev-parse", branch).stdout.decode().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.synthetic_repo",
        description="Generate a synthetic git repository with known merge conflicts.",
    )
    parser.add_argument("path", nargs="?", help="new or empty directory (default: a temp dir)")
    parser.add_argument("--commits", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--conflict-share", type=float, default=0.15,
                        help="probability that a merge into main is set up to conflict")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    summary = build_synthetic_repo(args.path, args.commits, args.seed, args.conflict_share)
    if args.json:
        print(json.dumps(summary.counts(), indent=2))
    else:
        for key, value in summary.counts().items():
            print(f"{key:>20}: {value:.2f}" if isinstance(value, float) else f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
