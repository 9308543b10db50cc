"""One repository, read with git in a hardened environment: nothing it configures runs.

Teams register clones they did not create, so a repository is untrusted input. Its
``.git/config`` and attribute files can name programs (merge drivers, clean/smudge
filters, textconv, external diff, fsmonitor, hooks, pagers, ssh commands, credential
helpers, promisor remotes fetched lazily); git runs them when the command at hand needs
them. Every git call here therefore runs with:

- an environment built from nothing (``git_environment``): no system or global config,
  no system attributes, no pager, no prompts, every transport refused
  (``GIT_ALLOW_PROTOCOL`` empty, which beats ``protocol.*.allow`` in the repository),
  no lazy fetch;
- ``-c`` overrides (``HARDENING``) for the repository's own keys that could name a
  program: ``-c`` outranks the repository's config;
- ``--no-ext-diff --no-textconv`` on every ``log``/``diff``/``show``.

Merge drivers and filters are selected by attributes and defined by config keys with
names of the repository's choosing, so no override can list them all; re-merges run in
a scratch repository instead (``scratch_repository``). Output is read as bytes, so
non-UTF-8 names and paths reach the parser intact, and user input never becomes a git
option.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

MIN_GIT_VERSION = (2, 38)  # merge-tree --write-tree
STDIN_MERGE_VERSION = (2, 42)  # merge-tree --stdin with --write-tree output
CHUNK_BYTES = 1 << 20
READ_AHEAD_CHUNKS = 64

# What we want from git's output, not a defence.
_OUTPUT_CONFIG = [
    "-c", "core.quotepath=off",
    "-c", "color.ui=never",
    "-c", "log.showSignature=false",  # also a defence: showing signatures runs gpg.program
    "-c", "diff.renames=true",
    "-c", "log.mailmap=true",
]  # fmt: skip

# Repository config keys that name a program git could run, each set to something inert.
# ``-c`` outranks the repository's own config; tests/integration/test_git_trust.py arms
# each key in a repository and checks nothing runs.
HARDENING = [
    "-c", "core.fsmonitor=false",
    "-c", f"core.hooksPath={os.devnull}",
    "-c", f"core.attributesFile={os.devnull}",
    "-c", "core.pager=cat",
    "-c", "core.askPass=false",
    "-c", "core.sshCommand=false",
    "-c", "core.gitProxy=false",
    "-c", "credential.helper=",
    "-c", "protocol.allow=never",
    "-c", "gpg.program=false",
    "-c", "gpg.ssh.program=false",
    "-c", "gpg.x509.program=false",
    "-c", "merge.renormalize=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "diff.submodule=short",
    "-c", "submodule.recurse=false",
]  # fmt: skip

# Subcommands that can print diffs: external diff and textconv are switched off outright.
_DIFF_COMMANDS = frozenset({"log", "diff", "show", "whatchanged"})

_GIT_CONFIG = _OUTPUT_CONFIG + HARDENING


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


@lru_cache(maxsize=1)
def _private_home() -> Path:
    """An empty folder of our own, standing in for HOME and holding our global config.

    git reads per-user files under HOME (``~/.config/git/attributes`` among them); an
    empty folder means there are none. Removed when the process exits.
    """
    home = Path(tempfile.mkdtemp(prefix="symbiotic-git-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


@lru_cache(maxsize=1)
def _global_config() -> str:
    """The only global config git sees: the operator's ``safe.directory`` entries, if any.

    ``safe.directory`` is honoured only in system or global config, so ignoring those
    outright would refuse every repository owned by another user even where the operator
    allowed it. Nothing else is carried over: reading the operator's files is harmless
    (``git config`` outside a repository runs nothing), but what they set would change
    what we read from one machine to the next.
    """
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
    for key in ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
                "GIT_CONFIG_NOSYSTEM"):  # fmt: skip
        if key in os.environ:
            env[key] = os.environ[key]
    out = b""
    for scope in ("--system", "--global"):  # never a repository's own config
        out += subprocess.run(
            ["git", "config", scope, "--includes", "--get-all", "safe.directory"],
            cwd=os.path.abspath(os.sep),
            env=env,
            capture_output=True,
            check=False,
        ).stdout
    entries: list[str] = []
    for line in out.decode(errors="replace").splitlines():
        if line:
            entries.append(line)
        else:  # an empty value resets the list, as git reads it
            entries.clear()
    if not entries:
        return os.devnull
    target = _private_home() / "gitconfig"
    lines = ["[safe]"] + [f"\tdirectory = {_quote_config(e)}" for e in entries]
    target.write_text("\n".join(lines) + "\n")
    return str(target)


def _quote_config(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def git_environment(**extra: str) -> dict[str, str]:
    """The whole environment of every git process we start (nothing inherited but PATH).

    Why each entry: no system/global config or system attributes (only what we pass with
    ``-c`` applies on top of the repository's own config); transports all refused, since
    ``GIT_ALLOW_PROTOCOL`` (set, empty) overrides every ``protocol.*.allow`` a repository
    may set, and a partial clone's promisor remote would otherwise be fetched, through
    any transport it names, as soon as an object is missing; prompts, askpass, ssh and
    pager commands replaced by ``false``/``cat``; optional locks off, so reading never
    writes the index.
    """
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LC_ALL": "C",
        "LANGUAGE": "C",
        "TZ": "UTC",
        "HOME": str(_private_home()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": _global_config(),
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_ALLOW_PROTOCOL": "",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_NO_LAZY_FETCH": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "false",
        "SSH_ASKPASS": "false",
        "GIT_SSH_COMMAND": "false",
        "GIT_PAGER": "cat",
        "PAGER": "cat",
        "GIT_EDITOR": "false",
        "GIT_OPTIONAL_LOCKS": "0",
    }
    env.update(extra)
    return env


def git_command(args: Sequence[str]) -> list[str]:
    """``git`` with the hardening options, then ``args``.

    Diff-printing commands get ``--no-ext-diff --no-textconv`` after every option of
    ours (before a ``--``, if any), so that no earlier flag can switch them back on.
    """
    args = list(args)
    if args and args[0] in _DIFF_COMMANDS:
        end = args.index("--") if "--" in args else len(args)
        args[end:end] = ["--no-ext-diff", "--no-textconv"]
    return ["git", "--no-pager", *_GIT_CONFIG, *args]


@lru_cache(maxsize=8)
def git_version(executable: str = "git") -> tuple[int, int]:
    """(major, minor) of ``executable`` (the git on PATH by default)."""
    try:
        proc = subprocess.run(
            [executable, "version"], env=git_environment(), capture_output=True, check=False
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run git {executable!r}: {exc}") from None
    out = proc.stdout.decode(errors="replace")
    match = re.search(r"git version (\d+)\.(\d+)", out)
    if proc.returncode != 0 or not match:
        raise RuntimeError(
            f"cannot read the git version of {executable!r} from {out!r} (status {proc.returncode})"
        )
    return int(match.group(1)), int(match.group(2))


def _run_git(
    cwd: Path, args: Sequence[str], stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        git_command(args),
        cwd=str(cwd),
        env=env or git_environment(),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )


class GitRepository:
    """A validated local repository (work tree or bare)."""

    def __init__(self, name: str, path: Path, git_dir: Path, is_bare: bool):
        self.name = name
        self.path = path
        self.git_dir = git_dir
        self.is_bare = is_bare
        self.env = git_environment()

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
        version = git_version()
        if version < MIN_GIT_VERSION:
            raise RepositoryError(
                name,
                f"git {version[0]}.{version[1]} is too old; merge-tree --write-tree needs 2.38+",
            )
        probe = ["rev-parse", "--path-format=absolute", "--git-dir", "--is-bare-repository"]
        proc = _run_git(p, [*probe, "--show-toplevel"])
        if proc.returncode != 0:
            # --show-toplevel fails in a bare repository; try again without it
            first_error = proc.stderr.decode(errors="replace").strip().replace("\n", " ")
            proc = _run_git(p, probe)
            if proc.returncode != 0:
                if "dubious ownership" in first_error:
                    raise RepositoryError(
                        name, f"git refuses {p}: dubious ownership (see git config safe.directory)"
                    ) from None
                raise RepositoryError(name, f"{p} is not a git repository") from None
        lines = _text(proc.stdout).splitlines()
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
        self, args: Sequence[str], *, ok_codes: Sequence[int] = (0,), stdin: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        """Run a git command to completion, returning (status, stdout, stderr) as bytes."""
        proc = _run_git(self.path, args, stdin=stdin, env=self.env)
        if proc.returncode not in ok_codes:
            raise RepositoryError(
                self.name,
                f"git {' '.join(args[:3])} failed with status {proc.returncode}: "
                f"{_text(proc.stderr).strip()[:500]}",
            )
        return proc.returncode, proc.stdout, proc.stderr

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
            popen = subprocess.Popen(
                git_command(args),
                cwd=str(self.path),
                env=self.env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
            )
            assert popen.stdout is not None and popen.stderr is not None
            # drain stderr in the background so a chatty git never blocks on a full pipe
            # while we read stdout.
            err_chunks: list[bytes] = []
            stderr: IO[bytes] = popen.stderr
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
            stdout.close()
            stderr.close()
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
        out = self.run(
            ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
            stdin=("\n".join(hashes) + "\n").encode(),
        )[1]
        present = set()
        for line in out.decode().splitlines():
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


@contextlib.contextmanager
def scratch_repository(repo: GitRepository) -> Iterator[Path]:
    """A throw-away bare repository that reads ``repo``'s objects and nothing else of it.

    Why: a merge runs the merge driver and, with ``merge.renormalize``, the clean filter
    that the repository's attributes select and its config defines, under names of its
    choosing. Here the config is ours (written by ``git init`` with no templates: no
    hooks, no drivers, no filters), there is no work tree and no ``info/attributes``, so
    no attribute selects anything. The objects come through ``objects/info/alternates``;
    the trees a merge writes land in the scratch folder, so ``repo`` is never written.
    A shallow clone's ``shallow`` file is copied, so its cut-off parents read as cut off.
    """
    fmt = repo.text(["rev-parse", "--show-object-format"]).strip() or "sha1"
    objects = repo.objects_dir()
    with tempfile.TemporaryDirectory(prefix="symbiotic-merge-") as tmp:
        scratch = Path(tmp) / "scratch.git"
        proc = _run_git(
            Path(tmp),
            ["init", "--quiet", "--bare", "--template=", f"--object-format={fmt}", str(scratch)],
        )
        if proc.returncode != 0:
            raise RepositoryError(
                repo.name, f"cannot create a scratch repository: {_text(proc.stderr).strip()}"
            )
        info = scratch / "objects" / "info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "alternates").write_text(f"{objects}\n")
        shallow = Path(
            repo.text(["rev-parse", "--path-format=absolute", "--git-path", "shallow"]).strip()
        )
        if shallow.is_file():
            shutil.copyfile(shallow, scratch / "shallow")
        yield scratch
