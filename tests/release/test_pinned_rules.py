"""Tests that pin the release rules against deliberate bugs (issue 13, item 12).

A mutation audit found wrongful releases the suite let through: a falsy rule answer read as
"no veto", only the first of several configured tags honoured, flag rules skipped for
long-idle candidates. Each guarantee here has its attacking test; the dry-run, plugin-load and
name-trimming guarantees get more than the single test they rested on.
"""

from __future__ import annotations

import sqlite3

import pytest

from agent.decisions import judge
from agent.hookspecs import hookimpl
from agent.jobs import run_release_job
from agent.models import Decision, ReleaseRule

from .helpers import (
    NEVER,
    ReleaseHarness,
    ago,
    allocation,
    decide,
    outcome,
    release_block,
    state,
    user,
)

# --------------------------------------------------------------------------- odd rule answers


def _batch(n: int = 3):
    users = [user(f"u{i}") for i in range(n)]
    return decide(state(users, professional=[allocation(u, ago(40)) for u in users])).to_release


@pytest.mark.parametrize("answer", [[], False, 0, "", 0.0, (), set(), b""], ids=repr)
def test_a_falsy_answer_that_is_not_a_mapping_keeps_the_whole_batch(answer) -> None:
    """Only a mapping (or None) is an answer; ``if not verdict`` would read these as "no
    veto" and release everything the rule was asked about."""
    candidates = _batch()
    vetoes = judge(candidates, [ReleaseRule("odd", lambda cs: answer)])
    assert set(vetoes) == {c.allocation.id for c in candidates}
    assert all("not a mapping" in v[0].reason for v in vetoes.values())


@pytest.mark.parametrize("answer", [[], False, 0, ""], ids=repr)
def test_a_plugin_answering_a_falsy_value_releases_nothing(harness: ReleaseHarness, answer) -> None:
    """The same through the real stack: a rule plugin, the simulator, no DELETE at all."""

    class Odd:
        @hookimpl
        def sla_release_rules(self):
            return [ReleaseRule("odd", lambda cs: answer)]

    people = [user("alice"), user("bob")]
    harness.start(state(people, professional=[allocation(u, ago(40)) for u in people]))
    result = harness.run(extra=[("odd", Odd())])
    assert {d.decision for d in result.decisions} == {Decision.KEPT}
    assert harness.requests("DELETE") == 0 and harness.delivery.points == []


def test_an_empty_mapping_and_none_are_the_only_no_veto_answers() -> None:
    candidates = _batch()
    assert judge(candidates, [ReleaseRule("empty", lambda cs: {})]) == {}
    assert judge(candidates, [ReleaseRule("none", lambda cs: None)]) == {}


# --------------------------------------------------------------------------- several values


def test_every_configured_tag_protects_and_every_user_tag_is_checked() -> None:
    protected = {
        "first": user("first", tags=["Alpha"]),
        "last": user("last", tags=["VIP"]),  # the third configured tag
        "third-own": user("third-own", tags=["x", "y", "License do not release"]),
        "two": user("two", tags=["vip", "ALPHA"]),
    }
    free = user("free", tags=["x", "y", "Alphabet"])
    people = [*protected.values(), free]
    result = decide(
        state(people, professional=[allocation(u, ago(40)) for u in people]),
        release_block("tag:\n  - Alpha\n  - License do not release\n  - VIP"),
    )
    fates = outcome(result)
    assert fates == {**{f"CORP\\{k}": "kept" for k in protected}, "CORP\\free": "release"}
    reasons = {d.allocation.owner: d.reasons[0].reason for d in result.decisions}
    assert "'ALPHA'" in reasons["CORP\\two"] and "'vip'" in reasons["CORP\\two"]


