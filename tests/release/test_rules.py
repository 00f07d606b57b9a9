"""The built-in neverRelease rules, without HTTP: configs parsed from YAML text as a user writes
them, QRS objects shaped by the simulator's state loader, decisions from the real rule plugins."""

from __future__ import annotations

import itertools

import pytest
from msgspec.structs import replace

from agent.decisions import judge
from agent.models import Candidate, fold

from .helpers import (
    DEFAULT_RELEASE,
    NEVER,
    ago,
    allocation,
    decide,
    make_config,
    outcome,
    pure_host,
    release_block,
    state,
    user,
)

ALICE = user("alice")


def one_rule(
    never_release: str, protected: dict, *, deleted: bool = False, check_alice: bool = True
) -> str:
    """Decide a population of ``protected`` plus alice (unprotected unless the rule is a ``No``
    flag rule, which protects her: ``check_alice=False``); return protected's fate."""
    if deleted:
        owner = None
        alloc = allocation(
            None,
            ago(40),
            deletedUserDirectory=protected["userDirectory"],
            deletedUserId=protected["userId"],
        )
        users = [ALICE]
    else:
        owner = protected
        alloc = allocation(owner, ago(40))
        users = [ALICE, protected]
    result = decide(
        state(users, professional=[alloc, allocation(ALICE, ago(40))]),
        release_block(never_release),
    )
    fates = outcome(result)
    if check_alice:
        assert fates["CORP\\alice"] == "release", "an unprotected user must stay releasable"
    return fates[f"{protected['userDirectory']}\\{protected['userId']}"]


# --------------------------------------------------------------------------- each rule alone


@pytest.mark.parametrize(
    ("never_release", "protected"),
    [
        ("user:\n  - userDir: CORP\n    userId: bob", user("bob")),
        ("tag:\n  - License do not release", user("bob", tags=["License do not release"])),
        (
            "customProperty:\n  - name: LicenseManage\n    value: do-not-release",
            user("bob", props=[("LicenseManage", "do-not-release")]),
        ),
        ("userDirectory:\n  - ADMIN", user("bob", "ADMIN")),
        ("inactive: Yes", user("bob", inactive=True)),
        ("blocked: Yes", user("bob", blacklisted=True)),
        ("removedExternally: Yes", user("bob", removedExternally=True)),
    ],
    ids=[
        "user",
        "tag",
        "customProperty",
        "userDirectory",
        "inactive",
        "blocked",
        "removedExternally",
    ],
)
def test_each_rule_alone_protects_its_user_only(never_release: str, protected: dict) -> None:
    assert one_rule(never_release, protected) == "kept"
    # ...and without the rule the same user is released.
    assert one_rule("", protected) == "release"


def test_reasons_name_the_rule_and_the_config_key() -> None:
    bob = user("bob", tags=["VIP"], props=[("LicenseManage", "keep")], inactive=True)
    result = decide(
        state([bob], professional=[allocation(bob, ago(40))]),
        release_block(
            "tag: [vip]\ncustomProperty:\n  - name: licensemanage\n    value: KEEP\ninactive: yes"
        ),
    )
    (decision,) = result.decisions
    reasons = {r.rule: r.reason for r in decision.reasons}
    assert set(reasons) == {"tag", "customProperty", "inactive"}  # every reason, not the first
    assert "'VIP'" in reasons["tag"] and "neverRelease.tag" in reasons["tag"]
    assert "LicenseManage=keep" in reasons["customProperty"]
    assert "Inactive" in reasons["inactive"] and "Yes" in reasons["inactive"]


# --------------------------------------------------------------------------- flags: Yes/No/Ignore

#: YAML text of the setting -> what it means. Unquoted yes/no/true/false become booleans in
#: PyYAML and must still mean Yes/No.
FLAG_SETTINGS = {
    "Yes": "yes",
    "yes": "yes",
    "YES": "yes",
    "'Yes'": "yes",
    "true": "yes",
    "No": "no",
    "no": "no",
    "'No'": "no",
    "false": "no",
    "Ignore": "ignore",
    "ignore": "ignore",
    "IGNORE": "ignore",
}
FLAG_FIELDS = {
    "inactive": "inactive",
    "blocked": "blacklisted",
    "removedExternally": "removedExternally",
}


