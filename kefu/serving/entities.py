"""Rule-based extraction: order ids, tracking numbers, phone numbers, amounts, and whether a
message asks for a human. Rules, not the model, because these are formats, not meanings, and
routing must honour "转人工" even when the intent head names the concrete request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Order of patterns matters: earlier kinds claim their span first.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("phone", re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)")),
    (
        "tracking_number",
        re.compile(
            r"(?<![A-Za-z0-9])(?:SF|YT|JD|JDV|ZTO|YD|STO|EMS|DPK|JT)[A-Z]?\d{9,16}(?!\d)", re.I
        ),
    ),
    ("order_id", re.compile(r"\[订单[^\[\]\s]{0,8}\]|(?<![\d.])\d{10,20}(?![\d.])")),
    (
        "amount",
        re.compile(
            r"\[金额[^\[\]\s]{0,8}\]|[¥￥]\s?\d+(?:\.\d{1,2})?"
            r"|(?<![\d.])\d+(?:\.\d{1,2})?\s?(?:元|块钱|块|rmb|RMB)"
        ),
    ),
)

_HUMAN_REQUEST = re.compile(
    r"转?(?:人工|仁工|人公)(?:客服|服务)?|真人|活人|找个人|找客服本人|人类客服|real person|human",
    re.I,
)
# "人工客服态度太差了" talks about a human agent without asking for one.
_HUMAN_NOT_ASKED = re.compile(r"(?:人工|真人)(?:客服)?(?:的)?(?:态度|服务态度|太差|骂|不理)")


@dataclass(frozen=True)
class Entity:
    kind: str
    text: str
    start: int
    end: int  # exclusive, in characters of the original text


def find_entities(text: str) -> list[Entity]:
    """Non-overlapping entities in text order."""
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append(Entity(kind, match.group(0), start, end))
    return sorted(found, key=lambda entity: entity.start)


def asks_for_human(text: str) -> bool:
    if not _HUMAN_REQUEST.search(text):
        return False
    return not _HUMAN_NOT_ASKED.search(text)
