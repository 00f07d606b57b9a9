"""The Grafana dashboards in docs/grafana/: every query names only what the agent writes.

The allowed names are not a list kept in this file: they come from the code. The license type
plugins read a sample overview (the one in QRS.md, with every block enabled), the release core
builds a release event, the site license collector builds its point, and the Prometheus
destination registers its metrics after receiving all of those. Then each query of each
dashboard is checked against them, and run against real servers (InfluxDB 1.x with points
written by the influxdb destination; Prometheus scraping the Prometheus destination) to prove
it parses and returns data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.journal import JournalEntry, release_event
from agent.models import (
    MEASUREMENT_LICENSE,
    MEASUREMENT_RELEASE,
    MEASUREMENT_SERVER_LICENSE,
    UTC,
    Point,
)
from agent.monitor import license_points
from agent.plugins import build_plugin_host
from plugins.destinations.prometheus import PrometheusDestination
from plugins.monitors import server_license

REPO = Path(__file__).resolve().parents[2]
INFLUX_DASHBOARD = REPO / "docs" / "grafana" / "influxdb-dashboard.json"
PROMETHEUS_DASHBOARD = REPO / "docs" / "grafana" / "prometheus-dashboard.json"

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: The overview of QRS.md with every block enabled, so every license type writes a point.
SAMPLE_OVERVIEW = {
    "totalTokens": 100,
    "availableTokens": 40,
    "tokensEnabled": True,
    "userAccess": {
        "enabled": True,
        "tokenCost": 1,
        "allocatedTokens": 3,
        "usedTokens": 2,
        "quarantinedTokens": 1,
    },
    "loginAccess": {
        "enabled": True,
        "tokenCost": 0.1,
        "allocatedTokens": 10,
        "usedTokens": 4,
        "unavailableTokens": 0,
    },
    "professionalAccess": {
        "enabled": True,
        "total": 25,
        "allocated": 5,
        "used": 0,
        "quarantined": 0,
        "excess": 0,
        "available": 20,
    },
    "analyzerAccess": {
        "enabled": True,
        "total": 25,
        "allocated": 4,
        "used": 0,
        "quarantined": 0,
        "excess": 0,
        "available": 21,
    },
    "analyzerTimeAccess": {
        "enabled": True,
        "allocatedMinutes": 700,
        "usedMinutes": 0,
        "unavailableMinutes": 0,
    },
    "schemaPath": "AccessTypeOverview",
}


class _SiteLicenseQrs:
    def site_license(self) -> dict[str, Any]:
        return {"keyDetails": "Valid To: 2027-03-16 12:00:00 AM", "isExpired": False}


def agent_points(now: datetime = NOW) -> list[Point]:
    """Points exactly as the agent's code builds them: license, release and site license."""
    host = build_plugin_host(None)
    license_types = host.license_types()
    points = license_points(SAMPLE_OVERVIEW, license_types, {}, now)
    for i, kind in enumerate(("professional", "analyzer")):
        entry = JournalEntry(
            site="sense1",
            license_type=kind,
            resource=f"{kind}accesstype",
            allocation_id=f"00000000-0000-4000-8000-00000000000{i}",
            user=f"ACME\\user{i}",
            days_since_last_use=40 + i,
            last_used=now - timedelta(days=40 + i),
            at=now - timedelta(hours=i),
        )
        points.append(release_event(entry, quarantined=bool(i), static_tags={}))
    settings = server_license_settings()
    collector = server_license.make_collector(settings)
    points.extend(collector.collect(qrs=_SiteLicenseQrs(), now=now, site=None))
    return points


def server_license_settings() -> Any:
    from plugins.monitors.server_license import ServerLicenseMonitor

    return ServerLicenseMonitor.model_validate({"enable": True})


def influx_schema() -> dict[str, dict[str, set[str]]]:
    """measurement -> {"fields": ..., "tags": ...}, from the points the code builds."""
    schema: dict[str, dict[str, set[str]]] = {}
    for point in agent_points():
        entry = schema.setdefault(point.measurement, {"fields": set(), "tags": set()})
        entry["fields"] |= set(point.fields)
        entry["tags"] |= set(point.tags)
    return schema


def license_type_names() -> set[str]:
    return {lt.name for lt in build_plugin_host(None).license_types()}


