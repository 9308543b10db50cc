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

from symbiotic_assets.core.config import PROJECT_ROOT

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


def _skip_community_dialog(page) -> None:
    """Dagster shows a one-time community dialog over the page; dismiss it if present."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


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
            # the catalog lists the platform's assets by key ("git / commits"); the list is
            # virtualized, so filter it to the git group for every row to render
            page.goto(
                f"{base}/assets?asset-selection=key:%22git/*%22", wait_until="domcontentloaded"
            )
            try:
                page.get_by_text("git / commits").first.wait_for(timeout=120_000)
            except Exception as exc:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise AssertionError(
                    f"catalog did not list git / commits: {page.inner_text('body')[:2000]}"
                ) from exc
            _skip_community_dialog(page)
            for key in (
                "git / merges",
                "git / ref_events",
                "git / refs",
            ):
                assert page.get_by_text(key).count() >= 1, key
            page.screenshot(path=str(tmp_path / "assets.png"), full_page=True)

            # the lineage graph shows every domain's group
            page.goto(f"{base}/asset-groups/git", wait_until="domcontentloaded")
            page.get_by_text("serving").first.wait_for(timeout=90_000)
            _skip_community_dialog(page)
            body = page.inner_text("body")
            for group in ("git", "memory", "search", "analytics", "serving"):
                assert group in body, group
            page.screenshot(path=str(tmp_path / "asset-graph.png"), full_page=True)

            # the materialization of git/commits for partition alpha shows on the asset page
            page.goto(f"{base}/assets/git/commits?view=events", wait_until="domcontentloaded")
            page.get_by_text("Partition alpha materialized").first.wait_for(timeout=90_000)
            _skip_community_dialog(page)
            assert page.get_by_text("new_commits").count() >= 1
            page.screenshot(path=str(tmp_path / "materialization.png"), full_page=True)
            browser.close()
        for shot in ("assets.png", "asset-graph.png", "materialization.png"):
            assert (tmp_path / shot).stat().st_size > 10_000
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
