"""One repository, reached through GitPython's command interface.

Every git call goes through :class:`git.Git` (``execute``), with our own
arguments only: user input never becomes a git option. Output is read as
bytes, so non-UTF-8 names and paths reach the parser intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

MIN_GIT_VERSION = (2, 38)  # merge-tree --write-tree
CHUNK_BYTES = 1 << 20
READ_AHEAD_CHUNKS = 64

_GIT_CONFIG = [
    "-c", "core.quotepath=off",
    "-c", "color.ui=never",
    "-c", "log.showSignature=false",
    "-c", "diff.renames=true",
    "-c", "log.mailmap=true",
    "-c", "core.pager=cat",
]  # fmt: skip


class RepositoryError(RuntimeError):
    """A repository cannot be read; the message names it and the cause."""

    def __init__(self, repository: str, cause: str):
        super().__init__(f"repository {repository!r}: {cause}")
        self.repository = repository
        self.cause = cause


@dataclass(frozen=True)
class Ref:
    ref_name: str
    short_name: str
    ref_type: str  # branch | remote_branch | tag
    tip_hash: str | None  # the commit it points to (annotated tags peeled); None for non-commits
    tip_committed_epoch: int | None
    symref: str | None


def _git_version() -> tuple[int, int]:
    out = git.Git().execute(["git", "version"])
    match = re.search(r"(\d+)\.(\d+)", str(out))
    if not match:
        raise RuntimeError(f"cannot read git version from {out!r}")
    return int(match.group(1)), int(match.group(2))


class GitRepository:
    """A validated local repository (work tree or bare)."""

    def __init__(self, name: str, path: Path, git_dir: Path, is_bare: bool):
        self.name = name
        self.path = path
        self.git_dir = git_dir
        self.is_bare = is_bare
        self._git = git.Git(str(path))
        self._git.update_environment(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, name: str, path: str | Path) -> GitRepository:
        raw = str(path)
        if raw.startswith("-") or "::" in raw or "://" in raw:
            raise RepositoryError(
                name, f"{raw!r} is not a local path (URLs and options are refused)"
            )
        p = Path(raw).expanduser()
        if not p.exists():
            raise RepositoryError(name, f"path {p} does not exist")
        if not p.is_dir():
            raise RepositoryError(name, f"path {p} is not a directory")
        version = _git_version()
        if version < MIN_GIT_VERSION:
            raise RepositoryError(
                name,
                f"git {version[0]}.{version[1]} is too old; merge-tree --write-tree needs 2.38+",
            )
        probe = git.Git(str(p))
        try:
            out = probe.execute(
                [
                    "git",
                    "rev-parse",
                    "--path-format=absolute",
                    "--git-dir",
                    "--is-bare-repository",
                    "--show-toplevel",
                ],
                with_extended_output=False,
            )
        except git.GitCommandError as exc:
            # --show-toplevel fails in a bare repository; try again without it
            try:
                out = probe.execute(
                    [
                        "git",
                        "rev-parse",
                        "--path-format=absolute",
                        "--git-dir",
                        "--is-bare-repository",
                    ]
                )
            except git.GitCommandError:
                stderr = (exc.stderr or "").strip().replace("\n", " ")
                if "dubious ownership" in stderr:
                    raise RepositoryError(
                        name, f"git refuses {p}: dubious ownership (see git config safe.directory)"
                    ) from None
                raise RepositoryError(name, f"{p} is not a git repository") from None
        lines = str(out).splitlines()
        git_dir = Path(lines[0])
        is_bare = lines[1].strip() == "true"
        if not is_bare and len(lines) > 2:
            top = Path(lines[2]).resolve()
            if top != p.resolve():
                raise RepositoryError(
                    name,
                    f"{p} is inside the repository at {top}, not its top level; configure {top}",
                )
        return cls(name, p.resolve(), git_dir, is_bare)

    # -- running git ---------------------------------------------------------------------
    def run(
        self, args: Sequence[str], *, ok_codes: Sequence[int] = (0,)
    ) -> tuple[int, bytes, bytes]:
        """Run a git command to completion, returning (status, stdout, stderr) as bytes."""
        status, out, err = self._git.execute(
            ["git", *_GIT_CONFIG, *args],
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
        )
        if status not in ok_codes:
            raise RepositoryError(
                self.name,
                f"git {' '.join(args[:3])} failed with status {status}: {_text(err).strip()[:500]}",
            )
        return status, bytes(out), err if isinstance(err, bytes) else str(err).encode()

    def text(self, args: Sequence[str]) -> str:
        return _text(self.run(args)[1])

    def stream(
        self, args: Sequence[str], stdin_lines: Sequence[str] | None = None
    ) -> Iterator[bytes]:
        """Stream a command's stdout in chunks; raise with its stderr if it fails.

        Revisions go through a temporary file on stdin (``--stdin``), so thousands of
        tips never hit the command-line length limit.
        """
        with contextlib.ExitStack() as stack:
            stdin: Any = subprocess.DEVNULL
            if stdin_lines is not None:
                stdin = stack.enter_context(tempfile.TemporaryFile())
                stdin.write(("\n".join(stdin_lines) + "\n").encode())
                stdin.seek(0)
            proc = self._git.execute(
                ["git", *_GIT_CONFIG, *args],
                as_process=True,
                istream=stdin,
                stdout_as_string=False,
            )
            popen = proc.proc
            assert popen is not None and popen.stdout is not None and popen.stderr is not None
            # GitPython leaves stderr as a pipe; drain it in the background so a
            # chatty git never blocks on a full pipe while we read stdout.
            err_chunks: list[bytes] = []
            stderr = popen.stderr
            drain = threading.Thread(target=lambda: err_chunks.extend(stderr), daemon=True)
            drain.start()
            # A reader thread keeps git's pipe empty while the consumer parses, so git
            # never waits for Python (the pipe holds only 64 KiB otherwise). The queue
            # is bounded: at most READ_AHEAD_CHUNKS chunks are held in memory.
            _widen_pipe(popen.stdout)
            chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=READ_AHEAD_CHUNKS)
            stop = threading.Event()
            stdout = popen.stdout
            read = getattr(stdout, "read1", stdout.read)

            def pump() -> None:
                try:
                    while not stop.is_set():
                        data = read(CHUNK_BYTES)
                        if not data:
                            break
                        chunks.put(data)
                finally:
                    chunks.put(None)

            reader = threading.Thread(target=pump, daemon=True, name="git-pipe-reader")
            reader.start()
            try:
                while (chunk := chunks.get()) is not None:
                    yield chunk
            except GeneratorExit:
                stop.set()
                popen.kill()
                while chunks.get() is not None:  # unblock the reader
                    pass
                popen.wait()
                raise
            reader.join()
            status = popen.wait()
            drain.join(timeout=5)
            if status != 0:
                raise RepositoryError(
                    self.name,
                    f"git {' '.join(args[:2])} failed with status {status}: "
                    f"{_text(b''.join(err_chunks)).strip()[:500]}",
                )

    # -- facts about the repository ----------------------------------------------------------
    def is_shallow(self) -> bool:
        return self.text(["rev-parse", "--is-shallow-repository"]).strip() == "true"

    def head(self) -> tuple[str | None, str | None]:
        """(symbolic ref of HEAD or None when detached, commit hash or None when unborn)."""
        status, out, _ = self.run(["symbolic-ref", "-q", "HEAD"], ok_codes=(0, 1))
        symbolic = _text(out).strip() if status == 0 else None
        status, out, _ = self.run(["rev-parse", "-q", "--verify", "HEAD^{commit}"], ok_codes=(0, 1))
        head_hash = _text(out).strip() if status == 0 else None
        return symbolic, head_hash

    def refs(self) -> list[Ref]:
        fmt = "%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)%00%(committerdate:unix)%00%(*committerdate:unix)%00%(symref)"
        out = self.run(
            ["for-each-ref", f"--format={fmt}", "refs/heads", "refs/remotes", "refs/tags"]
        )[1]
        refs: list[Ref] = []
        for line in out.splitlines():
            if not line:
                continue
            parts = [_text(x) for x in line.split(b"\0")]
            ref_name, otype, oname, ptype, pname, cdate, pdate, symref = parts
            if ref_name.startswith("refs/heads/"):
                rtype, short = "branch", ref_name[len("refs/heads/") :]
            elif ref_name.startswith("refs/remotes/"):
                rtype, short = "remote_branch", ref_name[len("refs/remotes/") :]
            else:
                rtype, short = "tag", ref_name[len("refs/tags/") :]
            tip: str | None = None
            tip_epoch: int | None = None
            if otype == "commit":
                tip, tip_epoch = oname, int(cdate) if cdate else None
            elif otype == "tag" and ptype == "commit":
                tip, tip_epoch = pname, int(pdate) if pdate else None
            refs.append(Ref(ref_name, short, rtype, tip, tip_epoch, symref or None))
        return refs

    def merged_into(self, target: str) -> set[str]:
        out = self.text(["for-each-ref", f"--merged={target}", "--format=%(refname)",
                         "refs/heads", "refs/remotes", "refs/tags"])  # fmt: skip
        return {line for line in out.splitlines() if line}

    def existing_commits(self, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` are commits present in the object database."""
        if not hashes:
            return set()
        proc = subprocess.run(
            ["git", "-C", str(self.path), "cat-file", "--batch-check=%(objectname) %(objecttype)"],
            input=("\n".join(hashes) + "\n").encode(),
            capture_output=True,
            check=False,
        )
        present = set()
        for line in proc.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == "commit":
                present.add(parts[0])
        return present

    def objects_dir(self) -> Path:
        return Path(
            self.text(["rev-parse", "--path-format=absolute", "--git-path", "objects"]).strip()
        )

    def reflog_files(self) -> list[tuple[str, Path]]:
        """(ref name, log file) for HEAD and every ref with a reflog."""
        logs = self.git_dir / "logs"
        if not logs.is_dir():
            return []
        files: list[tuple[str, Path]] = []
        head = logs / "HEAD"
        if head.is_file():
            files.append(("HEAD", head))
        refs_dir = logs / "refs"
        if refs_dir.is_dir():
            for f in sorted(refs_dir.rglob("*")):
                if f.is_file():
                    files.append((f.relative_to(logs).as_posix(), f))
        return files

    def reflog_signature(self, files: Sequence[tuple[str, Path]] | None = None) -> str:
        """Changes whenever any reflog file changes (size and mtime).

        ``files`` is the list ``reflog_files()`` returned, when the caller has it already.
        """
        h = hashlib.sha1()
        for ref_name, f in self.reflog_files() if files is None else files:
            st = f.stat()
            h.update(f"{ref_name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def _widen_pipe(stream: Any) -> None:
    """Ask Linux for a 1 MiB pipe buffer (default 64 KiB); harmless where unsupported."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ValueError, AttributeError, ImportError):
        pass


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def git_env_isolated_objects(objects_dir: Path, scratch: Path) -> dict[str, str]:
    """Environment that makes git write new objects to ``scratch`` and read the real ones.

    ``merge-tree --write-tree`` stores the trees it builds; pointing the object
    directory at a scratch folder with the repository's own objects as an
    alternate keeps the user's repository untouched.
    """
    env = dict(os.environ)
    env["GIT_OBJECT_DIRECTORY"] = str(scratch)
    env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str(objects_dir)
    return env
