"""Schedule text: every supported form, later.js's clock alignment in UTC, and rejections."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.schedule import SUPPORTED_FORMS, Frequency, ScheduleError, parse_frequency

UTC = timezone.utc


def at(text: str) -> datetime:
    """``2026-03-05 13:07:22`` -> aware UTC datetime (2026-03-05 is a Thursday)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


AFTER = at("2026-03-05 13:07:22")


def runs(text: str, count: int = 4, after: datetime = AFTER) -> list[str]:
    return [
        m.strftime("%a %Y-%m-%d %H:%M:%S") for m in parse_frequency(text).next_runs(after, count)
    ]


# --------------------------------------------------------------------------- every N units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The seed's defaults: clock-aligned, not "N hours after start".
        (
            "every 6 hours",
            [
                "Thu 2026-03-05 18:00:00",
                "Fri 2026-03-06 00:00:00",
                "Fri 2026-03-06 06:00:00",
                "Fri 2026-03-06 12:00:00",
            ],
        ),
        (
            "every 24 hours",
            [
                "Fri 2026-03-06 00:00:00",
                "Sat 2026-03-07 00:00:00",
                "Sun 2026-03-08 00:00:00",
                "Mon 2026-03-09 00:00:00",
            ],
        ),
        (
            "every 5 mins",
            [
                "Thu 2026-03-05 13:10:00",
                "Thu 2026-03-05 13:15:00",
                "Thu 2026-03-05 13:20:00",
                "Thu 2026-03-05 13:25:00",
            ],
        ),
        (
            "every 15 seconds",
            [
                "Thu 2026-03-05 13:07:30",
                "Thu 2026-03-05 13:07:45",
                "Thu 2026-03-05 13:08:00",
                "Thu 2026-03-05 13:08:15",
            ],
        ),
        # later.js: hours divisible by 7 within the day, so the last gap is 3 hours.
        (
            "every 7 hours",
            [
                "Thu 2026-03-05 14:00:00",
                "Thu 2026-03-05 21:00:00",
                "Fri 2026-03-06 00:00:00",
                "Fri 2026-03-06 07:00:00",
            ],
        ),
        # later.js: no minute of the hour but 0 is divisible by 90: hourly at :00.
        (
            "every 90 minutes",
            [
                "Thu 2026-03-05 14:00:00",
                "Thu 2026-03-05 15:00:00",
                "Thu 2026-03-05 16:00:00",
                "Thu 2026-03-05 17:00:00",
            ],
        ),
        # Days of the month 1, 3, ..., 31: across a 31-day month end the gap is one day.
        (
            "every 2 days",
            [
                "Sat 2026-03-07 00:00:00",
                "Mon 2026-03-09 00:00:00",
                "Wed 2026-03-11 00:00:00",
                "Fri 2026-03-13 00:00:00",
            ],
        ),
        (
            "every 1 day",
            [
                "Fri 2026-03-06 00:00:00",
                "Sat 2026-03-07 00:00:00",
                "Sun 2026-03-08 00:00:00",
                "Mon 2026-03-09 00:00:00",
            ],
        ),
    ],
)
def test_every_n_units_is_clock_aligned_in_utc(text: str, expected: list[str]) -> None:
    assert runs(text) == expected


@pytest.mark.parametrize(
    ("text", "unit_values"),
    [
        ("every 1 sec", ("seconds", tuple(range(60)))),
        ("every 10 secs", ("seconds", (0, 10, 20, 30, 40, 50))),
        ("every 30 second", ("seconds", (0, 30))),
        ("every 20 seconds", ("seconds", (0, 20, 40))),
        ("every 1 min", ("minutes", tuple(range(60)))),
        ("every 10 mins", ("minutes", (0, 10, 20, 30, 40, 50))),
        ("every 30 minute", ("minutes", (0, 30))),
        ("every 15 minutes", ("minutes", (0, 15, 30, 45))),
        ("every 1 hour", ("hours", tuple(range(24)))),
        ("every 8 hours", ("hours", (0, 8, 16))),
        ("every 12 hrs", ("hours", (0, 12))),
        ("every 7 day", ("days_of_month", (1, 8, 15, 22, 29))),
        ("every 10 days", ("days_of_month", (1, 11, 21, 31))),
    ],
)
def test_every_accepts_each_unit_spelling(
    text: str, unit_values: tuple[str, tuple[int, ...]]
) -> None:
    field, values = unit_values
    assert getattr(parse_frequency(text), field) == values


def test_case_and_whitespace_do_not_matter() -> None:
    assert runs("  Every   6   HOURS ") == runs("every 6 hours")


