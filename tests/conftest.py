from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Tests never touch a developer's own Symbiotic home or configuration.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The CLI's rich consoles fix their width when their module is imported, from COLUMNS or
# 80; under xdist tmp paths are long enough to fold table cells. Tests read whole lines.
os.environ["COLUMNS"] = "400"


@pytest.fixture
def symbiotic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SYMBIOTIC_HOME", str(home))
    monkeypatch.delenv("SYMBIOTIC_CONFIG", raising=False)
    monkeypatch.delenv("SYMBIOTIC_WAREHOUSE", raising=False)
    monkeypatch.delenv("SYMBIOTIC_REPOSITORIES", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return home
