"""``release --once --apply`` refuses, with exit code 2 and nothing deleted, every plan that no
longer describes the site: another site, other thresholds or rules, too old, not a plan."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.models import UTC, format_qrs_time
from agent.plan import PlanError, check_plan, load_plans

from .helpers import release_block
from .test_plan import LIMIT, Site, cli, report


@pytest.fixture
def plan(site: Site) -> Path:
    path = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(path), "-c", str(site.config())) == 0
    return path


def refused(site: Site, plan: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli("--apply", str(plan), "-c", str(config)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert site.deletes() == 0 and site.candidates <= site.present()
    return err


def edit(plan: Path, change: Any) -> Path:
    document = report(plan)
    change(document)
    plan.write_text(json.dumps(document), encoding="utf-8")
    return plan


def test_plan_for_another_site(site: Site, plan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The same QRS reached under another name is another site to the agent (its own lock,
    # journal and tags): the plan names the site it was made for.
    other = site.config(name="other.yaml")
    other.write_text(other.read_text("utf-8").replace("host: 127.0.0.1", "host: localhost"))
    err = refused(site, plan, other, capsys)
    assert "is a plan for another site (127.0.0.1 (127.0.0.1:" in err
    assert "not for localhost (localhost:" in err


def test_plan_made_with_other_thresholds(
    site: Site, plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config(release_block("tag: [VIP]", threshold=45, extra=LIMIT), "t.yaml")
    err = refused(site, plan, config, capsys)
    assert "made with the thresholds analyzer 30 days, professional 30 days" in err
    assert "they are now analyzer 45 days, professional 45 days" in err
    assert "--dry-run --report FILE" in err


def test_plan_made_with_other_rules(
    site: Site, plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another value of the same rule: the rule names match, the settings do not.
    config = site.config(release_block("tag: [VIP, Finance]", extra=LIMIT), "r.yaml")
    err = refused(site, plan, config, capsys)
    assert "settings its decisions depend on" in err
    # Another rule altogether.
    config = site.config(
        release_block("tag: [VIP]\nuserDirectory: [ADMIN]", extra=LIMIT), "r2.yaml"
    )
    err = refused(site, plan, config, capsys)
    assert "the neverRelease rules changed since it was made (added userDirectory)" in err


def test_operational_settings_do_not_invalidate_a_plan(site: Site, plan: Path) -> None:
    # The limit, the concurrency and the schedule do not change what a run decides.
    body = release_block("tag: [VIP]", extra="maxReleasesPerRun: 5\ndeleteConcurrency: 2")
    assert cli("--apply", str(plan), "-c", str(site.config(body, "ops.yaml"))) == 0
    assert site.deletes() == len(site.candidates)


def test_plan_too_old_and_the_configurable_age(
    site: Site, plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day_old = format_qrs_time(datetime.now(UTC) - timedelta(hours=25))
    edit(plan, lambda d: d["plan"].__setitem__("made", day_old))
    err = refused(site, plan, site.config(), capsys)
    assert "hours old" in err and "older than 24 hours are refused" in err
    assert "licenseRelease.planMaxAgeHours" in err
    longer = site.config(
        release_block("tag: [VIP]", extra=LIMIT + "\nplanMaxAgeHours: 48"), "48.yaml"
    )
    assert cli("--apply", str(plan), "-c", str(longer)) == 0
    assert site.deletes() == len(site.candidates)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "is not a plan: it is not JSON"),
        ("[]", "is not a plan: it is an empty list"),
        ('"a string"', "is not a plan: expected a JSON object"),
        ("{}", "is not a plan: it has no plan block"),
        ('{"plan": {"format": "something-else"}}', "is not a plan: it has no plan block"),
    ],
)
def test_not_a_plan(
    site: Site, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site.tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    assert message in refused(site, path, site.config(), capsys)


def test_a_live_run_report_is_not_a_plan(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    live = site.tmp_path / "live.json"
    assert cli("--report", str(live), "-c", str(site.config())) == 3
    err = refused(site, live, site.config(), capsys)
    assert "is not a plan: it is the report of a live run, not of a dry run" in err


def test_damaged_or_hostile_plans(
    site: Site, plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = plan.read_text("utf-8")
    cases = [
        (lambda d: d["plan"].__setitem__("version", 99), "written by a newer agent"),
        (lambda d: d["plan"].__setitem__("version", True), "plan.version must be"),
        (lambda d: d["plan"].pop("settings_digest"), "incomplete or damaged"),
        (lambda d: d["plan"].__setitem__("made", "yesterday"), "incomplete or damaged"),
        (lambda d: d.__setitem__("decisions", {}), "has no decisions list"),
        (
            lambda d: d["decisions"][0].__setitem__("allocation_id", 7),
            "decisions[0] is a would_release entry without",
        ),
    ]
    for change, message in cases:
        plan.write_text(original, encoding="utf-8")
        edit(plan, change)
        assert message in refused(site, plan, site.config(), capsys), message
    unreadable = site.tmp_path / "missing.json"
    assert "cannot read the plan" in refused(site, unreadable, site.config(), capsys)


def test_a_plan_from_the_future_is_refused(plan: Path) -> None:
    loaded = load_plans(plan)[0]
    current = {
        "site": dict(loaded.site),
        "thresholds": dict(loaded.thresholds),
        "rules": list(loaded.rules),
        "settings_digest": loaded.settings_digest,
    }
    check_plan(loaded, current, loaded.made + timedelta(hours=23), 24)
    with pytest.raises(PlanError, match="made in the future"):
        check_plan(loaded, current, loaded.made - timedelta(hours=1), 24)
    with pytest.raises(PlanError, match="25.0 hours old"):
        check_plan(loaded, current, loaded.made + timedelta(hours=25), 24)