def test_every_31_days_is_monthly_and_handles_february() -> None:
    assert runs("every 31 days", 3, at("2026-01-15 00:00:00")) == [
        "Sun 2026-02-01 00:00:00",
        "Sun 2026-03-01 00:00:00",
        "Wed 2026-04-01 00:00:00",
    ]


def test_every_2_days_skips_the_31st_in_a_30_day_month() -> None:
    # April has 30 days: ... 27, 29, then 1 May.
    assert runs("every 2 days", 3, at("2026-04-28 12:00:00")) == [
        "Wed 2026-04-29 00:00:00",
        "Fri 2026-05-01 00:00:00",
        "Sun 2026-05-03 00:00:00",
    ]


def test_next_run_is_strictly_after_even_on_a_fire_time() -> None:
    f = parse_frequency("every 6 hours")
    assert f.next_run(at("2026-03-05 12:00:00")) == at("2026-03-05 18:00:00")
    assert f.next_run(at("2026-03-05 11:59:59")) == at("2026-03-05 12:00:00")


def test_naive_and_other_timezones_are_read_as_the_same_instant() -> None:
    f = parse_frequency("every 6 hours")
    cet = timezone(timedelta(hours=1))
    # 13:30 in UTC+1 is 12:30 UTC: the next fire is 18:00 UTC.
    assert f.next_run(datetime(2026, 3, 5, 13, 30, tzinfo=cet)) == at("2026-03-05 18:00:00")
    assert f.next_run(datetime(2026, 3, 5, 12, 30)) == at("2026-03-05 18:00:00")
    assert f.next_run(datetime(2026, 3, 5, 12, 30)).tzinfo == UTC


def test_year_end_rollover() -> None:
    assert runs("every 6 hours", 2, at("2026-12-31 23:59:59")) == [
        "Fri 2027-01-01 00:00:00",
        "Fri 2027-01-01 06:00:00",
    ]


# --------------------------------------------------------------------------- at / on / every day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 02:30", ["Fri 2026-03-06 02:30:00", "Sat 2026-03-07 02:30:00"]),
        ("at 2:30", ["Fri 2026-03-06 02:30:00", "Sat 2026-03-07 02:30:00"]),
        ("at 13:10", ["Thu 2026-03-05 13:10:00", "Fri 2026-03-06 13:10:00"]),
        ("at 7:00 pm", ["Thu 2026-03-05 19:00:00", "Fri 2026-03-06 19:00:00"]),
        ("at 7:00pm", ["Thu 2026-03-05 19:00:00", "Fri 2026-03-06 19:00:00"]),
        ("at 7pm", ["Thu 2026-03-05 19:00:00", "Fri 2026-03-06 19:00:00"]),
        ("at 11:45 am", ["Fri 2026-03-06 11:45:00", "Sat 2026-03-07 11:45:00"]),
        # 12 am is midnight and 12 pm noon (later.js itself reads 12:xx am as noon: a bug).
        ("at 12:30 am", ["Fri 2026-03-06 00:30:00", "Sat 2026-03-07 00:30:00"]),
        ("at 12:30 pm", ["Fri 2026-03-06 12:30:00", "Sat 2026-03-07 12:30:00"]),
        ("every day at 23:59", ["Thu 2026-03-05 23:59:00", "Fri 2026-03-06 23:59:00"]),
        ("every day", ["Fri 2026-03-06 00:00:00", "Sat 2026-03-07 00:00:00"]),
        # Thursday 5 March: the next weekdays are Fri, then Mon (not Sat/Sun).
        ("every weekday at 07:00", ["Fri 2026-03-06 07:00:00", "Mon 2026-03-09 07:00:00"]),
        ("every weekday at 3:15 pm", ["Thu 2026-03-05 15:15:00", "Fri 2026-03-06 15:15:00"]),
        ("on sunday at 03:00", ["Sun 2026-03-08 03:00:00", "Sun 2026-03-15 03:00:00"]),
        ("on sun at 03:00", ["Sun 2026-03-08 03:00:00", "Sun 2026-03-15 03:00:00"]),
        ("on Thursday at 13:00", ["Thu 2026-03-12 13:00:00", "Thu 2026-03-19 13:00:00"]),
        ("on thursday at 14:00", ["Thu 2026-03-05 14:00:00", "Thu 2026-03-12 14:00:00"]),
        ("on tues at 9:00", ["Tue 2026-03-10 09:00:00", "Tue 2026-03-17 09:00:00"]),
        ("on mon, wed and fri at 06:00", ["Fri 2026-03-06 06:00:00", "Mon 2026-03-09 06:00:00"]),
        ("at 06:00 on saturday", ["Sat 2026-03-07 06:00:00", "Sat 2026-03-14 06:00:00"]),
        ("on saturday", ["Sat 2026-03-07 00:00:00", "Sat 2026-03-14 00:00:00"]),
    ],
)
def test_time_of_day_forms(text: str, expected: list[str]) -> None:
    assert runs(text, 2) == expected


