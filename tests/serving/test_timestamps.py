"""One reader of message times for ordering turns (`kefu score --time-col`) and for counting
days (`kefu report --time-col`)."""

import time
from datetime import UTC, date, datetime

import pytest

from kefu.serving.timestamps import calendar_day, epoch_seconds


def _utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01 10:00:05", _utc(2024, 3, 1, 10, 0, 5)),
        ("2024/03/01T10:00:05+08:00", _utc(2024, 3, 1, 2, 0, 5)),
        (1709287205, 1709287205.0),
        ("1709287205000", 1709287205.0),
        (1709287205.25, 1709287205.25),  # time.time() as a number
        (946684800000, 946684800.0),  # milliseconds of 2000, below 1e12: still milliseconds
        (datetime(2024, 3, 1, 10, 0, 5), _utc(2024, 3, 1, 10, 0, 5)),
        (date(2024, 3, 1), _utc(2024, 3, 1)),
        ("2024/3/1 9:58", _utc(2024, 3, 1, 9, 58)),
        ("2024-3-1 9:58:07+08:00", _utc(2024, 3, 1, 1, 58, 7)),
        ("2024/3/1T9:58+08:00", _utc(2024, 3, 1, 1, 58)),
        ("2024/3/1", _utc(2024, 3, 1)),
        ("1709287205.25", 1709287205.25),
        ("1709287205250.0", 1709287205.25),
        ("2024年3月1日", _utc(2024, 3, 1)),
        ("2024年3月1日 10:00", _utc(2024, 3, 1, 10)),
        ("2024年3月1日 9:58:07", _utc(2024, 3, 1, 9, 58, 7)),
        ("2024年3月1日10点", _utc(2024, 3, 1, 10)),
        ("2024年3月1日 10点30分", _utc(2024, 3, 1, 10, 30)),
        ("2024年3月1号 10：30", _utc(2024, 3, 1, 10, 30)),  # full-width colon, as typed
        ("2024年13月1日", None),
        ("2024年3月1日 25:00", None),
        ("2024-13-01 10:00", None),
        ("12345678901.5", None),
        ("yesterday", None),
        ("²²²²²²²²²²", None),  # digits to str.isdigit, not to float
        (10**400, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        (None, None),
    ],
)
def test_epoch_seconds(value, expected):
    assert epoch_seconds(value) == expected


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("2024-03-01 10:00:00", date(2024, 3, 1)),
        ("2024-03-01T23:59:59+08:00", date(2024, 3, 1)),  # the day as written, not in UTC
        ("2024-03-01T01:00:00+08:00", date(2024, 3, 1)),  # 29 February in UTC
        ("2024/3/1 10:00", date(2024, 3, 1)),
        ("2024/03/01", date(2024, 3, 1)),
        ("2024年3月1日 10点", date(2024, 3, 1)),
        ("2024年3月1日 10:00", date(2024, 3, 1)),
        ("2024.3.1", date(2024, 3, 1)),  # a day needs only the date
        ("2024.3.1 上午10点", date(2024, 3, 1)),
        ("2024.13.1", None),
        ("2024.3.123", None),  # not 12 March
        (1709251200, date(2024, 3, 1)),
        ("1709251200000", date(2024, 3, 1)),
        ("1709251200.5", date(2024, 3, 1)),
        (date(2024, 3, 1), date(2024, 3, 1)),
        ("yesterday", None),
        ("²²²²²²²²²²", None),
        (10**400, None),
        (float("inf"), None),
        (None, None),
    ],
)
def test_calendar_day(value, day):
    assert calendar_day(value) == day


@pytest.mark.parametrize(
    "value",
    ["2024/3/1 23:58", "2024年3月1日 23:58", "1709337480", "1709337480123.5", "2024-03-01T23:58"],
)
def test_a_time_that_orders_a_turn_counts_on_the_same_day(value):
    seconds = epoch_seconds(value)
    assert seconds is not None
    assert calendar_day(value) == datetime.fromtimestamp(seconds, tz=UTC).date() == date(2024, 3, 1)


def test_a_time_without_a_zone_is_read_as_utc_whatever_the_machine_zone(monkeypatch):
    # A naive time and an epoch number in one export order alike on a server set to Beijing time.
    monkeypatch.setenv("TZ", "CST-8")
    time.tzset()
    try:
        assert epoch_seconds("2024-03-01 10:00:05") == _utc(2024, 3, 1, 10, 0, 5)
        assert epoch_seconds(datetime(2024, 3, 1, 10, 0, 5)) == _utc(2024, 3, 1, 10, 0, 5)
    finally:
        monkeypatch.undo()
        time.tzset()
