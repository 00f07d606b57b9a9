"""The QRS filter language, compiled and evaluated without HTTP against the hand-built site."""

from __future__ import annotations

import pytest

from agent.simulator.filtering import FilterError, compile_filter, parse_filter, tokenize
from agent.simulator.state import ALLOCATION_FIELDS, USER_FIELDS, SimulatorState

from .helpers import NOW, SITE, ago, aid, pid, uid

STATE = SimulatorState.from_dict(SITE, NOW)
USERS = list(STATE.users.values())
PROFESSIONAL = list(STATE.allocations["professionalaccesstype"].values())


def users(text: str) -> set[str]:
    compiled = compile_filter(text, USER_FIELDS)
    return {user["userId"] for user in USERS if compiled.predicate(user)}


def allocations(text: str) -> set[str]:
    compiled = compile_filter(text, ALLOCATION_FIELDS)
    return {a["id"] for a in PROFESSIONAL if compiled.predicate(a)}


ALL_USERS = {"sa_api", "jdoe", "o'brien", "björn", "admin1", "zoe", "åsa", "kai"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("userId eq 'jdoe'", {"jdoe"}),
        ("userId eq 'JDOE'", {"jdoe"}),  # case-insensitive
        ("userId ne 'jdoe'", ALL_USERS - {"jdoe"}),
        ("userDirectory sw 'E'", {"björn", "åsa"}),
        ("name ew 'müller'", {"zoe"}),
        ("name so 'o''b'", {"o'brien"}),  # '' is a quote
        ("userId eq 'o''brien'", {"o'brien"}),
        ("userId eq 'BJÖRN'", {"björn"}),  # non-ASCII folds too
        ("inactive eq true", {"o'brien"}),
        ("blacklisted eq true and removedExternally eq false", {"björn"}),
        ("removedExternally ne false", {"admin1"}),
        (f"id eq {uid(2)}", {"jdoe"}),
        (f"id eq {uid(2).upper()}", {"jdoe"}),
        (f"id eq '{uid(3)}'", {"o'brien"}),
        (f"id eq {uid(2)} or id eq {uid(6)} or id eq {uid(99)}", {"jdoe", "zoe"}),
        ("tags.name eq 'License do not release'", {"jdoe"}),
        ("tags.name eq 'R&D #1'", {"o'brien"}),
        ("tags.name so 'release' or tags.name sw 'r&d'", {"jdoe", "o'brien"}),
        ("customProperties.definition.name eq 'LicenseManage'", {"jdoe", "björn", "admin1"}),
        ("customProperties.value eq 'do-not-release'", {"jdoe", "admin1"}),
        # each comparison is an independent "any": admin1 has LicenseManage=review and
        # Department=do-not-release, and still matches (the client must check pairs itself)
        (
            "customProperties.definition.name eq 'LicenseManage' and customProperties.value eq 'do-not-release'",
            {"jdoe", "admin1"},
        ),
        (
            "userDirectory eq 'ACME' or userDirectory eq 'EU' and inactive eq true",
            {"jdoe", "o'brien", "zoe", "kai"},
        ),
        ("(userDirectory eq 'ACME' or userDirectory eq 'EU') and inactive eq true", {"o'brien"}),
        ("((userId eq 'kai'))", {"kai"}),
        ("createdDate gt '2026-03-01'", {"zoe", "åsa", "kai"}),
        (f"createdDate ge '{ago(days=50)}'", {"zoe", "åsa", "kai"}),
        (f"createdDate lt '{ago(days=300)}'", {"sa_api", "jdoe"}),
        (f"createdDate le '{ago(days=300)}'", {"sa_api", "jdoe", "o'brien"}),
        (f"createdDate eq '{ago(days=10)}'", {"kai"}),
        ("createdDate lt '2026-06-01T14:00:00+02:00'", ALL_USERS),  # offsets are honoured
        ("name eq null", set()),
        ("name ne null", ALL_USERS),
        ("tags.name eq null", set()),  # no tags: no element to match
        ("USERID EQ 'kai' AND INACTIVE EQ FALSE", {"kai"}),  # keywords and paths case-insensitive
        ("userId eq 'kai'or userId eq 'zoe'", {"kai", "zoe"}),  # a quote ends a word
    ],
)
def test_user_filters(text: str, expected: set[str]) -> None:
    assert users(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lastUsed eq null", {pid(3)}),
        ("lastUsed ne null", {pid(1), pid(2), pid(4), pid(5), pid(6)}),
        # the 1753 sentinel is an ordinary (very old) date
        (f"lastUsed le '{ago(days=30)}'", {pid(1), pid(4), pid(5)}),
        ("lastUsed lt '1800-01-01'", {pid(4)}),
        ("user eq null", {pid(5)}),
        ("user ne null", {pid(1), pid(2), pid(3), pid(4), pid(6)}),
        ("user.userDirectory eq 'acme'", {pid(2), pid(3)}),
        ("user.userDirectory eq null", {pid(5)}),
        (f"user.id eq {uid(1)}", {pid(1)}),
        ("deletedUserId eq 'leaver' and deletedUserDirectory eq 'ACME'", {pid(5)}),
        ("quarantined eq true", {pid(6)}),
        ("quarantineEnd gt '2026-06-02'", {pid(6)}),
        (
            f"quarantined eq false and lastUsed le '{ago(days=30)}' and user ne null",
            {pid(1), pid(4)},
        ),
        ("excess eq false", {pid(n) for n in range(1, 7)}),
    ],
)
def test_allocation_filters(text: str, expected: set[str]) -> None:
    assert allocations(text) == expected


