"""What a Python caller hands the `Classifier`, checked before a tokenizer or a model sees it.

The server's request schema and batch scoring's readers check their own inputs; a caller in a
notebook has only these checks between a pandas column and ONNX Runtime. Without them a str
is read as a list of one-character texts, a missing value (None, NaN) fails deep inside the
normaliser, and an empty text gets a confident answer about nothing. Each error names the
position of the offending text and what to do about it. A text over `max_text_chars` is
refused as the server and `kefu score` refuse it, and before anything reads it whole: a
100 MB paste would otherwise be normalised in full only for the tokenizer to keep its ends.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Set
from dataclasses import fields
from typing import Any

from kefu.errors import InputError
from kefu.serving.bundle.schema import HeadCalibration
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.serving.normalize import has_content
from kefu.serving.preview import preview
from kefu.serving.taxonomy import HEADS

CALIBRATION_KEYS = tuple(item.name for item in fields(HeadCalibration))


def checked_texts(
    texts: Iterable[str], max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS
) -> list[str]:
    """`texts` as a list, each a usable message text of at most `max_text_chars` characters
    (None: any length); TypeError or InputError otherwise."""
    if isinstance(texts, str | bytes | bytearray):
        raise TypeError(
            f"texts must be a list of strings, got a single {type(texts).__name__}; "
            "wrap one text in a list: predict([text])"
        )
    if isinstance(texts, Mapping | Set) or hasattr(texts, "columns"):
        raise TypeError(_unordered(texts))
    try:
        listed = list(texts)
    except TypeError:
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}") from None
    for index, text in enumerate(listed):
        where = f"texts[{index}]"
        if not isinstance(text, str):
            raise TypeError(f"{where} is {_kind(text)}, expected a string; {_fix(text)}")
        if max_text_chars is not None and len(text) > max_text_chars:  # first: read nothing
            raise InputError(
                f"{where} has {len(text)} characters; the limit is {max_text_chars} "
                "(max_text_chars, the server's KEFU_MAX_TEXT_CHARS); drop or split such texts, "
                "or load the model with a higher max_text_chars (None: no limit)",
                where,
                "text_too_long",
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"{where} contains a lone surrogate {text[exc.start]!r} at character "
                f"{exc.start}, which is not text (undecodable bytes read with "
                "errors='surrogateescape'?); repair or drop it",
                where,
                "invalid_text",
            ) from None
        if not has_content(text):
            raise InputError(
                f"{where} is empty or holds only white space, markup or invisible characters, "
                "and would get a confident answer about nothing; drop such texts first "
                "(kefu.serving.normalize.has_content tells them apart)",
                where,
                "empty_text",
            )
    return listed


def checked_top_k(top_k: Any) -> int:
    if not is_int(top_k):
        raise TypeError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k}")
    return int(top_k)  # numpy's integers too


def checked_batch_size(batch_size: Any) -> int:
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {preview(batch_size)}")
    return int(batch_size)


def checked_count_or_none(value: Any, name: str, counts: str, none_means: str) -> int | None:
    """None or an integer >= 1 (numpy's too): `max_text_chars`, and the thread counts, which
    ONNX Runtime took as every core at 0 and -1 and failed on "2" with its own binding error."""
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ValueError(
            f"{name} must be an integer >= 1 ({counts}) or None ({none_means}), "
            f"got {preview(value)}"
        )
    return int(value)


def checked_max_length(max_length: Any) -> int | None:
    """None (the bundle's own) or a token count a BERT input can hold ([CLS], text, [SEP])."""
    if max_length is None:
        return None
    if not is_int(max_length) or max_length < 4:
        raise ValueError(
            f"max_length must be an integer >= 4 (tokens, [CLS] and [SEP] included), got "
            f"{max_length!r}; leave it out to use the bundle's"
        )
    return int(max_length)


def checked_calibration_overrides(
    overrides: Mapping[str, Mapping[str, float]] | None,
) -> dict[str, dict[str, float]]:
    """Per head, the calibration values to use instead of the bundle's, each checked."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise TypeError(
            "calibration_overrides must map a head to its values, e.g. "
            f"{{'intent': {{'threshold': 0.5}}}}, got {type(overrides).__name__}"
        )
    checked: dict[str, dict[str, float]] = {}
    for head, values in overrides.items():
        if head not in HEADS:
            raise ValueError(
                f"calibration_overrides names unknown head {head!r}; the heads are {list(HEADS)}"
            )
        if not isinstance(values, Mapping):
            raise TypeError(
                f"calibration_overrides[{head!r}] must map {list(CALIBRATION_KEYS)} to numbers, "
                f"got {values!r}"
            )
        for key, number in values.items():
            where = f"calibration_overrides[{head!r}][{key!r}]"
            if key not in CALIBRATION_KEYS:
                raise ValueError(f"{where}: unknown key; expected one of {list(CALIBRATION_KEYS)}")
            real = isinstance(number, numbers.Real) and not isinstance(number, bool)
            if not real or not math.isfinite(number):
                raise ValueError(f"{where} must be a finite number, got {number!r}")
            if key == "temperature" and number <= 0:
                raise ValueError(f"{where} must be > 0, got {number}")
            if key != "temperature" and not 0.0 <= number <= 1.0:
                raise ValueError(f"{where} must be within [0, 1], got {number}")
        checked[head] = {key: float(number) for key, number in values.items()}
    return checked


def is_int(value: Any) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _unordered(texts: Any) -> str:
    """Why a data frame, a mapping or a set is no list of texts, and what to pass instead."""
    kind = type(texts).__name__
    if hasattr(texts, "columns"):
        return (
            f"texts must be a list of strings, got a {kind}, whose items are its column names; "
            "pass its text column: df['text']"
        )
    if isinstance(texts, Mapping):
        return (
            f"texts must be a list of strings, got a {kind}, whose items are its keys; "
            "pass the texts themselves: list(mapping.values())"
        )
    return (
        f"texts must be a list of strings, got a {kind}, which has no order, so the answers "
        "could not be matched to their texts; pass a list: sorted(texts)"
    )


def is_missing(value: Any) -> bool:
    """None, NaN, or pandas' NA and NaT: what an empty cell of a data frame holds."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or type(value).__name__ in {"NAType", "NaTType"}
    )


def _kind(value: Any) -> str:
    if is_missing(value):
        return f"{value!r} (a missing value)"
    return f"{type(value).__name__} {preview(value)}"


def _fix(value: Any) -> str:
    if is_missing(value):
        return "drop missing texts first (a pandas column: .dropna())"
    if isinstance(value, bytes | bytearray):
        return "decode it first (value.decode('utf-8'))"
    return "pass the message text itself"
