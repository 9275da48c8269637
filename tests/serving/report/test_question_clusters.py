"""Repeated-question clustering: the counts of many spellings, making room, the bigram hash, the
normalising."""

from __future__ import annotations

import hashlib
import random
import unicodedata
import zlib

import numpy as np
import pytest

from kefu.serving.report.aggregate import ReportData
from kefu.serving.report.clusters import _NOT_KEPT, MAX_FORMS, QuestionCounter
from kefu.serving.report.near_duplicates import _CHAR_BITS, _crc32
from kefu.serving.report.render import Labels, render


def spellings(seed: int = 11, questions: int = 300, messages: int = 50_000):
    """(text, question, intent) of each message: one of `questions` questions in its own
    spelling (a filler, a name, a typo, an order number, punctuation), a few asked most."""
    rng = random.Random(seed)
    pool = [chr(0x4E00 + rng.randrange(3000)) for _ in range(400)]  # shared: chance collisions
    stems = ["".join(rng.choices(pool, k=rng.randint(8, 20))) for _ in range(questions)]
    fillers = ["", "请问", "你好", "麻烦", "亲", "在吗", "急", "谢谢", "啊", "呢"]
    marks = ["", "？", "?", "！！", "。", " ", "~", "😊", "…"]
    rows = []
    for _ in range(messages):
        question = min(int(rng.paretovariate(1.2)) - 1, questions - 1)
        stem = list(stems[question])
        if rng.random() < 0.3:
            stem[rng.randrange(len(stem))] = rng.choice(pool)
        name = "".join(chr(0x4E00 + rng.randrange(20_000)) for _ in range(rng.randint(0, 3)))
        order = f" 订单{rng.randrange(10**9)}" if rng.random() < 0.4 else ""
        parts = [rng.choice(fillers), "".join(stem), name, rng.choice(marks), order]
        text = "".join(parts) + rng.choice(fillers) + rng.choice(marks)
        intent = f"intent{question % 7}" if rng.random() < 0.9 else "other"
        rows.append((text, question, intent))
    return rows


# Recorded with the clustering that looped over bands x forms in Python with a bigram `set`
# per checked form (before the array version), given the forms by count, ties by form: every
# cluster must count the same. The top five's messages; clusters, messages in them, messages
# pruned; a digest of every cluster's messages, variants, question of its example, intent and
# its share.
BEFORE = {
    MAX_FORMS: ([22354, 8317, 3857, 2207, 1211], 299, 42541, 0, "fa06f229b6dc786c"),
    5_000: (
        [21518, 8194, 3780, 2164, 1157],
        111,
        40431,
        9129,
        "44e8d283d4e4abaa",
    ),  # pruned many times
}


@pytest.mark.parametrize("max_forms", list(BEFORE))
def test_many_spellings_count_as_before(max_forms):
    rows = spellings()
    question_of = {" ".join(text.split()): question for text, question, _ in rows}
    counter = QuestionCounter(max_forms)
    for text, _, intent in rows:
        counter.add(text, intent)
    every = counter.top(10**6)
    clusters = [
        (c.count, c.variants, question_of[c.example], c.intent, round(c.intent_share, 3))
        for c in every
    ]
    digest = hashlib.sha256(repr(clusters).encode()).hexdigest()[:16]
    messages = sum(c.count for c in every)
    top = [c.count for c in every[:5]]
    assert (top, len(every), messages, counter.pruned, digest) == BEFORE[max_forms]


def test_bigram_hash_is_zlib_crc32_of_the_utf8_bytes():
    """Band keys hash each bigram as `zlib.crc32(bigram.encode())` did: characters of one to
    four UTF-8 bytes, alone (a one-character form) or in pairs."""
    chars = [chr(c) for c in (0x23, 0x61, 0x7F, 0x80, 0x7FF, 0x800, 0x4E00, 0xFFFF, 0x10000)]
    grams = chars + [a + b for a in chars for b in [*chars, chr(0x10FFFF)]]
    codes = np.array(
        [sum(ord(ch) << (_CHAR_BITS * k) for k, ch in enumerate(g[::-1])) for g in grams]
    )
    assert _crc32(codes).tolist() == [zlib.crc32(gram.encode("utf-8")) for gram in grams]


def test_normalising_keeps_exactly_letters_numbers_and_hash_signs():
    """One regex drops what a test of each character's Unicode category dropped, on every
    code point."""
    everything = "".join(map(chr, range(0x110000)))
    kept = "".join(ch for ch in everything if ch == "#" or unicodedata.category(ch)[0] in "LN")
    assert _NOT_KEPT.sub("", everything) == kept


def test_making_room_keeps_the_busiest_half_and_counts_the_messages_it_drops():
    """Ten unrelated questions, the i-th asked i + 2 times, fill room for ten forms: an
    eleventh form keeps the five busiest (asked 7 to 11 times) and drops 2 + 3 + 4 + 5 + 6
    messages, as the page says."""
    counter = QuestionCounter(max_forms=10)
    for i in range(10):
        for _ in range(i + 2):
            counter.add(f"{chr(0x4E00 + i)}{chr(0x5E00 + i)}{chr(0x6E00 + i)}", "other")
    counter.add("另一个问题", "other")
    assert sorted(form.count for form in counter.forms.values()) == [1, 7, 8, 9, 10, 11]
    assert counter.pruned == 20
    data = ReportData(rows=66, questions=counter)
    page = render(data, title="t", top_n=10, period="auto", labels=Labels(None, cjk=False))
    assert " 20 messages whose text matched no other one in memory were dropped" in page
