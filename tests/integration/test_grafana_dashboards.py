"""Every dashboard: structure checked, every panel's SQL run against a published snapshot.

Macros are expanded the way the DuckDB plugin does (Grafana's default SQL macros):
``$__timeFilter(col)`` -> ``col >= '<from>' AND col <= '<to>'`` in RFC 3339 UTC, and
``${repository:singlequote}`` -> the selected repositories quoted and comma-separated.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from analytics_repos import PublishedFixture, build_published_fixture

pytestmark = pytest.mark.slow
GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
TIME_FROM = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TIME_TO = dt.datetime(2024, 4, 30, 23, 59, 59, tzinfo=dt.UTC)
NUMERIC = ("INTEGER", "BIGINT", "HUGEINT", "DOUBLE", "FLOAT", "DECIMAL", "SMALLINT", "TINYINT")


def provisioned_datasource() -> dict:
    data = yaml.safe_load((GRAFANA / "provisioning/datasources/duckdb.yaml").read_text())
    (ds,) = data["datasources"]
    return ds


def expand(sql: str, variables: dict[str, list[str]], start: dt.datetime, end: dt.datetime) -> str:
    def rfc3339(t: dt.datetime) -> str:
        return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1].strip()} >= '{rfc3339(start)}' AND {m[1].strip()} <= '{rfc3339(end)}'",
        sql,
    )
    for name, values in variables.items():
        quoted = ",".join("'" + v.replace("'", "''") + "'" for v in values)
        sql = sql.replace(f"${{{name}:singlequote}}", quoted)
        sql = re.sub(rf"\$\{{{name}\}}|\${name}\b", quoted, sql)
    assert "$" not in sql, f"unexpanded macro or variable left in: {sql}"
    return sql


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> PublishedFixture:
    return build_published_fixture(tmp_path_factory.mktemp("grafana"))


def test_generator_output_is_committed(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", GRAFANA / "build_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_dashboards"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("build_dashboards", None)
    fresh = module.write_dashboards(tmp_path)
    assert {p.name for p in fresh} == {p.name for p in DASHBOARDS}
    for path in fresh:
        assert path.read_text() == (GRAFANA / "dashboards" / path.name).read_text(), (
            f"{path.name} is stale: run python grafana/build_dashboards.py"
        )
    assert "Symbiotic-Ecosystem.json" in {p.name for p in DASHBOARDS}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    ds = provisioned_datasource()
    assert ds["type"] == "motherduck-duckdb-datasource"
    assert ds["jsonData"]["path"].endswith("/warehouse.duckdb")
    assert board["uid"] and board["title"] and board["time"]["from"].startswith("now-")
    names = [v["name"] for v in board["templating"]["list"]]
    assert "repository" in names
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] == ds["uid"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, f"panel {panel['title']!r} is wider than the grid"
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["datasource"]["uid"] == ds["uid"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == ds["uid"]
            if panel["type"] == "timeseries":
                assert "$__timeFilter(" in target["rawSql"], panel["title"]


def run_panels(path: Path, snapshot: Path, repositories: list[str]) -> dict[str, tuple]:
    board = json.loads(path.read_text())
    out = {}
    con = duckdb.connect(str(snapshot), read_only=True)  # what the plugin does: open the file
    try:
        for panel in board["panels"]:
            for target in panel["targets"]:
                sql = expand(target["rawSql"], {"repository": repositories}, TIME_FROM, TIME_TO)
                cur = con.execute(sql)
                types = [str(d[1]) for d in cur.description]
                names = [d[0] for d in cur.description]
                out[panel["title"]] = (panel["type"], names, types, cur.fetchall())
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                values = [r[0] for r in con.execute(var["query"]).fetchall()]
                out[f"variable:{var['name']}"] = ("variable", ["value"], ["VARCHAR"], values)
    finally:
        con.close()
    return out


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_query_runs_on_the_snapshot(path: Path, published: PublishedFixture) -> None:
    results = run_panels(path, published.snapshot, ["alpha", "beta"])
    assert results["variable:repository"][3] == ["alpha", "beta"]
    for title, (kind, names, types, rows) in results.items():
        assert rows, f"panel {title!r} returned no rows"
        if kind == "timeseries":
            assert names[0] == "time" and types[0].startswith("TIMESTAMP"), (title, types)
            assert any(t.startswith(NUMERIC) for t in types[1:]), (title, types)
            times = [r[0] for r in rows]
            assert times == sorted(times), f"{title!r}: time series must be sorted by time"
        elif kind in ("stat", "bargauge"):
            assert all(t.startswith(NUMERIC) for t in types), (title, types)
            assert all(v is not None for v in rows[0]), (title, rows)


def test_panel_values_match_the_marts(published: PublishedFixture) -> None:
    results = run_panels(GRAFANA / "dashboards/Symbiotic-Ecosystem.json", published.snapshot, ["alpha", "beta"])  # fmt: skip
    assert results["Commits in range"][3] == [(16, 13, 3)]
    assert results["Merge conflict rate in range"][3] == [(pytest.approx(1 / 3),)]
    assert results["Branch switches in range"][3] == [(8,)]
    assert results["Repositories without reflog (switches unknown)"][3] == [(1, 2)]
    heat = results["Cross-project activity (author's local weekday x hour)"][3]
    assert sum(sum(r[2:]) for r in heat) == 13
    monday = next(r for r in heat if r[0] == 1)
    assert monday[2 + 22] == 1  # b1: Monday 22:00 in -0800
    only_beta = run_panels(GRAFANA / "dashboards/Symbiotic-Ecosystem.json", published.snapshot, ["beta"])  # fmt: skip
    assert only_beta["Commits in range"][3] == [(6, 5, 1)]
    assert only_beta["Branch switches per day"][3] == []  # no reflog: no series, not zeros


def test_agent_panels_match_the_memory_marts(published: PublishedFixture) -> None:
    board = GRAFANA / "dashboards/Symbiotic-Ecosystem.json"
    results = run_panels(board, published.snapshot, ["alpha", "beta"])
    # s-alpha-1, s-beta-1, s-open (s-gamma's project is no repository); quality of the ended two
    assert results["Agent sessions in range"][3] == [(3, 2, 77.5)]
    assert results["Fix attempt success rate"][3] == [(pytest.approx(4 / 7), 7)]  # #4 deleted
    assert results["Followed recommendations that succeeded"][3] == [(pytest.approx(3 / 5), 6)]
    # |0.5 - 0.325| x 2 + |0.5 - 0.835| x 2 + |1 - 0.95| x 1, over 5 judged recommendations
    ece = (2 * 0.175 + 2 * 0.335 + 1 * 0.05) / 5
    assert results["Confidence calibration error"][3] == [(pytest.approx(ece), 5)]
    quality = results["Session quality and project velocity"][3]
    assert [(r[1], r[2], r[3]) for r in quality] == [
        ("alpha", 85.0, pytest.approx(7 / 30)),
        ("beta", 70.0, pytest.approx(6 / 30)),
    ]
    bars = results["Strategy success rate (all issue types)"][3]
    assert [r[0] for r in bars] == [
        "FormattingAgent:format", "SecurityAgent:security_fix", "RefactoringAgent:refactor"]  # fmt: skip
    calibration = results["Recommendation confidence vs observed success"][3]
    assert [(r[0], r[2], r[3]) for r in calibration] == [
        ("0.3-0.4", 0.5, 2), ("0.8-0.9", 0.5, 2), ("0.9-1.0", 1.0, 1)]  # fmt: skip
    issues = results["Common issue types and failing strategies across projects"][3]
    assert issues[0][:5] == ("security", 2, 3, 1, "SecurityAgent:security_fix")

    only_beta = run_panels(board, published.snapshot, ["beta"])
    (session,) = only_beta["Agent sessions"][3]
    assert session[:3] == ("s-beta-1", "Beta", "beta") and session[8] is None  # unknown switches
    skills = {r[0]: r[1:4] for r in only_beta["Skill effectiveness (selected repositories)"][3]}
    assert skills == {
        "doc-writer": (1, 1, 0),
        "pytest-runner": (1, 0, 0),
        "refactor-planner": (1, 0, 1),
    }
    failing = only_beta["Common issue types and failing strategies across projects"][3]
    assert {r[0] for r in failing} == {"security", "complexity"}  # not alpha-only formatting
