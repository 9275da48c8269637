"""Values quoted in error messages: cut to PREVIEW_CHARS between whole characters and whole
escapes, with "…" where the cut is."""

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.serving.preview import PREVIEW_CHARS, cut, preview

FAMILY = (
    "👨\u200d👩\u200d👧"  # one character on screen, five code points (repr escapes the joiners)
)
FAMILY_SHOWN = "👨\\u200d👩\\u200d👧"  # 15 characters of repr
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # 🏴 + tags


def test_a_short_value_is_its_repr():
    assert preview("在吗") == "'在吗'"
    assert preview(["a", 1]) == "['a', 1]"
    assert preview("x" * (PREVIEW_CHARS - 2)) == repr("x" * (PREVIEW_CHARS - 2))


def test_a_long_value_is_cut_with_an_ellipsis_within_the_limit():
    assert PREVIEW_CHARS == 40
    assert preview("x" * 100) == "'" + "x" * 38 + "…"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # 1 + 15 + 15 = 31 characters; a third family would end at 46 (a plain cut at 39 would
        # stop at its second joiner's escape, "\u2")
        (FAMILY * 10, "'" + FAMILY_SHOWN * 2),
        ("x" + "🇨🇳" * 30, "'x" + "🇨🇳" * 18),  # a flag is two code points: never half of one
        ("👍🏽" * 30, "'" + "👍🏽" * 19),  # hand and skin tone
        ("1️⃣" * 30, "'" + "1️⃣" * 12),  # digit, variation selector, keycap: 3 code points
        ("e\u0301" * 30, "'" + "e\u0301" * 19),  # a letter and its combining accent
        ("a" * 30 + "\ud83d\ude00" * 5, "'" + "a" * 30),  # a surrogate pair (12 characters)
        (b"\xf0\x9f\x98\x80" * 10, "b'" + "\\xf0\\x9f\\x98\\x80" * 2 + "\\xf0"),  # whole escapes
        ("ab\r\n" * 20, "'" + "ab\\r\\n" * 6 + "ab"),  # \r\n is one line end
        ("x" * 36 + "\r\n" * 10, "'" + "x" * 36),  # "\\r" would fit, "\\n" not: neither
        # a subdivision flag: its tags are \U escapes of 10 characters, 61 in all: none fits
        ("x" + "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f" * 3, "'x"),
    ],
)
def test_a_cut_never_splits_a_character_or_an_escape(value, shown):
    assert preview(value) == shown + "…"
    assert len(shown) < PREVIEW_CHARS


def test_cut_shows_a_text_as_it_is():
    assert cut("在吗") == "在吗"  # no quotes: a text shown as text
    assert cut("x" * PREVIEW_CHARS) == "x" * PREVIEW_CHARS
    assert cut("x" * 100) == "x" * 39 + "…"
    assert cut("x" * 100, 10) == "x" * 9 + "…"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x" + FAMILY * 10, "x" + FAMILY * 7),  # 1 + 7 x 5 code points; joiners kept with it
        ("👍🏽" * 30, "👍🏽" * 19),
        ("x" + "🇨🇳" * 30, "x" + "🇨🇳" * 19),
        ("e\u0301" * 30, "e\u0301" * 19),
        ("ab\r\n" * 20, "ab\r\n" * 9 + "ab"),
        ("x" + SCOTLAND * 10, "x" + SCOTLAND * 5),  # a subdivision flag: 7 code points
        ("\u0915\u093e" * 30, "\u0915\u093e" * 19),  # का: a letter and a spacing mark (Mc)
    ],
)
def test_cut_never_splits_a_character(text, shown):
    assert cut(text) == shown + "…"
    assert len(shown) < PREVIEW_CHARS


def test_cut_of_escaped_text_keeps_each_escape_whole():
    spelt = "\\udc80" * 20  # lone surrogates as str.encode(..., "backslashreplace") spells them
    assert cut(spelt, 40, escaped=True) == "\\udc80" * 6 + "…"
    assert cut(spelt, 40) == spelt[:39] + "…"  # not escaped: its backslashes are characters


def test_cut_looks_at_the_head_only():
    huge = "x" * 10_000_000
    assert cut(huge) == "x" * 39 + "…"
    assert cut(huge, escaped=True) == "x" * 39 + "…"


SCALARS = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60),
    st.integers(),
    st.floats(allow_nan=False),
    st.none(),
    st.sampled_from(["it's", 'say "hi"', "both ' and \"", b"it's", "'\"" * 30]),
)
VALUES = st.recursive(
    SCALARS | st.binary(max_size=60).map(bytearray),
    lambda inner: st.one_of(
        st.lists(inner, max_size=8),
        st.lists(inner, max_size=8).map(tuple),
        st.dictionaries(st.text(max_size=20) | st.integers(), inner, max_size=6),
        st.sets(SCALARS.filter(lambda v: v is not None), max_size=6),
        st.frozensets(st.integers() | st.text(max_size=30), max_size=6),
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, limit=st.integers(min_value=2, max_value=90))
def test_a_preview_is_the_cut_of_the_whole_repr(value, limit):
    """Spelling only the beginning changes nothing that is shown."""
    assert preview(value, limit) == cut(repr(value), limit, escaped=True)


def test_a_value_met_again_inside_itself_is_shown_as_repr_shows_it():
    looped: list = [1]
    looped.append(looped)
    mapping: dict = {}
    mapping["self"] = mapping
    for value in (looped, (looped,), mapping, [looped] * 30):
        assert preview(value) == cut(repr(value), escaped=True)


HUGE = 100_000_000  # characters, bytes or items


@pytest.mark.parametrize(
    "make",
    [
        lambda: "x" * HUGE,
        lambda: "it's " * (HUGE // 5),  # a ' and no ": repr picks double quotes
        lambda: b"\xff" * HUGE,
        lambda: bytearray(HUGE),
        lambda: [0] * (HUGE // 10),
        lambda: {"text": "退" * (HUGE // 2), "more": 1},
        lambda: ["x" * HUGE],
    ],
    ids=["str", "quoted-str", "bytes", "bytearray", "list", "dict", "nested"],
)
def test_a_huge_value_is_previewed_without_spelling_it_whole(make):
    value = make()
    tracemalloc.start()
    try:
        shown = preview(value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64_000, peak  # bytes: a few hundred characters of repr, not the value again
    assert len(shown) <= PREVIEW_CHARS and shown.endswith("…")
    assert shown == cut(repr(value)[:1000], escaped=True)