@pytest.fixture(scope="module")
def prometheus_names() -> Iterator[tuple[set[str], set[str]]]:
    """(sample names, label names) the Prometheus destination exposes after every kind of
    point and a job result; plus the labels Prometheus itself adds to scraped series."""
    dest = PrometheusDestination(port=0)
    try:
        dest.write(agent_points())
        dest.record_job_result("license_monitor", ok=True, finished=NOW, qrs_errors=1)
        names, labels = set(), {"job", "instance"}
        for family in dest.registry.collect():
            for sample in family.samples:
                names.add(sample.name)
                labels |= set(sample.labels)
        yield names, labels
    finally:
        dest.close()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def influx_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["query"] for p in panels(dashboard) for t in p.get("targets", [])]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def prometheus_queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def prometheus_variable_queries(dashboard: dict[str, Any]) -> list[str]:
    return [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]


# --------------------------------------------------------------------------- InfluxQL


INFLUXQL_WORDS = {
    "select", "from", "where", "and", "or", "group", "by", "order", "desc", "asc", "limit",
    "fill", "previous", "none", "null", "time", "now", "as", "last", "mean", "count", "max",
    "min", "sum", "show", "tag", "values", "with", "key", "true", "false",
}  # fmt: skip


def influxql_names(query: str) -> tuple[str, set[str], set[str]]:
    """(measurement, identifiers used as fields or tags, unquoted words) of one query."""
    text = re.sub(r"/(?:[^/\\]|\\.)*/", " ", query)  # regex literals
    text = re.sub(r"'(?:[^'\\]|\\.)*'", " ", text)  # string literals
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables and macros
    measurement = re.search(r'\bFROM\s+(?:"[^"]+"\.)*"([^"]+)"', text, re.IGNORECASE)
    assert measurement, f"no quoted measurement in {query!r}"
    rest = text[: measurement.start()] + text[measurement.end() :]
    rest = re.sub(r'\bAS\s+"[^"]+"', " ", rest, flags=re.IGNORECASE)  # aliases name nothing
    identifiers = set(re.findall(r'"([^"]+)"', rest))
    bare = re.sub(r'"[^"]*"', " ", rest)
    bare = re.sub(r"\b\d+[a-z]*\b", " ", bare)  # numbers and durations (1d)
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", bare)}
    return measurement.group(1), identifiers, words


def license_type_literals(query: str) -> list[tuple[str, str]]:
    """(operator, value) for each comparison of the license_type tag in an InfluxQL query."""
    return re.findall(r'"license_type"\s*(=~|=)\s*(/(?:[^/\\]|\\.)*/|\'[^\']*\')', query)


def test_influx_dashboard_queries_name_only_what_the_agent_writes():
    schema = influx_schema()
    assert {MEASUREMENT_LICENSE, MEASUREMENT_RELEASE, MEASUREMENT_SERVER_LICENSE} <= set(schema)
    names = license_type_names()
    queries = influx_queries(load(INFLUX_DASHBOARD))
    used: dict[str, set[str]] = {}
    for query in queries:
        measurement, identifiers, words = influxql_names(query)
        assert measurement in schema, f"{query!r}: the agent writes no measurement {measurement!r}"
        known = schema[measurement]["fields"] | schema[measurement]["tags"]
        unknown = identifiers - known
        assert not unknown, f"{query!r}: {sorted(unknown)} not written to {measurement}"
        assert words <= INFLUXQL_WORDS, (
            f"{query!r}: unexpected words {sorted(words - INFLUXQL_WORDS)}"
        )
        used.setdefault(measurement, set()).update(identifiers)
        for operator, literal in license_type_literals(query):
            body = literal[1:-1]
            if "$" in body:
                continue
            if operator == "=":
                assert body in names, f"{query!r}: no license type {body!r}"
            else:
                assert any(re.search(body, n) for n in names), f"{query!r}: {body} matches no type"
    # The dashboard shows all three measurements and the usage fields of the issue.
    assert set(used) == {MEASUREMENT_LICENSE, MEASUREMENT_RELEASE, MEASUREMENT_SERVER_LICENSE}
    assert {"allocated", "used", "available", "quarantined", "total"} <= used[MEASUREMENT_LICENSE]
    assert {"days_since_last_use", "license_type"} <= used[MEASUREMENT_RELEASE]
    assert {"days_until_expiry", "license_expired", "expiry_date"} <= used[
        MEASUREMENT_SERVER_LICENSE
    ]


