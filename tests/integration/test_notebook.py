"""The analytics notebook runs top to bottom on a published snapshot and draws its plots.

Executed with nbclient in a kernel that is this interpreter (a kernelspec written to a
temporary directory: no user- or system-wide Jupyter installation is needed or touched),
with SYMBIOTIC_HOME pointing at a snapshot built from the fixture repositories and events.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from analytics_repos import PublishedFixture, build_published_fixture

pytestmark = pytest.mark.slow
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "symbiotic_analytics.ipynb"
KERNEL = "symbiotic-notebook-test"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> PublishedFixture:
    return build_published_fixture(tmp_path_factory.mktemp("notebook"))


def run_notebook(nb: nbformat.NotebookNode, home: Path, workdir: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    kernels = workdir / "kernels"
    (kernels / KERNEL).mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Symbiotic test kernel",
        "language": "python",
        "env": {"SYMBIOTIC_HOME": str(home), "MPLBACKEND": "Agg"},
    }
    (kernels / KERNEL / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": str(workdir)}})
    client.execute()


def test_notebook_executes_and_plots(published: PublishedFixture, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    run_notebook(nb, published.home, tmp_path)  # raises CellExecutionError on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # velocity, health, strategies, calibration
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert str(published.snapshot.resolve()) in text  # read the snapshot SYMBIOTIC_HOME names
    assert "SecurityAgent:security_fix" in text and "RefactoringAgent:refactor" in text
    assert "s-alpha-1" in text  # the sessions table


def test_notebook_names_the_missing_snapshot(tmp_path: Path) -> None:
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.raises(CellExecutionError, match="no published snapshot"):
        run_notebook(nb, tmp_path / "empty-home", tmp_path)
