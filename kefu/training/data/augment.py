"""Seeded, label-preserving augmentation of hand-written messages.

Each operation changes only what cannot change a label: the surface of placeholders, an entity
for another of its kind, typos and homophones, punctuation and emoji that match the message's
emotion, an opener or closer with no request in it, a menu chip or order card of the message's
own topic, or a second, calmer and less urgent request (the label stays with the request that
most needs action, as the taxonomy's rule for several requests says).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 120
HUMAN_SHARE = 0.35  # how often the "human" operation applies when drawn
# Groups whose messages concern an existing order: an order card fits them.
ORDER_GROUPS = {"order", "logistics", "after_sale"}
PLACEHOLDER = re.compile(r"\[(?:订单|数字|金额|链接|电话|姓名|地址|日期|时间|站点)x\]")
FILL = re.compile(r"\{(digits|alnum):(\d+)\}|\{amount\}|\{digit3to9\}")
END_PUNCT = "。！？!?~，,."
EMOTION_MARKS = {
    "anxious": ["？？", "啊啊啊", "，急", "！！", " 急急急"],
    "dissatisfied": ["？？？", "。。。", "…"],
    "angry": ["！！！", "!!!"],
}


@dataclass(frozen=True)
class Message:
    text: str
    intent: str
    urgency: str
    emotion: str
    group: str
    family: str
    hard_negative: bool = False


def fill_template(template: str, rng: random.Random) -> str:
    """Expand {digits:n}, {alnum:n}, {amount}, {digit3to9} in a placeholder variant."""

    def expand(match: re.Match[str]) -> str:
        kind, size = match.group(1), match.group(2)
        if kind == "digits":
            return "".join(rng.choice(string.digits) for _ in range(int(size)))
        if kind == "alnum":
            return "".join(
                rng.choice(string.ascii_letters + string.digits) for _ in range(int(size))
            )
        if match.group(0) == "{amount}":
            return rng.choice(
                ["9.9", "19.9", "39", "59", "99", "128", "199", "299.5", "1299", "3999"]
            )
        return rng.choice("3456789")

    return FILL.sub(expand, template)


class Augmenter:
    """Applies one to three operations to a message; returns None when nothing applies."""

    def __init__(self, lexicon: dict[str, Any], urgency_order: Sequence[str]):
        self.lexicon = lexicon
        # the taxonomy lists urgency from least to most urgent
        self.urgency_rank = {urgency: rank for rank, urgency in enumerate(urgency_order)}
        self.swap_classes = [words for words in lexicon["swaps"].values()]
        self.operations: dict[str, Callable[[Message, random.Random], str | None]] = {
            "placeholder": self.placeholder,
            "swap": self.swap,
            "typo": self.typo,
            "punct": self.punct,
            "emoji": self.emoji,
            "opener": self.opener,
            "closer": self.closer,
            "chip": self.chip,
            "card": self.card,
            "human": self.human,
        }

    def variant(self, message: Message, rng: random.Random) -> tuple[str, list[str]] | None:
        names = list(self.operations)
        rng.shuffle(names)
        wanted = rng.choice([1, 1, 2, 2, 3])
        text, applied = message.text, list[str]()
        for name in names:
            if len(applied) == wanted:
                break
            changed = self.operations[name](Message(**{**message.__dict__, "text": text}), rng)
            if changed and changed != text and len(changed) <= MAX_CHARS:
                text, applied = changed, [*applied, name]
        return (text, applied) if applied else None

    def combine(self, first: Message, second: Message, rng: random.Random) -> str | None:
        """Two requests in one message; `second` must be calmer and less urgent than `first`."""
        # A concrete request plus "转人工" takes the request's intent, so human_agent never leads.
        if not (
            first.intent not in ("human_agent", "greeting", "other")
            and self.urgency_rank[second.urgency] < self.urgency_rank[first.urgency]
            and second.emotion == "neutral"
            and second.intent not in (first.intent, "human_agent", "complaint", "greeting", "other")
        ):
            return None
        joiner = rng.choice(["，", " ", "。还有", "，另外", "  ", "；"])
        parts = [first.text.rstrip(END_PUNCT), second.text.rstrip(END_PUNCT)]
        if rng.random() < 0.5:
            parts.reverse()
        text = joiner.join(parts)
        return text if len(text) <= MAX_CHARS else None

    # --- operations -------------------------------------------------------------------------
    def placeholder(self, message: Message, rng: random.Random) -> str | None:
        if not PLACEHOLDER.search(message.text):
            return None
        variants = self.lexicon["placeholders"]
        return PLACEHOLDER.sub(
            lambda m: fill_template(rng.choice(variants[m.group(0)]), rng), message.text
        )

    def swap(self, message: Message, rng: random.Random) -> str | None:
        options = [
            (word, words) for words in self.swap_classes for word in words if word in message.text
        ]
        if not options:
            return None
        word, words = rng.choice(options)
        return message.text.replace(word, rng.choice([w for w in words if w != word]), 1)

    def typo(self, message: Message, rng: random.Random) -> str | None:
        options = [
            (written, typed) for written, typed in self.lexicon["typos"] if written in message.text
        ]
        if not options:
            return None
        written, typed = rng.choice(options)
        return message.text.replace(written, typed, 1)

    def punct(self, message: Message, rng: random.Random) -> str | None:
        text = message.text
        marks = EMOTION_MARKS.get(message.emotion)
        choice = rng.random()
        if marks and choice < 0.5:
            return text.rstrip(END_PUNCT) + rng.choice(marks)
        if choice < 0.75:
            stripped = re.sub(r"[，。,、；]", " ", text).rstrip(END_PUNCT + " ")
            return re.sub(r" +", " ", stripped) or None
        return text.rstrip(END_PUNCT) + rng.choice(["", " ", "~", "。", "哈"])

    def emoji(self, message: Message, rng: random.Random) -> str | None:
        pool = self.lexicon["emoji"][message.emotion]
        mark = rng.choice(pool) * rng.choice([1, 1, 2])
        return f"{mark}{message.text}" if rng.random() < 0.2 else f"{message.text}{mark}"

    def opener(self, message: Message, rng: random.Random) -> str | None:
        # "你好 + an unclear fragment" is ambiguous between greeting and other: leave `other` alone.
        if message.intent == "other" or message.emotion == "angry":
            return None
        return f"{rng.choice(self.lexicon['openers'])}{rng.choice(['', ' ', '，'])}{message.text}"

    def closer(self, message: Message, rng: random.Random) -> str | None:
        # A polite closer after an insult reads as sarcasm: only calm messages get one.
        if message.emotion not in ("neutral", "positive", "anxious") or message.intent == "other":
            return None
        return f"{message.text.rstrip(END_PUNCT)}{rng.choice(['，', ' ', '。'])}{rng.choice(self.lexicon['closers'])}"

    def chip(self, message: Message, rng: random.Random) -> str | None:
        chips = self.lexicon["chips"].get(message.group)
        if not chips:
            return None
        return f"{rng.choice(chips)}{rng.choice([' ', '', '：', '  '])}{message.text}"

    def human(self, message: Message, rng: random.Random) -> str | None:
        # "A concrete request plus 转人工: the intent is the concrete request" (taxonomy rule);
        # without these rows a model learns that any 人工 means human_agent.
        if message.intent in ("human_agent", "greeting", "other") or rng.random() > HUMAN_SHARE:
            return None
        ask = rng.choice(self.lexicon["human_requests"])
        if rng.random() < 0.3:
            return f"{ask}{rng.choice([' ', '，'])}{message.text}"
        return f"{message.text.rstrip(END_PUNCT)}{rng.choice([' ', '，', '。'])}{ask}"

    def card(self, message: Message, rng: random.Random) -> str | None:
        if message.group not in ORDER_GROUPS or "[订单" in message.text:
            return None
        card = rng.choice(self.lexicon["order_cards"])
        return f"{card} {message.text}" if rng.random() < 0.7 else f"{message.text} {card}"
