"""What a Python caller hands the Classifier: each mistake is one clear error, never a deep
traceback from the normaliser, the tokenizer or ONNX Runtime, and never a quiet answer."""

import math
import re

import numpy as np
import pytest
from support.serving import copy_bundle

from kefu.errors import InputError
from kefu.serving import inputs
from kefu.serving.classifier import Classifier
from kefu.serving.deployment import Deployment
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS


@pytest.fixture(scope="module")
def classifier(tiny_bundle):
    return Classifier.from_bundle(tiny_bundle, intra_op_threads=1)


@pytest.mark.parametrize(
    "text", ["我的快递三天没动了", "在吗".encode(), bytearray("在吗".encode())]
)
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_one_text_instead_of_a_list_is_refused_not_read_letter_by_letter(classifier, method, text):
    with pytest.raises(TypeError) as refused:
        getattr(classifier, method)(text)
    assert str(refused.value) == (
        f"texts must be a list of strings, got a single {type(text).__name__}; wrap one text "
        "in a list: predict([text])"
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (None, "texts[1] is None (a missing value), expected a string; drop missing texts"),
        (math.nan, "texts[1] is nan (a missing value), expected a string; drop missing texts"),
        (3, "texts[1] is int 3, expected a string"),
        (b"abc", "texts[1] is bytes b'abc', expected a string; decode it first"),
    ],
)
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_an_item_that_is_not_a_string_is_named(classifier, method, item, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        getattr(classifier, method)(["在吗", item])


@pytest.mark.parametrize("missing", ["NA", "NaT"])
def test_pandas_missing_values_are_named_as_missing(classifier, missing):
    pd = pytest.importorskip("pandas")  # with the ray extra
    with pytest.raises(TypeError) as refused:
        classifier.predict(["在吗", getattr(pd, missing)])
    assert str(refused.value) == (
        f"texts[1] is {getattr(pd, missing)!r} (a missing value), expected a string; drop "
        "missing texts first (a pandas column: .dropna())"
    )


def test_a_long_item_that_is_not_a_string_is_shown_cut_between_characters(classifier):
    with pytest.raises(TypeError) as caught:
        classifier.predict(["在吗", ["🇨🇳" * 40]])
    # a flag is two code points: a cut at 40 code points would end on half of one
    shown = "['" + "🇨🇳" * 18 + "…"
    assert str(caught.value).startswith(f"texts[1] is list {shown}, expected a string")


@pytest.mark.parametrize("texts", [None, 5])
def test_texts_that_are_no_collection_are_named(classifier, texts):
    with pytest.raises(
        TypeError, match=f"texts must be a list of strings, got {type(texts).__name__}$"
    ):
        classifier.predict(texts)


@pytest.mark.parametrize("text", ["", "   ", "<br>", "\u200b\x00"])
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_an_empty_text_is_refused_as_the_server_refuses_it(classifier, method, text):
    with pytest.raises(InputError, match=re.escape("texts[1] is empty or holds only white")) as e:
        getattr(classifier, method)(["在吗", text])
    assert (e.value.code, e.value.field) == ("empty_text", "texts[1]")


def test_a_lone_surrogate_is_refused_before_the_tokenizer(classifier):
    with pytest.raises(InputError, match=re.escape("texts[0] contains a lone surrogate")) as e:
        classifier.predict(["退款\udce4"])
    assert e.value.code == "invalid_text"


def test_any_iterable_of_strings_is_read(classifier):
    texts = ["在吗", "转人工"]
    expected = [p.intent.label for p in classifier.predict(texts)]
    assert [p.intent.label for p in classifier.predict(iter(texts))] == expected
    assert [p.intent.label for p in classifier.predict(np.array(texts))] == expected
    assert classifier.predict_proba(t for t in texts)["intent"].shape[0] == 2


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ({"a": "在吗"}, "got a dict, whose items are its keys; "),
        ({"在吗", "转人工"}, "got a set, which has no order, so the answers could not be matched"),
    ],
)
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_a_collection_whose_items_are_not_its_texts_is_refused(classifier, method, texts, message):
    # a data frame iterates over its column names and a dict over its keys: both would be
    # classified quietly in place of the texts
    with pytest.raises(TypeError, match=re.escape(f"texts must be a list of strings, {message}")):
        getattr(classifier, method)(texts)