@pytest.mark.parametrize("flag", list(FLAG_FIELDS))
@pytest.mark.parametrize("text", list(FLAG_SETTINGS))
def test_flag_matrix(flag: str, text: str) -> None:
    meaning = FLAG_SETTINGS[text]
    on = user("on", **{FLAG_FIELDS[flag]: True})
    off = user("off", **{FLAG_FIELDS[flag]: False})
    result = decide(
        state([on, off], professional=[allocation(on, ago(40)), allocation(off, ago(40))]),
        release_block(f"{flag}: {text}"),
    )
    fates = outcome(result)
    expected = {
        "yes": {"CORP\\on": "kept", "CORP\\off": "release"},
        "no": {"CORP\\on": "release", "CORP\\off": "kept"},
        "ignore": {"CORP\\on": "release", "CORP\\off": "release"},
    }[meaning]
    assert fates == expected


def test_unquoted_yaml_no_means_no() -> None:
    config = make_config(release_block("inactive: No\nblocked: yes\nremovedExternally: Ignore"))
    never_release = config.sites()[0].license_release.never_release
    assert (never_release.inactive, never_release.blocked, never_release.removed_externally) == (
        "no",
        "yes",
        "ignore",
    )
    names = [r.name for r in pure_host().release_rules(config, config.sites()[0])[0]]
    assert sorted(names) == ["blocked", "inactive"]


@pytest.mark.parametrize("setting", ["yes", "no"])
def test_an_unknown_flag_protects(setting: str) -> None:
    """A user whose flag QRS did not report (None) is kept by a Yes or a No rule."""
    config = make_config(release_block(f"blocked: {setting}"))
    rules, _ = pure_host().release_rules(config, config.sites()[0])
    known = decide(
        state([ALICE], professional=[allocation(ALICE, ago(40))]), release_block("")
    ).to_release[0]
    unknown = Candidate(
        known.allocation, replace(known.user, blocked=None), known.days_since_last_use
    )
    vetoes = judge([unknown], rules)
    assert [r.rule for r in vetoes[unknown.allocation.id]] == ["blocked"]
    assert "did not report" in vetoes[unknown.allocation.id][0].reason


def test_all_flag_combinations_against_all_users() -> None:
    """27 settings x 8 users: a user is kept exactly when some flag rule protects it."""
    users = []
    for inactive, blocked, removed in itertools.product([False, True], repeat=3):
        users.append(
            user(
                f"u{int(inactive)}{int(blocked)}{int(removed)}",
                inactive=inactive,
                blacklisted=blocked,
                removedExternally=removed,
            )
        )
    document = state(users, professional=[allocation(u, ago(40)) for u in users])
    for settings in itertools.product(["Yes", "No", "Ignore"], repeat=3):
        block = "\n".join(f"{f}: {s}" for f, s in zip(FLAG_FIELDS, settings, strict=True))
        fates = outcome(decide(document, release_block(block)))
        for u in users:
            flags = (u["inactive"], u["blacklisted"], u["removedExternally"])
            kept = any(
                (s == "Yes" and v) or (s == "No" and not v)
                for s, v in zip(settings, flags, strict=True)
            )
            assert fates[f"CORP\\{u['userId']}"] == ("kept" if kept else "release"), (settings, u)


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("never_release", "protected"),
    [
        ("user:\n  - userDir: corp\n    userId: BOB", user("bob", "CORP")),
        ("user:\n  - userDir: ' CORP '\n    userId: Bob", user("BOB", "corp")),
        ("tag:\n  - license DO NOT release", user("bob", tags=["License do not release"])),
        (
            "customProperty:\n  - name: licensemanage\n    value: DO-NOT-RELEASE",
            user("bob", props=[("LicenseManage", "Do-Not-Release")]),
        ),
        ("userDirectory:\n  - admin", user("bob", "ADMIN")),
        ("userDirectory:\n  - Straße", user("bob", "STRASSE")),
    ],
)
def test_matching_ignores_case(never_release: str, protected: dict) -> None:
    assert one_rule(never_release, protected) == "kept"