def test_every_entry_of_the_user_directory_and_custom_property_lists_protects() -> None:
    people = [
        user("a", "DIR1"),
        user("b", "DIR3"),
        user("c", props=[("Dept", "x"), ("LicenseManage", "keep-2")]),
        user("d", props=[("LicenseManage", "other")]),
        user("e", "DIR4"),
    ]
    never = """
    userDirectory: [DIR1, DIR2, DIR3]
    user:
      - userDir: CORP
        userId: nobody
      - userDir: DIR4
        userId: e
    customProperty:
      - name: LicenseManage
        value: keep-1
      - name: LicenseManage
        value: keep-2
    """
    fates = outcome(
        decide(
            state(people, professional=[allocation(u, ago(40)) for u in people]),
            release_block(never),
        )
    )
    assert fates == {
        "DIR1\\a": "kept",
        "DIR3\\b": "kept",
        "CORP\\c": "kept",
        "CORP\\d": "release",
        "DIR4\\e": "kept",
    }


# --------------------------------------------------------------------------- long idle


@pytest.mark.parametrize("flag", ["inactive", "blacklisted", "removedExternally"])
@pytest.mark.parametrize("idle", ["400 days", "ten years", "never used, assigned 3 years ago"])
def test_flag_rules_protect_candidates_idle_for_more_than_a_year(flag: str, idle: str) -> None:
    key = {
        "inactive": "inactive",
        "blacklisted": "blocked",
        "removedExternally": "removedExternally",
    }
    last_used, created = {
        "400 days": (ago(400), ago(800)),
        "ten years": (ago(3650), ago(4000)),
        "never used, assigned 3 years ago": (NEVER, ago(1100)),
    }[idle]
    on, off = user("on", **{flag: True}), user("off", **{flag: False})
    people = [on, off]
    document = state(
        people, professional=[allocation(u, last_used, created=created) for u in people]
    )
    yes = outcome(decide(document, release_block(f"{key[flag]}: Yes")))
    no = outcome(decide(document, release_block(f"{key[flag]}: No")))
    assert yes == {"CORP\\on": "kept", "CORP\\off": "release"}
    assert no == {"CORP\\on": "release", "CORP\\off": "kept"}


# --------------------------------------------------------------------------- name trimming


@pytest.mark.parametrize(
    ("never_release", "protected"),
    [
        ("user:\n  - userDir: CORP\n    userId: ' bob\t'", user("bob")),
        ("user:\n  - userDir: CORP\n    userId: bob", user(" bob ")),
        ("tag: [' VIP ']", user("bob", tags=["vip"])),
        ("tag: [VIP]", user("bob", tags=["  VIP\t"])),
        ("userDirectory: [' ADMIN ']", user("bob", "ADMIN")),
        ("userDirectory: [ADMIN]", user("bob", " ADMIN ")),
        (
            "customProperty:\n  - name: ' LicenseManage '\n    value: ' keep '",
            user("bob", props=[("LicenseManage", "keep")]),
        ),
        (
            "customProperty:\n  - name: LicenseManage\n    value: keep",
            user("bob", props=[(" LicenseManage", "keep ")]),
        ),
        ("userDirectory: [' Straße ']", user("bob", "STRASSE")),
        ("tag: [Ünïcode]", user("bob", tags=[" ünïcode  "])),
    ],
    ids=[
        "config-userId",
        "qrs-userId",
        "config-tag",
        "qrs-tag",
        "config-directory",
        "qrs-directory",
        "config-custom-property",
        "qrs-custom-property",
        "non-ascii-config",
        "non-ascii-qrs",
    ],
)
def test_surrounding_spaces_never_defeat_a_rule(never_release: str, protected: dict) -> None:
    """Names are compared trimmed, on both sides (the config and QRS's data): a stray space in
    either must protect, never release."""
    alice = user("alice")
    result = decide(
        state(
            [alice, protected],
            professional=[allocation(alice, ago(40)), allocation(protected, ago(40))],
        ),
        release_block(never_release),
    )
    fates = outcome(result)
    assert fates["CORP\\alice"] == "release"
    (kept,) = [owner for owner, fate in fates.items() if owner != "CORP\\alice"]
    assert fates[kept] == "kept", never_release


# --------------------------------------------------------------------------- dry run


