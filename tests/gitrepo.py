"""Build real git repositories for tests, with git itself, fixed dates and identities.

``GitRepoBuilder`` runs git with an isolated configuration (no user or system
config), so what a test asserts does not depend on the machine it runs on.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitRepoBuilder:
    def __init__(self, path: Path, *, branch: str = "main", bare: bool = False):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        home = path.parent / f".{path.name}-home"
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
            "LC_ALL": "C",
            "TZ": "UTC",
        }
        (home / "gitconfig").write_text(
            "[user]\n\tname = Fixture Default\n\temail = default@example.com\n"
            "[core]\n\tlogAllRefUpdates = true\n[advice]\n\tdetachedHead = false\n"
        )
        args = ["init", "-q", f"--initial-branch={branch}"]
        if bare:
            args.append("--bare")
        self.git(*args)

    def git(self, *args: str, date: str | None = None, who: tuple[str, str] | None = None,
            check: bool = True, input: bytes | None = None) -> str:  # fmt: skip
        env = dict(self.env)
        if date:
            env["GIT_AUTHOR_DATE"] = date
            env["GIT_COMMITTER_DATE"] = date
        if who:
            env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = who[0]
            env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = who[1]
        proc = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, input=input, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode("utf-8", errors="replace")

    def write(self, rel: str, content: str | bytes) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    def commit(self, message: str, date: str, who: tuple[str, str], files: dict[str, str | bytes] | None = None) -> str:  # fmt: skip
        for rel, content in (files or {}).items():
            self.write(rel, content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message, date=date, who=who)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def checkout(self, *args: str, date: str = "2024-01-01T00:00:00+0000") -> None:
        # the reflog takes the committer identity and date of the moment
        self.git("checkout", "-q", *args, date=date, who=("Fixture Default", "default@example.com"))

    def merge(self, branch: str, message: str, date: str, who: tuple[str, str]) -> bool:
        """Merge with --no-ff; on conflict resolve by taking ours, and report whether it conflicted."""
        out = self.git(
            "merge", "--no-ff", "-q", "-m", message, branch, date=date, who=who, check=False
        )
        status = self.git("status", "--porcelain")
        conflicted = any(line[:2] in ("UU", "AA", "DU", "UD") for line in status.splitlines())
        if conflicted:
            self.git("checkout", "--ours", ".")
            self.git("add", "-A")
            self.git("commit", "-q", "--no-edit", "-m", message, date=date, who=who)
        elif "Already up to date" in out:
            raise RuntimeError("nothing to merge")
        return conflicted


ALICE = ("Alice Example", "alice@example.com")
BOB = ("Bob Example", "bob@example.com")
CAROL = ("Carol Example", "carol@example.com")
BOT = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")


def build_standard_repo(path: Path) -> dict:
    """A small history whose every figure is known by construction.

    - 7 non-merge commits + 2 merges on main (one clean, one conflicting), 1 bot commit.
    - authors in -0500 (Alice), +0530 (Bob), +0000 (Carol / bot).
    - a rename, a binary file, an unmerged branch, a tag.
    - branch switches in the reflog: main->feature, feature->main, main->topic, topic->main,
      plus a no-op checkout main->main that must not count.
    """
    b = GitRepoBuilder(path)
    c1 = b.commit("Initial commit", "2024-03-01T09:00:00-0500", ALICE,
                  {"README.md": "hello\n", "src/app.py": "a = 1\nb = 2\nc = 3\n"})  # fmt: skip
    b.git("branch", "feature")
    b.checkout("feature", date="2024-03-01T23:30:00-0500")  # 2024-03-02 04:30 UTC
    c2 = b.commit("Add retry backoff", "2024-03-02T10:00:00+0530", BOB,
                  {"src/retry.py": "def backoff(n):\n    return 2 ** n\n"})  # fmt: skip
    b.checkout("main", date="2024-03-02T05:00:00+0000")
    c3 = b.commit("Rename app module", "2024-03-02T12:00:00+0000", CAROL)
    b.git("mv", "src/app.py", "src/application.py")
    b.git("commit", "-q", "--amend", "--no-edit", date="2024-03-02T12:00:00+0000", who=CAROL)
    c3 = b.head()
    m1_clean = b.merge("feature", "Merge branch 'feature'", "2024-03-02T13:00:00+0000", CAROL)
    m1 = b.head()
    b.git("branch", "topic")
    b.checkout("topic", date="2024-03-03T08:00:00+0000")
    c4 = b.commit("Change a on topic", "2024-03-03T09:00:00-0500", ALICE,
                  {"src/application.py": "a = 100\nb = 2\nc = 3\n"})  # fmt: skip
    b.checkout("main", date="2024-03-03T15:00:00+0000")
    b.checkout("main", date="2024-03-03T15:00:01+0000")  # main -> main: not a switch
    c5 = b.commit("Change a on main", "2024-03-03T16:00:00+0000", CAROL,
                  {"src/application.py": "a = 200\nb = 2\nc = 3\n"})  # fmt: skip
    m2_conflict = b.merge("topic", "Merge branch 'topic'", "2024-03-04T10:00:00+0000", CAROL)
    m2 = b.head()
    c6 = b.commit("Add logo", "2024-03-04T11:00:00+0000", BOB,
                  {"assets/logo.png": bytes(range(256)) * 4})  # fmt: skip
    c7 = b.commit("Bump dependency", "2024-03-05T01:00:00+0000", BOT,
                  {"requirements.txt": "requests==2.31.0\n"})  # fmt: skip
    b.git("tag", "-a", "v1.0", "-m", "release 1.0", date="2024-03-05T02:00:00+0000", who=CAROL)
    b.git("branch", "stale-idea", c1)
    b.checkout("stale-idea", date="2024-03-05T03:00:00+0000")
    c8 = b.commit("Unmerged experiment", "2024-03-05T04:00:00+0000", ALICE, {"idea.txt": "maybe\n"})
    b.checkout("main", date="2024-03-05T05:00:00+0000")
    assert m1_clean is False and m2_conflict is True
    return {
        "builder": b,
        "commits": {
            "c1": c1,
            "c2": c2,
            "c3": c3,
            "c4": c4,
            "c5": c5,
            "c6": c6,
            "c7": c7,
            "c8": c8,
            "m1": m1,
            "m2": m2,
        },  # fmt: skip
    }
