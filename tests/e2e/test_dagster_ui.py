"""The Dagster UI in headless Chromium: the asset graph lists the platform's assets and a
materialization recorded by `symbiotic run` shows on the asset's page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gitrepo import build_standard_repo
from test_webserver import free_port

from symbiotic_assets.config import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the webserver exited early"
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.mark.slow
def test_asset_graph_and_materialization_in_chromium(tmp_path: Path):
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed; .ci/run installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    build_standard_repo(tmp_path / "alpha")
    (tmp_path / "symbiotic.yaml").write_text("repositories:\n  - path: alpha\n    name: alpha\n")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIOTIC_", "DAGSTER_"))}
    env.update(SYMBIOTIC_HOME=str(home), SYMBIOTIC_CONFIG=str(tmp_path / "symbiotic.yaml"))
    bin_dir = Path(sys.executable).parent
    run = subprocess.run(
        [str(bin_dir / "symbiotic"), "run", "--repository", "alpha"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert "alpha" in run.stdout, run.stdout + run.stderr

    env["DAGSTER_HOME"] = str(home / "dagster")
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-w", str(PROJECT_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/server_info", server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/assets", wait_until="domcontentloaded")
            # the asset catalog lists the platform's assets by key
            page.get_by_text("commits", exact=True).first.wait_for(timeout=90_000)
            for name in ("commits", "merges", "metrics", "ref_events"):
                assert page.get_by_text(name, exact=True).count() >= 1, name
            page.screenshot(path=str(tmp_path / "assets.png"), full_page=True)

            page.goto(f"{base}/asset-groups/git", wait_until="domcontentloaded")
            page.get_by_text("commit_files").first.wait_for(timeout=90_000)
            page.screenshot(path=str(tmp_path / "asset-graph.png"), full_page=True)

            # the materialization of git/commits for partition alpha shows on the asset page
            page.goto(f"{base}/assets/git/commits?view=events", wait_until="domcontentloaded")
            page.get_by_text("alpha").first.wait_for(timeout=90_000)
            page.screenshot(path=str(tmp_path / "materialization.png"), full_page=True)
            assert (
                page.get_by_text("new_commits").count() >= 1
                or page.get_by_text("Materialized").count() >= 1
            )
            browser.close()
        for shot in ("assets.png", "asset-graph.png", "materialization.png"):
            assert (tmp_path / shot).stat().st_size > 10_000
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