def test_a_dry_run_through_the_scheduled_job_deletes_and_delivers_nothing(
    harness: ReleaseHarness,
) -> None:
    from agent.plugins import build_plugin_host
    from agent.qrs import QrsClient

    people = [user("alice"), user("bob")]
    harness.start(state(people, professional=[allocation(u, ago(40)) for u in people]))
    config = harness.config(release_block("", dry_run=True))
    results = run_release_job(
        config, build_plugin_host(config), harness.delivery, qrs_factory=QrsClient
    )
    (result,) = results
    assert result.dry_run and result.counts()["professional"]["would_release"] == 2
    assert harness.requests("DELETE") == 0 and harness.delivery.points == []
    assert len(harness.remaining()) == 2
    # Nor does a dry run write to the release journal (its run log may share the file).
    for path in harness.tmp_path.glob("*.journal.sqlite"):
        db = sqlite3.connect(str(path))
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if "release_journal" in tables:
                assert db.execute("SELECT COUNT(*) FROM release_journal").fetchone()[0] == 0
        finally:
            db.close()


def test_a_dry_run_keeps_its_promise_when_every_rule_would_release(
    harness: ReleaseHarness,
) -> None:
    """No rules, everyone long idle, a far-away 'now': everything would go, nothing goes."""
    people = [user(f"u{i}") for i in range(5)]
    harness.start(state(people, professional=[allocation(u, ago(4000)) for u in people]))
    result = harness.run(release_block(""), dry_run=True)
    assert {d.decision for d in result.decisions} == {Decision.WOULD_RELEASE}
    assert harness.requests("DELETE") == 0 and harness.delivery.points == []


# --------------------------------------------------------------------------- plugin load failure


def _broken_plugin(harness: ReleaseHarness, text: str):
    folder = harness.tmp_path / "plugins.d"
    folder.mkdir(exist_ok=True)
    (folder / "hr_rules.py").write_text(text)

    def patch(disable):
        def apply(butler):
            butler["licenseAgent"]["plugins"] = {"paths": [str(folder)], "disable": disable}

        return apply

    return patch


@pytest.mark.parametrize(
    "text",
    [
        "def broken(:\n",  # SyntaxError
        "import not_a_module_anywhere\n",  # ModuleNotFoundError
        "raise RuntimeError('licence server key missing')\n",
        "1 / 0\n",
    ],
    ids=["syntax", "missing-import", "runtime-error", "zero-division"],
)
def test_any_plugin_load_failure_stops_the_run_before_qrs(harness: ReleaseHarness, text) -> None:
    patch = _broken_plugin(harness, text)
    people = [user("alice"), user("bob")]
    harness.start(state(people, professional=[allocation(u, ago(40)) for u in people]))
    result = harness.run(patch=patch([]))
    assert result.aborted and "hr_rules: failed to load" in result.aborted
    assert result.decisions == [] and not result.ok
    assert harness.sim.get_stats()["total"] == 0


def test_disabling_another_plugin_does_not_excuse_a_load_failure(
    harness: ReleaseHarness,
) -> None:
    patch = _broken_plugin(harness, "raise ImportError('hr_client is not installed')\n")
    people = [user("alice")]
    harness.start(state(people, professional=[allocation(u, ago(40)) for u in people]))
    result = harness.run(patch=patch(["tag", "flags"]))
    assert result.aborted and "hr_rules" in result.aborted
    assert harness.requests("DELETE") == 0


def test_the_scheduled_job_with_a_broken_plugin_releases_nothing(harness: ReleaseHarness) -> None:
    from agent.plugins import build_plugin_host
    from agent.qrs import QrsClient

    patch = _broken_plugin(harness, "raise ImportError('hr_client is not installed')\n")
    people = [user("alice"), user("bob")]
    harness.start(state(people, professional=[allocation(u, ago(40)) for u in people]))
    config = harness.config(release_block(""), patch=patch([]))
    results = run_release_job(
        config, build_plugin_host(config), harness.delivery, qrs_factory=QrsClient
    )
    assert all(not r.ok for r in results)
    assert harness.requests("DELETE") == 0 and harness.delivery.points == []
    assert len(harness.remaining()) == 2
