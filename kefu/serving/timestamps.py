"""Message times as exports write them, read once for both uses: `kefu score --time-col` orders
a conversation's turns by them and `kefu report --time-col` counts messages per day.

Support logs come from many tools, so one reader takes what they write: datetimes, ISO
strings with `-` or `/` (2024-03-01 10:00:05, 2024/03/01T10:00+08:00), the same without
leading zeros as a spreadsheet exports them (2024/3/1 9:58), Chinese dates (2024年3月1日 10:00,
2024年3月1日10点30分), and epoch seconds or milliseconds as numbers or text, with a fraction or
without (`time.time()` logs). Two readers that disagreed would order a conversation by one
reading and count its day by another.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any


def moment(value: Any) -> datetime | None:
    """The datetime `value` writes: naive when it names no zone (the day and hour as written),
    in UTC for epoch numbers (an epoch carries no zone of its own). None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    epoch = _EPOCH_TEXT.fullmatch(text)
    if epoch is not None:
        return _from_epoch(float(text) if epoch.group(1) else int(text))
    try:
        return datetime.fromisoformat(_iso(text))
    except ValueError:
        return None


def epoch_seconds(value: Any) -> float | None:
    """`value` as epoch seconds, for ordering; a time without a zone is read as UTC (all rows of
    one export share their zone, so the order is the same)."""
    found = moment(value)
    if found is None:
        return None
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).timestamp()


def calendar_day(value: Any) -> date | None:
    """The day `value` falls on as written (2024-03-01T23:59+08:00 is 1 March), in UTC for
    epochs."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    found = moment(value)
    if found is not None:
        return found.date()
    # A day needs only the date: 2024.3.1, or a time in a form no order is read from.
    loose = _LOOSE_DATE.match(value.strip()) if isinstance(value, str) else None
    try:
        return None if loose is None else date(*(int(part) for part in loose.groups()))
    except ValueError:
        return None


def _from_epoch(value: float) -> datetime | None:
    try:
        seconds = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    if not math.isfinite(seconds):
        return None
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# Epoch seconds (10 digits) or milliseconds (13), as `time.time()` logs them: maybe a fraction.
_EPOCH_TEXT = re.compile(r"(?:[0-9]{10}|[0-9]{13})(\.[0-9]+)?", re.ASCII)
# The date and hour as a spreadsheet writes them without leading zeros: Excel on Chinese
# Windows exports 2024/3/1 9:58 for 2024-03-01 09:58. Left unpadded, only some rows of a day
# (2024/10/12 10:01, not 2024/10/12 9:59) would read, and a session's turns would be reordered.
_DATE_TIME = re.compile(
    r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})(?:([ T])([0-9]{1,2})(?=:))?", re.ASCII
)
_LOOSE_DATE = re.compile(
    r"([0-9]{4})[^0-9]{1,3}([0-9]{1,2})[^0-9]{1,3}([0-9]{1,2})(?![0-9])", re.ASCII
)
# A Chinese date, maybe with a time: 2024年3月1日, 2024年3月1日 10:00:05, 2024年3月1日10点30分.
_CHINESE = re.compile(
    r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})[日号]"
    r"(?:\s*([0-9]{1,2})(?:[:：]([0-9]{1,2})(?:[:：]([0-9]{1,2}))?|[点时](?:([0-9]{1,2})分)?))?",
    re.ASCII,
)


def _iso(text: str) -> str:
    """`text` in the form `datetime.fromisoformat` reads: 2024/3/1 9:58 -> 2024-03-01 09:58,
    2024年3月1日10点30分 -> 2024-03-01 10:30."""
    chinese = _CHINESE.fullmatch(text)
    if chinese is not None:
        year, month, day, hour, minute, second, minute_cn = chinese.groups()
        written = f"{year}-{int(month):02d}-{int(day):02d}"
        if hour is not None:
            written += (
                f" {int(hour):02d}:{int(minute or minute_cn or 0):02d}:{int(second or 0):02d}"
            )
        return written
    found = _DATE_TIME.match(text)
    if found is None:
        return text
    year, month, day, separator, hour = found.groups()
    padded = f"{year}-{int(month):02d}-{int(day):02d}"
    if hour is not None:
        padded += f"{separator}{int(hour):02d}"
    return padded + text[found.end() :]
