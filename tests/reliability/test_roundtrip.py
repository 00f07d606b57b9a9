"""Round trips: schedule texts through the config file, and names with quotes, ``#``, ``&``,
``%``, ``+`` and non-ASCII characters through config -> client -> simulator -> rules -> report
and destinations, unchanged."""

from __future__ import annotations

import json
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.delivery import Delivery
from agent.jobs import jobs_from_config
from agent.models import Decision
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient, quote_filter_value
from agent.release import run_release
from agent.report import write_report
from agent.schedule import parse_frequency

from .helpers import (
    NOW,
    PRO,
    ago,
    build_site,
    config_document,
    jsonl_events,
    load,
    present,
    real_now,
    release_rows,
    release_section,
    write_config,
)

UTC = NOW.tzinfo

# --------------------------------------------------------------------------- schedules

UNITS = {
    "seconds": ("sec", "secs", "second", "seconds"),
    "minutes": ("min", "mins", "minute", "minutes"),
    "hours": ("hour", "hours"),
    "days": ("day", "days"),
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@st.composite
def schedule_texts(draw: st.DrawFn) -> tuple[str, str, int]:
    """A valid later.js text, its unit, and its number (0 for the ``at`` forms)."""
    form = draw(st.sampled_from(["every", "at", "every day at", "every weekday at", "on"]))
    if form == "every":
        unit = draw(st.sampled_from(sorted(UNITS)))
        n = draw(st.integers(1, 90))
        spelling = draw(st.sampled_from(UNITS[unit]))
        return f"every {n} {spelling}", unit, n
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    clock = draw(
        st.sampled_from(
            [
                f"{hour:02d}:{minute:02d}",
                f"{hour}:{minute:02d}",
                f"{(hour % 12) or 12}:{minute:02d} {'pm' if hour >= 12 else 'am'}",
            ]
        )
    )
    if form == "on":
        days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))
        return f"on {', '.join(days)} at {clock}", f"{hour}:{minute}", 0
    return f"{form} {clock}", f"{hour}:{minute}", 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedule_texts(), st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1))
)
def test_schedule_texts_round_trip_through_the_config_and_fire_where_they_say(
    case: tuple[str, str, int], after: datetime
) -> None:
    text, unit, n = case
    import tempfile
    from pathlib import Path

    from agent.simulator.certs import CertPaths

    with tempfile.TemporaryDirectory() as folder:
        fake = CertPaths.in_dir(folder)  # the files are not opened by load_config
        document = config_document(
            4242,
            fake,
            Path(folder),
            monitor={"enable": True, "frequency": text},
            release=release_section(frequency=text.upper()),
        )
        config = load(write_config(Path(folder) / "c.yaml", document))
    assert config.license_monitor.frequency == text  # kept as written
    jobs = dict(jobs_from_config(config))
    frequency = parse_frequency(text)
    assert jobs["monitor"] == frequency
    # Case does not matter; the fire times are the same.
    start = after.replace(tzinfo=UTC)
    assert jobs["release"].next_runs(start, 3) == frequency.next_runs(start, 3)
    runs = frequency.next_runs(start, 4)
    assert all(a < b for a, b in zip([start, *runs], runs, strict=False))
    for run in runs:
        if unit == "seconds":
            assert run.second % n == 0
        elif unit == "minutes":
            assert run.minute % n == 0 and run.second == 0
        elif unit == "hours":
            assert run.hour % n == 0 and (run.minute, run.second) == (0, 0)
        elif unit == "days":
            assert (run.day - 1) % n == 0 and run.time().isoformat() == "00:00:00"
        else:
            hour, minute = map(int, unit.split(":"))
            assert (run.hour, run.minute, run.second) == (hour, minute, 0)
    assert frequency.describe()


# --------------------------------------------------------------------------- names


SPECIAL = [
    # (directory, userId, display name, tags, custom property value)
    ("東京", "o'brien", "Seán O'Brien", ["R&D #1"], None),
    ("ÅLAND", "åsa", "Åsa Öberg", [], None),
    ("ACME", "müller", "Jürgen Müller", ["C++ & 50% off"], None),
    ("ACME", "hash#tag", "Hash # Tag", [], "nicht freigeben & #1 + 100%"),
    ("R&D #1", "plus+sign", "Plus+Sign", [], None),
    ("ACME", "percent%20", "Per Cent", [], None),
    ("東京", "tanaka", "田中 太郎", [], None),
]
NEVER_RELEASE = {
    "user": [{"userDir": "東京", "userId": "O'Brien"}],
    "tag": ["r&d #1", "C++ & 50% off"],
    "customProperty": [{"name": "Lizenz+Verwaltung #2", "value": "nicht freigeben & #1 + 100%"}],
    "userDirectory": ["åland"],
    "inactive": "Ignore",
    "blocked": "Ignore",
    "removedExternally": "Ignore",
}
#: Who each rule protects; everyone else is released.
PROTECTED = {"東京\\o'brien", "ÅLAND\\åsa", "ACME\\müller", "ACME\\hash#tag"}