def test_numbers() -> None:
    objects = [
        {"id": "a", "n": 1},
        {"id": "b", "n": 2.5},
        {"id": "c", "n": None},
        {"id": "d", "n": "2"},
    ]

    def ids(text: str) -> set[str]:
        compiled = compile_filter(text)
        return {o["id"] for o in objects if compiled.predicate(o)}

    assert ids("n eq 1") == {"a"}
    assert ids("n gt 1") == {"b"}
    assert ids("n ge 1") == {"a", "b"}
    assert ids("n lt 2.5") == {"a"}
    assert ids("n le -1") == set()
    assert ids("n ne 1") == {"b", "c", "d"}


def test_candidate_ids_pin_id_chains() -> None:
    chain = " or ".join(f"id eq {aid(n)}" for n in range(1, 4))
    assert compile_filter(chain).candidate_ids == {aid(1), aid(2), aid(3)}
    assert compile_filter(f"({chain}) and lastUsed eq null").candidate_ids == {
        aid(1),
        aid(2),
        aid(3),
    }
    assert compile_filter(f"{chain} or userId eq 'x'").candidate_ids is None
    assert compile_filter("userId eq 'x'").candidate_ids is None


def test_and_binds_tighter_than_or() -> None:
    tree = parse_filter("a eq 1 or b eq 2 and c eq 3")
    assert tree.operator == "or"  # type: ignore[union-attr]
    assert tree.operands[1].operator == "and"  # type: ignore[union-attr]


def test_tokenizer_keeps_quotes_and_specials() -> None:
    tokens = tokenize("name eq 'it''s #1 & (co)'")
    assert [t.kind for t in tokens] == ["word", "word", "string", "end"]
    assert tokens[2].text == "it's #1 & (co)"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "empty"),
        ("userId eq", "expected a value"),
        ("userId 'x'", "expected an operator"),
        ("userId is 'x'", "expected an operator"),
        ("userId eq 'x", "unterminated string"),
        ("userId eq x", "unquoted value"),
        ("(userId eq 'x'", "expected ')'"),
        ("userId eq 'x')", "unexpected ')'"),
        ("userId eq 'x' and", "expected a property"),
        ("userId eq 'x' userId eq 'y'", "unexpected 'userId'"),
        ("name gt 'x'", "cannot be used with strings"),
        ("name le 'x'", "cannot be used with strings"),
        ("createdDate le 'yesterday'", "not a date"),
        ("inactive gt true", "cannot compare"),
        ("name sw 1", "needs a quoted string"),
        ("nosuchfield eq 'x'", "unknown property 'nosuchfield'"),
        ("not userId eq 'x'", "expected an operator"),
        ("userId in ('a','b')", "expected an operator"),
    ],
)
def test_malformed_filters(text: str, detail: str) -> None:
    with pytest.raises(FilterError, match=detail.replace("(", r"\(").replace(")", r"\)")):
        compile_filter(text, USER_FIELDS)
