"""Several Sense sites from one agent: connections, rules and tags per site, failures apart."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agent.certificates import check_files
from agent.cli import main
from agent.config import ConfigError
from agent.jobs import run_monitor_job, run_release_job
from agent.plugins import build_plugin_host, load_config, parse_config


def _snapshots(db) -> dict[tuple[str, str], dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT license_type, tags, total, allocated, used FROM license_usage"
            " WHERE license_type IN ('professional', 'analyzer')"
        ).fetchall()
    found = {}
    for license_type, tags, total, allocated, used in rows:
        tags = json.loads(tags)
        found[(tags.get("site"), license_type)] = {
            "tags": tags,
            "total": total,
            "allocated": allocated,
            "used": used,
        }
    return found


def _overview(sim, block: str) -> dict:
    return sim.store.overview()[block]


def test_each_site_is_monitored_with_its_own_connection_and_tags(two_sites, sites_config):
    config = load_config(sites_config())
    assert [s.name for s in config.sites()] == ["prod", "test"]
    host = build_plugin_host(config)
    results = run_monitor_job(config, host)
    assert [(r.site, r.ok) for r in results] == [("prod", True), ("test", True)]

    stored = _snapshots(config.state_dir / "license-agent.sqlite")
    assert set(stored) == {
        (site, t) for site in ("prod", "test") for t in ("professional", "analyzer")
    }
    for site, sim in two_sites.items():
        for license_type, block in (
            ("professional", "professionalAccess"),
            ("analyzer", "analyzerAccess"),
        ):
            row = stored[(site, license_type)]
            expected = _overview(sim, block)
            assert (row["total"], row["allocated"], row["used"]) == (
                expected["total"],
                expected["allocated"],
                expected["used"],
            )
            # The site tag, the site's own tags and the shared Butler tags, together.
            assert row["tags"] == {
                "site": site,
                "environment": f"{site}-env",
                "butler_instance": "agent-1",
            }
    assert stored[("prod", "professional")]["total"] != stored[("test", "professional")]["total"]


def test_each_site_is_released_by_its_own_rules(two_sites, sites_config, tmp_path, capsys):
    config_path = sites_config(dry_run=False)
    config = load_config(config_path)
    prod, test = config.sites()
    assert prod.license_release.license_type.professional.enable
    assert not test.license_release.license_type.professional.enable
    assert test.license_release.license_type.analyzer.release_threshold_days == 60
    assert test.license_release.never_release.tag == ["Finance"]  # the list is replaced
    assert test.license_release.never_release.user_directory == ["INTERNAL", "ADMIN"]  # merged
    before = {site: len(sim.store.objects("analyzeraccesstype")) for site, sim in two_sites.items()}

    host = build_plugin_host(config)
    results = {r.site: r for r in run_release_job(config, host)}
    assert set(results) == {"prod", "test"} and all(r.ok for r in results.values())
    assert [t.license_type for t in results["test"].types] == ["analyzer"]
    assert results["test"].thresholds() == {"analyzer": 60}
    released = {
        site: [d for d in r.decisions if d.decision.value in ("released", "quarantined")]
        for site, r in results.items()
    }
    assert released["prod"] and released["test"]
    assert all(d.days_since_last_use >= 60 for d in released["test"])
    # The test site's rule protects Finance users; prod's does not know that tag.
    kept_test = [d for d in results["test"].decisions if d.decision.value == "kept"]
    assert any(r.rule == "tag" and "Finance" in r.reason for d in kept_test for r in d.reasons)
    # Each site lost exactly what its own run released, on its own server.
    for site, sim in two_sites.items():
        gone = len([d for d in released[site] if d.allocation.license_type == "analyzer"])
        still = len([a for a in sim.store.objects("analyzeraccesstype")])
        quarantined = len(
            [
                d
                for d in released[site]
                if d.decision.value == "quarantined" and d.allocation.license_type == "analyzer"
            ]
        )
        assert before[site] - still == gone - quarantined
    # Release events carry their site.
    with sqlite3.connect(config.state_dir / "license-agent.sqlite") as conn:
        events = conn.execute("SELECT license_type, tags FROM release_event").fetchall()
    by_site: dict[str, int] = {}
    for _license_type, tags in events:
        site = json.loads(tags)["site"]
        by_site[site] = by_site.get(site, 0) + 1
    assert by_site == {site: len(released[site]) for site in ("prod", "test")}


def test_one_site_down_does_not_stop_the_other(two_sites, sites_config, capsys):
    config_path = sites_config(dry_run=True)
    two_sites["test"].stop()  # its port now refuses connections
    config = load_config(config_path)
    host = build_plugin_host(config)
    results = run_monitor_job(config, host)
    assert [(r.site, r.ok) for r in results] == [("prod", True), ("test", False)]
    stored = _snapshots(config.state_dir / "license-agent.sqlite")
    assert {site for site, _ in stored} == {"prod"}
    outcome = results.outcome()
    assert not outcome.ok and outcome.sites["prod"] is None and outcome.sites["test"]

    releases = run_release_job(config, host)
    by_site = {r.site: r for r in releases}
    assert by_site["prod"].ok and by_site["prod"].decisions
    assert not releases.outcome().ok and releases.outcome().sites["test"]

    # The commands report both sites and exit 1 for the one that failed.
    capsys.readouterr()
    report = config.state_dir / "decisions.json"
    assert (
        main(["release", "--once", "--dry-run", "-c", str(config_path), "--report", str(report)])
        == 1
    )
    out = capsys.readouterr().out
    assert "License release on prod" in out
    documents = json.loads(report.read_text(encoding="utf-8"))
    documents = documents if isinstance(documents, list) else [documents]
    assert [d["run"]["site"] for d in documents][0] == "prod"


def test_report_shows_one_section_per_site(two_sites, sites_config, tmp_path, capsys):
    config_path = sites_config(dry_run=True)
    assert main(["monitor", "--once", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "License overview of prod" in out and "License overview of test" in out
    decisions = tmp_path / "release-report.json"
    assert main(["release", "--once", "-c", str(config_path), "--report", str(decisions)]) == 0
    page = tmp_path / "report.html"
    assert main(["report", "-c", str(config_path), "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "<h2>Site prod</h2>" in html and "<h2>Site test</h2>" in html
    assert "Qlik Sense license report &mdash; prod, test" in html


# --------------------------------------------------------------------------- the config


BASE = {
    "qlikSenseLicense": {"licenseMonitor": {"enable": True}},
}


def _site(name: str, **extra) -> dict:
    return {
        "name": name,
        "configQRS": {"host": f"{name}.example.com"},
        "cert": {"clientCert": "c.pem", "clientCertKey": "k.pem", "clientCertCA": "r.pem"},
        **extra,
    }


def _parse(sites: list, **butler) -> object:
    return parse_config({"Butler": {**BASE, **butler, "licenseAgent": {"sites": sites}}})


def test_sites_need_no_butler_connection_and_keep_names_unique():
    config = _parse([_site("eu"), _site("us")])
    assert [s.qrs.host for s in config.sites()] == ["eu.example.com", "us.example.com"]
    with pytest.raises(ConfigError) as error:
        _parse([_site("eu"), _site("EU")])
    assert "used twice" in str(error.value)
    with pytest.raises(ConfigError) as error:
        _parse([_site("eu west")])
    assert "Butler.licenseAgent.sites[0].name" in str(error.value)


def test_a_site_cannot_have_its_own_schedule():
    override = {"qlikSenseLicense": {"licenseRelease": {"frequency": "every 1 hours"}}}
    with pytest.raises(ConfigError) as error:
        _parse([_site("eu", **override)])
    message = str(error.value)
    assert "Butler.licenseAgent.sites[0]" in message and "shared" in message


def test_a_bad_override_names_the_key_in_the_site():
    override = {"qlikSenseLicense": {"licenseRelease": {"maxReleasesPerRun": "lots"}}}
    with pytest.raises(ConfigError) as error:
        _parse([_site("eu", **override)])
    assert "Butler.licenseAgent.sites[0].qlikSenseLicense.licenseRelease.maxReleasesPerRun" in str(
        error.value
    )


def test_single_butler_site_keeps_its_series_untagged():
    config = parse_config(
        {
            "Butler": {
                **BASE,
                "configQRS": {"host": "sense.example.com"},
                "cert": {"clientCert": "c.pem", "clientCertKey": "k.pem", "clientCertCA": "r.pem"},
                "influxDb": {"tag": {"static": [{"name": "env", "value": "prod"}]}},
            }
        }
    )
    (site,) = config.sites()
    assert site.name == "sense.example.com"
    assert site.static_tags("license_monitor") == {"env": "prod"}


def test_the_site_tag_cannot_be_overridden_by_a_feature_tag():
    tags = {
        "licenseMonitor": {
            "destination": {"influxDb": {"tag": {"static": [{"name": "site", "value": "x"}]}}}
        }
    }
    config = _parse([_site("eu")], qlikSenseLicense={**BASE["qlikSenseLicense"], **tags})
    assert config.sites()[0].static_tags("license_monitor")["site"] == "eu"


def test_certificate_files_are_checked_per_site(tmp_path):
    config = _parse([_site("eu")])
    problems = check_files(config)
    assert problems and all(p.startswith("Butler.licenseAgent.sites[0].cert.") for p in problems)


def test_config_check_lists_the_sites(sites_config, capsys):
    assert main(["config", "check", str(sites_config())]) == 0
    out = capsys.readouterr().out
    assert "Sites" in out
    assert "prod: https://127.0.0.1:" in out and "site=prod" in out
    assert "test: https://127.0.0.1:" in out and "environment=test-env" in out


def test_qrs_check_checks_every_site(two_sites, sites_config, capsys):
    config_path = sites_config()
    assert main(["qrs", "check", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "== site prod" in out and "== site test" in out
    assert out.count(": connected") == 2
    two_sites["test"].stop()
    assert main(["qrs", "check", "-c", str(config_path), "--json"]) == 1
    captured = capsys.readouterr()
    assert [d["site"] for d in json.loads(captured.out)] == ["prod"]
    assert "cannot use QRS" in captured.err