def special_site(now: datetime) -> dict:
    site = build_site(0, now=now)
    document = site.document
    for directory, user_id, name, tags, prop in SPECIAL:
        user = {
            "userDirectory": directory,
            "userId": user_id,
            "name": name,
            "tags": [{"name": t} for t in tags],
            "customProperties": (
                [{"definition": "Lizenz+Verwaltung #2", "value": prop}] if prop else []
            ),
        }
        document["users"].append(user)
        document[PRO].append(
            {
                "user": {"userDirectory": directory, "userId": user_id},
                "createdDate": ago(500, now),
                "lastUsed": ago(60, now),
            }
        )
    # A recently used allocation of a non-ASCII user: its DELETE is a quarantine, which
    # records the acting X-Qlik-User.
    document["users"].append({"userDirectory": "ACME", "userId": "zoë", "name": "Zoë"})
    document[PRO].append(
        {
            "user": {"userDirectory": "ACME", "userId": "zoë"},
            "createdDate": ago(500, now),
            "lastUsed": ago(2, now),
        }
    )
    return document


def test_special_and_non_ascii_names_round_trip_through_the_whole_release(
    simulator, certs, workdir
) -> None:
    now = real_now()  # the run's DELETE times come from the real clock
    sim = simulator(special_site(now), now=now)
    release = release_section(
        neverRelease=NEVER_RELEASE,
        licenseType={"professional": {"enable": True, "releaseThresholdDays": 1}},
    )
    acting = "UserDirectory=東京; UserId=Åsa Admin"
    document = config_document(
        sim.port,
        certs,
        workdir,
        release=release,
        qrs={"headers": {"static": [{"name": "X-Qlik-User", "value": acting}]}},
    )
    config = load(write_config(workdir / "config.yaml", document))  # UTF-8 YAML file
    assert config.license_release.never_release.tag == NEVER_RELEASE["tag"]
    site = config.sites()[0]
    host = build_plugin_host(config)
    delivery = Delivery.from_config(config, host)
    try:
        with QrsClient(site) as qrs:
            # Filters with quotes, '#', '&', '%', '+' and non-ASCII reach QRS intact.
            for tag, expected in (("R&D #1", 1), ("C++ & 50% off", 1), ("r&d #2", 0)):
                assert qrs.count("/qrs/user", "tags.name eq " + quote_filter_value(tag)) == expected
            assert qrs.count("/qrs/user", "userId eq " + quote_filter_value("o'brien")) == 1
            assert qrs.count("/qrs/user", "userDirectory eq " + quote_filter_value("東京")) == 2
            assert qrs.count("/qrs/user", "userId eq " + quote_filter_value("percent%20")) == 1
            result = run_release(config, site, host, qrs, delivery=delivery)
    finally:
        delivery.close()
    report_file = workdir / "report.json"
    write_report([result], report_file)

    decisions = {d.allocation.owner: d for d in result.decisions}
    for owner in PROTECTED:
        assert decisions[owner].decision is Decision.KEPT, owner
    released = {
        owner
        for owner, d in decisions.items()
        if d.decision in (Decision.RELEASED, Decision.QUARANTINED)
    }
    special_owners = {f"{d}\\{u}" for d, u, *_ in SPECIAL}
    assert released & special_owners == special_owners - PROTECTED
    assert decisions["ACME\\zoë"].decision is Decision.QUARANTINED

    # The report file: UTF-8 JSON with every name exactly as QRS has it.
    text = report_file.read_text("utf-8")
    report = json.loads(text)
    by_user = {(d["user_directory"], d["user_id"]): d for d in report["decisions"]}
    for directory, user_id, name, *_ in SPECIAL:
        assert by_user[(directory, user_id)]["user_name"] == name
    kept = by_user[("ACME", "hash#tag")]
    assert kept["decision"] == "kept"
    assert any("nicht freigeben & #1 + 100%" in r["reason"] for r in kept["reasons"])
    # The destinations got the owners unchanged, too.
    expected_users = {f"{d}\\{u}" for d, u, *_ in SPECIAL if f"{d}\\{u}" not in PROTECTED}
    assert expected_users <= {r["user"] for r in release_rows(workdir / "history.sqlite")}
    assert expected_users <= {e["tags"]["user"] for e in jsonl_events(workdir / "events.jsonl")}
    # The acting user reached QRS intact (URL-encoded UTF-8 in the header).
    zoe = next(a for a in present(sim).values() if a["user"] and a["user"]["userId"] == "zoë")
    assert zoe["quarantined"] is True
    assert zoe["modifiedByUserName"] == "東京\\Åsa Admin"