@pytest.mark.parametrize(
    "day",
    [
        "monday",
        "mon",
        "tuesday",
        "tue",
        "wednesday",
        "wed",
        "thursday",
        "thu",
        "thurs",
        "friday",
        "fri",
        "saturday",
        "sat",
        "sunday",
        "sun",
    ],
)
def test_every_weekday_name_and_abbreviation(day: str) -> None:
    f = parse_frequency(f"on {day} at 10:00")
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert f.weekdays == (names.index(day[:3]),)
    assert f.next_run(AFTER).strftime("%a").lower() == day[:3]


def test_frequency_is_a_frozen_value() -> None:
    f = parse_frequency("every 6 hours")
    assert isinstance(f, Frequency)
    assert f == parse_frequency("every 6 hours")
    with pytest.raises(AttributeError):
        f.hours = (1,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("every 6 hours", "every day at 00:00, 06:00, 12:00, 18:00 UTC"),
        ("every 24 hours", "every day at 00:00 UTC"),
        ("every 5 mins", "at minutes :00, :05, :10, ..., :55 of every hour"),
        ("every weekday at 07:00", "Monday to Friday at 07:00 UTC"),
        ("on sunday at 03:00", "on Sunday at 03:00 UTC"),
        ("every 15 seconds", "at seconds 00, 15, 30, 45 of every minute"),
    ],
)
def test_describe(text: str, words: str) -> None:
    assert parse_frequency(text).describe() == words


@pytest.mark.parametrize(
    ("text", "note_part"),
    [
        ("every 90 minutes", "fires once every hour, at minute 0, not every 90 minutes"),
        ("every 7 hours", "so the last gap is 3 hours"),
        ("every 48 hours", "for every 2 days write 'every 2 days'"),
        ("every 2 days", "on days 1, 3, 5, ..., 31 of each month"),
    ],
)
def test_surprising_later_js_alignment_comes_with_a_note(text: str, note_part: str) -> None:
    note = parse_frequency(text).note
    assert note is not None and note_part in note


@pytest.mark.parametrize(
    "text", ["every 6 hours", "every 24 hours", "every 5 mins", "every 60 minutes", "at 02:00"]
)
def test_regular_schedules_have_no_note(text: str) -> None:
    assert parse_frequency(text).note is None


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("every 6 hourz", "'hourz' is not a unit the agent knows"),
        ("every six hours", "after 'every' comes a number, 'day' or 'weekday', not 'six'"),
        ("every 0 hours", "must be at least 1"),
        ("every 6", "'every 6' needs a unit"),
        ("every 2 weeks", "'weeks' is not a unit the agent knows"),
        ("at 25:00", "hours go from 00 to 23"),
        ("at 10:61", "minutes go from 00 to 59"),
        ("at 13:00 pm", "with am/pm the hour goes from 1 to 12"),
        ("at 10", "'10' is not a time"),
        ("at noon", "'noon' is not a time"),
        ("on funday at 10:00", "'funday' is not a weekday"),
        ("*/5 * * * *", "cron expressions are not supported"),
        ("0 */6 * * *", "cron expressions are not supported"),
        ("every 5 minutes at 10:00", "cannot be combined with 'at' or 'on'"),
        ("every day on monday", "contradict each other"),
        ("every weekday on monday", "contradict each other"),
        ("every 6 hours every 2 hours", "repeats a part already given"),
        ("at 10:00 at 11:00", "repeats a part already given"),
        ("hourly", "cannot read 'hourly'"),
        ("", "it is empty"),
        ("   ", "it is empty"),
    ],
)
def test_unsupported_text_is_rejected_with_the_reason_and_the_forms(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_frequency(text)
    message = str(info.value)
    assert reason in message
    assert SUPPORTED_FORMS in message
    assert repr(text) in message


def test_schedule_error_is_a_value_error_and_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="a schedule is text"):
        parse_frequency(6)  # type: ignore[arg-type]


def test_supported_forms_list_every_form() -> None:
    for form in (
        "every N seconds|minutes|hours|days",
        "at HH:MM",
        "every day at HH:MM",
        "every weekday at HH:MM",
        "on <weekday> at HH:MM",
        "am/pm",
        "UTC",
    ):
        assert form in SUPPORTED_FORMS