def test_the_checker_rejects_names_the_agent_does_not_write():
    """The check above can fail: a misspelt field, measurement or function is caught."""
    schema = influx_schema()
    measurement, identifiers, words = influxql_names(
        'SELECT last("alocated") FROM "qlik_sense_license" WHERE $timeFilter GROUP BY "license_type"'
    )
    assert identifiers - (schema[measurement]["fields"] | schema[measurement]["tags"]) == {
        "alocated"
    }
    assert influxql_names('SELECT "x" FROM "qlik_sense_licence"')[0] not in schema
    assert "median" in influxql_names('SELECT median("used") FROM "qlik_sense_license"')[2]


# --------------------------------------------------------------------------- PromQL


PROMQL_FUNCTIONS = {"sum", "increase", "rate", "time", "max", "min", "avg", "count", "label_values"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "and", "or", "unless", "bool", "offset"}


def promql_names(expr: str) -> tuple[set[str], set[str], set[str], list[tuple[str, str, str]]]:
    """(metric names, label names, functions, label matchers) used by one PromQL expression
    or Grafana ``label_values(selector, label)`` variable query."""
    variable = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", expr)
    if variable:
        metrics, labels, functions, matchers = promql_names(variable.group(1))
        return metrics, labels | {variable.group(2)}, functions | {"label_values"}, matchers
    matchers = re.findall(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', expr)
    text = re.sub(r"\$\{?\w+\}?", "x", expr)  # Grafana variables and macros
    labels = {m[0] for m in matchers}
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    functions = set(re.findall(r"\b([a-zA-Z_]\w*)\s*\(", text))
    text = re.sub(r"\b[a-zA-Z_]\w*\s*\(", " ", text)
    words = set(re.findall(r"\b[a-zA-Z_:][\w:]*\b", text)) - PROMQL_KEYWORDS
    return words, labels, functions, matchers


def test_prometheus_dashboard_queries_name_only_what_the_agent_exposes(prometheus_names):
    metric_names, label_names = prometheus_names
    names = license_type_names()
    dashboard = load(PROMETHEUS_DASHBOARD)
    used: set[str] = set()
    for expr in prometheus_queries(dashboard) + prometheus_variable_queries(dashboard):
        metrics, labels, functions, matchers = promql_names(expr)
        assert metrics, f"{expr!r} names no metric"
        assert metrics <= metric_names, f"{expr!r}: not exposed: {sorted(metrics - metric_names)}"
        assert labels <= label_names, f"{expr!r}: no such label {sorted(labels - label_names)}"
        assert functions <= PROMQL_FUNCTIONS, f"{expr!r}: unknown function {functions}"
        for label, operator, value in matchers:
            if label != "license_type" or "$" in value:
                continue
            if operator == "=":
                assert value in names, f"{expr!r}: no license type {value!r}"
            else:
                assert any(re.fullmatch(value, n) for n in names), f"{expr!r}: {value} matches none"
        used |= metrics
    for required in (
        "qlik_sense_license_allocated",
        "qlik_sense_license_used",
        "qlik_sense_license_available",
        "qlik_sense_license_quarantined",
        "qlik_sense_license_total",
        "qlik_sense_license_released_total",
        "qlik_sense_server_license_days_until_expiry",
        "license_agent_last_success_timestamp_seconds",
        "license_agent_qrs_errors_total",
    ):
        assert required in used, f"the Prometheus dashboard does not show {required}"


def test_the_promql_checker_sees_metrics_labels_and_functions():
    metrics, labels, functions, _ = promql_names(
        'sum by (license_type) (increase(qlik_sense_license_releasd_total{site=~"$site"}[$__range]))'
    )
    assert metrics == {"qlik_sense_license_releasd_total"}
    assert labels == {"license_type", "site"}
    assert functions == {"sum", "increase"}


# --------------------------------------------------------------------------- importable JSON


@pytest.mark.parametrize(
    ("path", "plugin", "input_name"),
    [
        (INFLUX_DASHBOARD, "influxdb", "DS_INFLUXDB"),
        (PROMETHEUS_DASHBOARD, "prometheus", "DS_PROMETHEUS"),
    ],
)
def test_dashboard_is_an_importable_grafana_model(path, plugin, input_name):
    dashboard = load(path)
    assert dashboard["schemaVersion"] >= 36  # Grafana 9+
    assert dashboard["uid"] and dashboard["title"] and dashboard["id"] is None
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == [
        (input_name, "datasource", plugin)
    ]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": plugin, "uid": f"${{{input_name}}}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
        if "repeat" in panel:
            assert panel["repeat"] in variables
        for name in re.findall(r"\$(\w+)", json.dumps(panel["targets"]) + panel["title"]):
            assert name in variables or name.startswith(("__", "tag_", "col", "timeFilter")), name


# --------------------------------------------------------------------------- real servers


def influx_server(request: pytest.FixtureRequest) -> Any:
    """The suite's shared InfluxDB fixture when registered, else one started here."""
    try:
        return request.getfixturevalue("influxdb_server")
    except pytest.FixtureLookupError:
        return request.getfixturevalue("own_influxdb")


@pytest.fixture(scope="module")
def own_influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import os
    import shutil
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    try:
        import fixtures_servers as servers
    finally:
        sys.path.pop(0)
    url = os.environ.get(servers.ENV_INFLUXDB)
    if url:
        yield servers.InfluxDBClient1(url)
        return
    if not shutil.which("influxd"):
        if os.environ.get("CI"):
            pytest.fail("influxd is not installed; CI must install the Debian package influxdb")
        pytest.skip("influxd is not installed (Debian package influxdb)")
    server = servers.InfluxDB1(tmp_path_factory.mktemp("influxd")).start()
    try:
        yield servers.InfluxDBClient1(server.url)
    finally:
        server.stop()


def grafana_influxql(query: str, license_type: str = "professional") -> str:
    """The query as Grafana would send it for a 2026 time range."""
    return (
        query.replace(
            "$timeFilter", "time >= '2026-01-01T00:00:00Z' AND time <= '2027-01-01T00:00:00Z'"
        )
        .replace("$__interval", "1h")
        .replace("$license_type", license_type)
    )


@pytest.mark.influxdb
def test_influx_dashboard_queries_return_the_agents_data(request, tmp_path):
    """Points written by the real influxdb destination; every dashboard query returns them."""
    import uuid

    from agent.plugins import parse_config
    from plugins.destinations.influxdb import make_destination

    client = influx_server(request)
    database = f"sla_grafana_{uuid.uuid4().hex[:10]}"
    config = parse_config(
        {
            "Butler": {
                "influxDb": {
                    "enable": True,
                    "hostIP": client.host,
                    "hostPort": client.port,
                    "dbName": database,
                }
            }
        },
        source=tmp_path / "config.yaml",
    )
    destination = make_destination(
        config.butler.influx_db, frozenset({"license_monitor", "license_release", "server_license"})
    )
    try:
        destination.write(agent_points())
        for query in influx_queries(load(INFLUX_DASHBOARD)):
            sent = grafana_influxql(query)
            result = client.query(sent, database)
            series = result.get("series", [])
            values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
            assert values, f"no data for {sent!r}"
        tag_values = client.rows(
            grafana_influxql(influx_queries(load(INFLUX_DASHBOARD))[-1]), database
        )
        assert {r["value"] for r in tag_values} == {"professional", "analyzer"}
    finally:
        destination.close()
        client.query(f'DROP DATABASE "{database}"', method="POST")


@pytest.mark.prometheus
def test_prometheus_dashboard_queries_return_the_agents_data(prometheus_server):
    dest = PrometheusDestination(port=prometheus_server.target_port, default_site="grafana")
    try:
        dest.write(agent_points())
        dest.record_job_result("license_monitor", ok=True, finished=NOW, qrs_errors=1)
        server = prometheus_server
        server.wait_for('qlik_sense_license_total{site="grafana"}')
        dashboard = load(PROMETHEUS_DASHBOARD)
        for expr in prometheus_queries(dashboard):
            sent = (
                expr.replace("$site", "grafana")
                .replace("$license_type", "professional")
                .replace("$__range", "1m")
            )
            # increase() needs two scrapes; the gauges need one.
            assert server.wait_for(sent, timeout=10), sent
        assert server.label_values("site", 'qlik_sense_license_total{site="grafana"}') == [
            "grafana"
        ]
        types = server.label_values(
            "license_type", 'qlik_sense_license_total{license_type=~"professional|analyzer"}'
        )
        assert set(types) == {"professional", "analyzer"}
    finally:
        dest.close()