def test_custom_property_needs_name_and_value_together() -> None:
    bob = user("bob", props=[("Other", "do-not-release"), ("LicenseManage", "release-me")])
    assert (
        one_rule("customProperty:\n  - name: LicenseManage\n    value: do-not-release", bob)
        == "release"
    )


def test_one_of_several_custom_property_values_is_enough() -> None:
    bob = user(
        "bob",
        props=[("LicenseManage", "sales"), ("LicenseManage", "do-not-release"), ("Dept", "x")],
    )
    assert (
        one_rule("customProperty:\n  - name: LicenseManage\n    value: do-not-release", bob)
        == "kept"
    )


@pytest.mark.parametrize("key", ["user", "tag", "customProperty", "userDirectory"])
@pytest.mark.parametrize("empty", ["null", "[]", ""])
def test_null_and_empty_lists_mean_no_rule(key: str, empty: str) -> None:
    config = make_config(release_block(f"{key}: {empty}"))
    rules, errors = pure_host().release_rules(config, config.sites()[0])
    assert rules == [] and errors == {}
    everyone = user("bob", "INTERNAL", tags=["x"], props=[("LicenseManage", "do-not-release")])
    for license_type in ("professional", "analyzer"):
        result = decide(
            state(
                [everyone],
                professional=[allocation(everyone, ago(40))],
                analyzer=[allocation(everyone, ago(40), key="a")],
            ),
            release_block(f"{key}: {empty}"),
            license_type=license_type,
        )
        assert outcome(result) == {"INTERNAL\\bob": "release"}


def test_the_default_config_has_no_rules() -> None:
    config = make_config(DEFAULT_RELEASE)
    assert pure_host().release_rules(config, config.sites()[0]) == ([], {})


# --------------------------------------------------------------------------- deleted users


def test_deleted_user_is_judged_by_user_and_directory_rules() -> None:
    gone = user("gone", "OLD")
    assert one_rule("user:\n  - userDir: old\n    userId: GONE", gone, deleted=True) == "kept"
    assert one_rule("userDirectory: [Old]", gone, deleted=True) == "kept"
    assert one_rule("user:\n  - userDir: OLD\n    userId: other", gone, deleted=True) == "release"


@pytest.mark.parametrize(
    "never_release",
    [
        "tag: [VIP]",
        "customProperty:\n  - name: LicenseManage\n    value: keep",
        "inactive: Yes",
        "inactive: No",
        "blocked: No",
        "removedExternally: No",
    ],
)
def test_user_level_rules_cannot_protect_a_deleted_user(never_release: str) -> None:
    fate = one_rule(never_release, user("gone", "OLD"), deleted=True, check_alice=False)
    assert fate == "release"


def test_fold_is_the_comparison_form() -> None:
    assert fold("  Straße ") == fold("STRASSE") == "strasse"
    assert fold("ＡＤＭＩＮ") == "admin"  # full-width letters, as NFKC folds them


def test_never_used_allocations() -> None:
    old = user("old")
    new = user("new")
    sentinel = user("sentinel")
    document = state(
        [old, new, sentinel],
        professional=[
            allocation(old, None, created=ago(400)),
            allocation(new, None, created=ago(2)),
            allocation(sentinel, NEVER, created=ago(29.9)),
        ],
    )
    result = decide(document)
    assert outcome(result) == {
        "CORP\\old": "release",
        "CORP\\new": "not_eligible",
        "CORP\\sentinel": "not_eligible",
    }
    reasons = {d.allocation.owner: d.reasons[0].reason for d in result.decisions}
    assert "never used" in reasons["CORP\\new"]
    assert result.to_release[0].days_since_last_use == 400
