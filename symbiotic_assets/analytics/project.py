"""Where the dbt project lives and how its manifest is prepared.

The manifest (``dbt_models/target/manifest.json``) is prepared explicitly, by
``make dbt-manifest`` or a test fixture calling :func:`prepare_dbt_manifest`; never as a
side effect of importing. Building the Dagster definitions prepares it once if it is
missing (that process needs it), so ``dagster dev`` works on a fresh clone.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from symbiotic_assets.core.config import PROJECT_ROOT, load_settings, warehouse_for_subprocesses

if TYPE_CHECKING:
    from dagster_dbt import DbtProject

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_models"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_executable() -> str:
    """The dbt next to this interpreter (the virtualenv's), else whatever is on PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


@contextmanager
def warehouse_env(warehouse: str) -> Iterator[str]:
    """SYMBIOTIC_WAREHOUSE set (absolute) for the dbt processes started inside, then restored.

    dbt's profile reads the variable, and dagster-dbt hands a dbt process this process's
    environment; the asset passes its ``warehouse`` resource's database, so dbt builds
    the warehouse Dagster was configured with. Leaving the variable set afterwards would
    make it override the settings of every later run in the same process.
    """
    database = warehouse
    if not database.startswith("md:"):
        database = str(Path(database).expanduser().resolve())
    with warehouse_for_subprocesses(database):
        yield database


@cache
def dbt_project() -> DbtProject:
    from dagster_dbt import DbtProject

    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def prepare_dbt_manifest(warehouse: str | None = None) -> Path:
    """Run ``dbt parse`` and return the manifest's path.

    An exclusive file lock makes concurrent callers (pytest-xdist workers, two code
    servers) parse one at a time instead of writing the same target directory at once.
    ``warehouse`` defaults to the configured one: this runs outside Dagster (``make
    dbt-manifest``, building the definitions), where no resource is at hand.
    """
    from dagster_dbt import DbtCliResource

    project = dbt_project()
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = project.manifest_path.parent / ".prepare.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with warehouse_env(warehouse or load_settings().warehouse):
                DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
                    ["parse", "--quiet"], target_path=project.target_path
                ).wait()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"dbt parse in {DBT_PROJECT_DIR} did not write {project.manifest_path}; "
            "run `dbt parse` there by hand to see why"
        )
    return project.manifest_path


def ensure_dbt_manifest() -> Path:
    """The manifest's path, preparing it first when it has never been prepared."""
    if MANIFEST_PATH.exists():
        return MANIFEST_PATH
    return prepare_dbt_manifest()


if __name__ == "__main__":
    print(prepare_dbt_manifest())