def test_a_data_frame_is_refused_not_read_as_its_column_names(classifier):
    pd = pytest.importorskip("pandas")  # with the ray extra
    frame = pd.DataFrame({"text": ["在吗", "转人工"]})
    with pytest.raises(TypeError, match=re.escape("got a DataFrame, whose items are its column")):
        classifier.predict(frame)
    assert len(classifier.predict(frame["text"])) == 2


def test_numpy_numbers_are_read_as_python_ones(tiny_bundle, classifier):
    (prediction,) = classifier.predict(["在吗"], top_k=np.int64(2))
    assert len(prediction.intent.top) == 2
    overrides = {"intent": {"threshold": np.float32(0.25)}}
    tuned = Classifier.from_bundle(
        tiny_bundle, max_length=np.int64(32), calibration_overrides=overrides
    )
    assert (tuned.encoder.max_length, tuned.calibration["intent"].threshold) == (32, 0.25)


@pytest.mark.parametrize(
    ("top_k", "error"), [(0, ValueError), (-1, ValueError), ("3", TypeError), (True, TypeError)]
)
def test_top_k_must_be_a_positive_integer(classifier, top_k, error):
    with pytest.raises(error, match="top_k must be an integer >= 1"):
        classifier.predict(["在吗"], top_k=top_k)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"intnet": {"threshold": 0.5}}, ValueError, "unknown head 'intnet'"),
        ({"intent": {"temp": 2.0}}, ValueError, "['intent']['temp']: unknown key"),
        ({"intent": {"temperature": 0}}, ValueError, "['intent']['temperature'] must be > 0"),
        ({"intent": {"threshold": 1.5}}, ValueError, "must be within [0, 1], got 1.5"),
        ({"intent": {"margin": -0.1}}, ValueError, "['margin'] must be within [0, 1], got -0.1"),
        ({"intent": {"threshold": True}}, ValueError, "must be a finite number, got True"),
        ([("intent", {"threshold": 0.5})], TypeError, "calibration_overrides must map a head to"),
        ({"intent": {"margin": math.nan}}, ValueError, "must be a finite number, got nan"),
        ({"intent": 0.5}, TypeError, "calibration_overrides['intent'] must map"),
    ],
)
def test_calibration_overrides_are_checked(tiny_bundle, overrides, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Classifier.from_bundle(tiny_bundle, calibration_overrides=overrides)


def test_calibration_overrides_at_the_edges_are_taken(tiny_bundle):
    overrides = {"intent": {"threshold": 1.0, "margin": 0.0}, "urgency": {"threshold": 0.0}}
    tuned = Classifier.from_bundle(tiny_bundle, calibration_overrides=overrides)
    assert (tuned.calibration["intent"].threshold, tuned.calibration["urgency"].threshold) == (
        1.0,
        0.0,
    )


@pytest.mark.parametrize("threads", [0, -1, "2", 1.5, True])
def test_a_thread_count_must_be_a_positive_integer(tiny_bundle, threads):
    with pytest.raises(
        ValueError, match=re.escape("threads) must be an integer >= 1 (ONNX Runtime")
    ):
        Deployment.load(tiny_bundle, threads=threads)
    with pytest.raises(ValueError, match=re.escape("lone_threads must be an integer >= 1")):
        Classifier.from_bundle(tiny_bundle, intra_op_threads=1, lone_threads=threads)


def test_max_length_must_fit_the_model(tiny_bundle):
    with pytest.raises(ValueError) as refused:
        Classifier.from_bundle(tiny_bundle, max_length=3)
    assert str(refused.value) == (
        "max_length must be an integer >= 4 (tokens, [CLS] and [SEP] included), got 3; leave it "
        "out to use the bundle's"
    )
    shortest = Classifier.from_bundle(tiny_bundle, max_length=4, intra_op_threads=1)
    assert shortest.predict(["快递没到"])[0].truncated is True
    # the tiny model has 256 positions; the bundle was exported with 64
    with pytest.raises(ValueError, match="max_length 300 is more tokens than the model of .* 64"):
        Classifier.from_bundle(tiny_bundle, max_length=300)
    longer = Classifier.from_bundle(tiny_bundle, max_length=128, intra_op_threads=1)
    assert longer.predict(["快递" * 100])[0].truncated is True


def test_one_token_past_the_bundles_max_length_is_checked_against_the_model(tiny_bundle, tmp_path):
    """A bundle trained at its model's every position (256 here) refuses 257 at load, not at the
    first long message."""
    full = copy_bundle(tiny_bundle, tmp_path / "full", max_length=256)
    with pytest.raises(ValueError, match="max_length 257 is more tokens than the model of .* 256"):
        Classifier.from_bundle(full, max_length=257)


def test_a_path_given_to_the_constructor_points_to_from_bundle(tiny_bundle):
    with pytest.raises(TypeError, match=re.escape("got PosixPath; load a bundle folder with")):
        Classifier(tiny_bundle)


def test_a_text_over_the_servers_default_limit_is_refused_naming_it(classifier):
    at_limit = "快" * DEFAULT_MAX_TEXT_CHARS
    assert classifier.predict([at_limit])[0].truncated is True  # at the limit: scored, cut
    with pytest.raises(InputError) as caught:
        classifier.predict(["在吗", at_limit + "递"])
    assert str(caught.value) == (
        "texts[1] has 20001 characters; the limit is 20000 (max_text_chars, the server's "
        "KEFU_MAX_TEXT_CHARS); drop or split such texts, or load the model with a higher "
        "max_text_chars (None: no limit)"
    )
    assert (caught.value.code, caught.value.field) == ("text_too_long", "texts[1]")
    with pytest.raises(InputError, match=r"^texts\[0\] has 20001 characters"):
        classifier.predict_proba([at_limit + "递"])


def test_a_text_over_the_limit_is_refused_before_anything_reads_it(classifier, monkeypatch):
    """A huge paste is not normalised whole (the normaliser would copy it several times over)
    only to be cut to the model window: its length alone refuses it."""
    read: list[int] = []
    has_content = inputs.has_content
    monkeypatch.setattr(
        inputs, "has_content", lambda text: read.append(len(text)) or has_content(text)
    )
    huge = "<br>" * 5_000_000  # 20 million characters of markup
    with pytest.raises(InputError, match=r"^texts\[1\] has 20000000 characters"):
        classifier.predict(["在吗", huge])
    assert read == [2]  # the first text only


def test_the_text_limit_is_set_when_loading(tiny_bundle):
    strict = Classifier.from_bundle(tiny_bundle, intra_op_threads=1, max_text_chars=5)
    assert len(strict.predict(["在吗在吗在"])) == 1
    with pytest.raises(InputError, match=r"^texts\[0\] has 6 characters; the limit is 5 "):
        strict.predict(["在吗在吗在吗"])
    unlimited = Classifier.from_bundle(tiny_bundle, intra_op_threads=1, max_text_chars=None)
    assert unlimited.predict(["快" * 30_000])[0].truncated is True


@pytest.mark.parametrize("limit", [0, -1, 2.5, "100", True])
def test_the_text_limit_must_be_a_positive_integer_or_none(tiny_bundle, limit):
    with pytest.raises(ValueError, match=re.escape("max_text_chars must be an integer >= 1")):
        Classifier.from_bundle(tiny_bundle, max_text_chars=limit)
