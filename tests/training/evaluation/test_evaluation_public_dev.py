import json

import pytest
from support.evaluation import EVAL_ROWS, TRAIN_ROWS, run_cli, write_jsonl
from support.paths import REPO_ROOT, SHARED
from support.public_dev import write_fake_public_dev
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.deployment import Deployment
from kefu.serving.taxonomy import HEADS
from kefu.training.evaluation.public_dev import (
    PublicSet,
    evaluate_public_sets,
    load_public_sets,
    read_jd,
    read_review_polarity,
    read_smp,
    score_public_set,
)


@pytest.fixture
def public_dev(tmp_path):
    return write_fake_public_dev(tmp_path / "public-dev")


def test_jd_reads_train_and_test_deduplicated(public_dev):
    jd = read_jd(public_dev / "jd_chat_vs_business.tsv")
    assert jd.texts == [
        "咨询订单号：<num> 我已经申请退货了 怎么不处理一下",
        "您好 人工客服",
        "在吗",
        "发票开了没",
        "转人工",
    ]
    assert jd.gold == ["business", "chitchat", "chitchat", "business", "chitchat"]
    assert jd.dropped == 1


def test_reviews_map_polarity_and_drop_empty_rows(public_dev):
    reviews = read_review_polarity(public_dev / "waimai_10k.csv", "waimai")
    assert reviews.texts == ["很快，好吃，味道足", '送餐太慢了,"凉了"', "不错"]
    assert reviews.gold == ["positive", "negative", "positive"]
    assert reviews.dropped == 1


def test_smp_maps_five_emotions_and_drops_surprise(public_dev):
    smp = read_smp(public_dev / "smp2020_ewect_usual_test.json")
    assert smp.gold == ["angry", "anxious", "positive", "neutral", "dissatisfied"]
    assert smp.dropped == 1


def test_smp_is_read_as_any_json_array_is(tmp_path):
    """Through the one tabular reader, laid out as it may be: an element that is not JSON or no
    object, or that lacks a text or a usable label, is a dropped row; the rest are read."""
    path = tmp_path / "smp2020_ewect_usual_test.json"
    path.write_text(
        "[\n"
        '  {"id": 1, "content": "气死我了", "label": "angry"},\n'
        '  {"id": 2, "content": "坏了", "label": },\n'
        "  [3],\n"
        '  {"id": 4, "label": "sad"},\n'
        '  {"id": 5, "content": 5, "label": "sad"},\n'
        '  {"id": 6, "content": "有点难过", "label": "sad"}\n'
        "]\n",
        encoding="utf-8",
    )
    smp = read_smp(path)
    assert (smp.texts, smp.gold, smp.dropped) == (
        ["气死我了", "有点难过"],
        ["angry", "dissatisfied"],
        4,
    )


def test_an_empty_smp_array_has_no_usable_row(public_dev):
    (public_dev / "smp2020_ewect_usual_test.json").write_text("[]", "utf-8")
    with pytest.raises(DataError, match="smp2020_ewect_usual_test.json.*expected columns"):
        load_public_sets(public_dev)


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "waimai_10k.csv"
    path.write_text("label,text\n1,好\n", "utf-8")
    with pytest.raises(DataError, match="waimai_10k.csv.*'review'"):
        read_review_polarity(path, "waimai")


def test_reviews_are_read_as_any_input_file_is(tmp_path):
    """Through the one tabular reader: a byte-order mark is dropped, a quoted review may span
    lines, and a record the reader rejects is a dropped row while the rows after it are read."""
    path = tmp_path / "waimai_10k.csv"
    lines = [
        "label,review",
        '1,"好吃',  # a quote that never closes: this line is rejected, the next ones are rows
        "0,太慢,多送了一列",  # three fields under a header of two
        '1,"味道不错',
        '下次还来"',
        "0,凉了",
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8") + b"\n")
    reviews = read_review_polarity(path, "waimai")
    assert reviews.texts == ["味道不错\n下次还来", "凉了"]
    assert reviews.gold == ["positive", "negative"]
    assert reviews.dropped == 2


def test_a_byte_that_is_not_utf8_names_the_line_and_column(tmp_path):
    path = tmp_path / "jd_chat_vs_business.tsv"
    path.write_bytes(b"sheet\trow\tlabel_chitchat\ttext\ntrain\t0\t0\t" + "退款\n".encode("gbk"))
    with pytest.raises(DataError) as raised:
        read_jd(path)
    assert str(raised.value) == (
        f"file {path}, line 2, column 'text': expected UTF-8 text, found the byte 0xcd, which "
        "is not UTF-8; save the file as UTF-8"
    )


def test_a_byte_that_is_not_utf8_in_the_weibo_array_names_the_element(tmp_path):
    path = tmp_path / "smp2020_weibo.json"
    path.write_bytes(
        b'[\n  {"id": 1, "content": "ok", "label": "happy"},\n  {"id": 2, "content": "'
        + "退款".encode("gbk")
        + b'", "label": "sad"}\n]\n'
    )
    with pytest.raises(DataError) as raised:
        read_smp(path)
    assert str(raised.value).startswith(f"file {path}, element 2, column 'content': expected")


def test_a_header_that_is_not_utf8_says_to_save_the_file_as_utf8(tmp_path):
    """Not "pass --encoding": `kefu evaluate --encoding` reads the test files, not these."""
    path = tmp_path / "waimai_10k.csv"
    path.write_bytes("标签,评论\n1,好吃\n".encode("gbk"))
    with pytest.raises(DataError) as raised:
        read_review_polarity(path, "waimai")
    assert str(raised.value) == (
        f"file {path}, line 1: the header is not valid utf-8: column 1's name: invalid utf-8 byte "
        "0xb1 at character 0 (the public dev files are published as UTF-8: save this one as UTF-8 again)"
    )


def test_limit_samples_the_same_rows_every_time(public_dev):
    first = {s.name: s.texts for s in load_public_sets(public_dev, limit=2)}
    second = {s.name: s.texts for s in load_public_sets(public_dev, limit=2)}
    assert first == second
    assert {name: len(texts) for name, texts in first.items()} == {
        "jd_chat_vs_business": 2,
        "waimai": 2,
        "chnsenticorp_hotel": 2,
        "smp2020_weibo": 2,
    }


def test_chitchat_scores_by_hand():
    jd = PublicSet(
        "jd", "jd.tsv", "chitchat_vs_business", ["退货", "您好 人工客服", "在吗", "人工"], []
    )
    jd.gold = ["business", "chitchat", "chitchat", "chitchat"]
    result = score_public_set(
        jd, ["refund_return", "human_agent", "greeting", "other"], ["neutral"] * 4
    )
    # predicted business, business, chitchat, chitchat -> accuracy 3/4
    # chitchat: P 1 R 2/3 F1 .8; business: P 1/2 R 1 F1 2/3
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert result["asks_human_rows"] == 2
    assert result["human_agent_share_on_asks_human"] == pytest.approx(0.5)


def test_polarity_counts_neutral_as_a_miss_and_reports_its_share():
    reviews = PublicSet(
        "waimai",
        "w.csv",
        "polarity",
        ["a", "b", "c", "d"],
        ["positive", "positive", "negative", "negative"],
    )
    result = score_public_set(reviews, ["other"] * 4, ["positive", "neutral", "angry", "positive"])
    # positive: P 1/2 R 1/2 F1 .5; negative: P 1 R 1/2 F1 2/3
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert result["neutral_share"] == pytest.approx(0.25)
    assert result["accuracy_non_neutral"] == pytest.approx(2 / 3)
    assert set(result["per_class"]) == {"positive", "negative"}


def test_public_sets_run_on_a_real_bundle(tiny_bundle, public_dev):
    results = evaluate_public_sets(
        Deployment.load(tiny_bundle, threads=1), load_public_sets(public_dev)
    )
    assert set(results) == {"jd_chat_vs_business", "waimai", "chnsenticorp_hotel", "smp2020_weibo"}
    assert [results[name]["n"] for name in results] == [5, 3, 3, 5]
    for result in results.values():
        assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["macro_f1"] <= 1.0
        assert sum(sum(row) for row in result["confusion"]["matrix"]) == result["n"]


def test_default_limits_keep_every_jd_row_and_sample_the_others(public_dev, monkeypatch):
    from kefu.training.evaluation import public_dev as module

    monkeypatch.setattr(module, "DEFAULT_LIMITS", {"jd_chat_vs_business": None, "waimai": 1})
    sizes = {s.name: (len(s.texts), s.total) for s in load_public_sets(public_dev)}
    assert sizes["jd_chat_vs_business"] == (5, None)
    assert sizes["waimai"] == (1, 3)
    assert sizes["smp2020_weibo"] == (5, None)  # no default cap listed: all rows
    assert {s.name: len(s.texts) for s in load_public_sets(public_dev, limit=None)}["waimai"] == 3


@pytest.mark.slow
def test_real_base_model_bundle_evaluates_on_seed_and_public_dev(tmp_path):
    """The real tokenizer and encoder size (m3e-small, untrained heads) through the whole command."""
    import torch
    from transformers import BertModel

    from kefu.serving.bundle.schema import HeadCalibration, Manifest
    from kefu.serving.bundle.writer import write_bundle
    from kefu.serving.taxonomy import load_taxonomy
    from kefu.training.export import export_onnx, quantize_int8
    from kefu.training.model import MultiHeadClassifier

    base, public_dev = SHARED / "models" / "m3e-small-zh", SHARED / "data" / "public-dev"
    if not base.is_dir() or not public_dev.is_dir():
        pytest.skip("needs ../shared/models/m3e-small-zh and ../shared/data/public-dev")
    torch.manual_seed(0)
    taxonomy = load_taxonomy()
    encoder = BertModel.from_pretrained(str(base), add_pooling_layer=False)
    model = MultiHeadClassifier(encoder, {head: len(taxonomy.labels(head)) for head in HEADS})
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx")
    bundle_dir = tmp_path / "bundle"
    write_bundle(
        bundle_dir,
        manifest=Manifest(model_version="m3e-untrained", base_model="m3e-small", max_length=128),
        onnx_fp32=fp32,
        onnx_int8=int8,
        tokenizer_json=base / "tokenizer.json",
        taxonomy=taxonomy,
        calibration={head: HeadCalibration() for head in HEADS},
    )
    seed = REPO_ROOT / "datasets" / "seed"
    result = CliRunner().invoke(app, ["evaluate", *map(str, [
        "--bundle", bundle_dir, "--data", seed / "test.jsonl", "--train-data", seed / "train.jsonl",
        "-o", bundle_dir, "--public-dev", public_dev, "--public-dev-limit", 200,
    ])])  # fmt: skip
    assert result.exit_code == 0, result.output
    bundle = read_bundle(bundle_dir)
    assert set(bundle.metrics["public_dev"]) == {
        "jd_chat_vs_business",
        "waimai",
        "chnsenticorp_hotel",
        "smp2020_weibo",
    }
    assert "non-commercial" in bundle.model_card_path.read_text(encoding="utf-8").lower()


def _smp_number(folder):
    (folder / "smp2020_ewect_usual_test.json").write_text("5", "utf-8")


def _waimai_folder(folder):
    (folder / "waimai_10k.csv").unlink()
    (folder / "waimai_10k.csv").mkdir()


def _hotel_broken_link(folder):
    (folder / "ChnSentiCorp_htl_all.csv").unlink()
    (folder / "ChnSentiCorp_htl_all.csv").symlink_to(folder / "moved_away.csv")


def _waimai_no_usable_row(folder):
    (folder / "waimai_10k.csv").write_text("label,review\npos,好吃\nneg,太慢\n", "utf-8")


def _jd_not_utf8(folder):
    (folder / "jd_chat_vs_business.tsv").write_bytes(b"sheet\trow\tlabel_chitchat\ttext\n")
    with (folder / "jd_chat_vs_business.tsv").open("ab") as handle:
        handle.write("train\t0\t0\t退款\n".encode("gbk"))


def _hotel_header_gbk(folder):
    (folder / "ChnSentiCorp_htl_all.csv").write_bytes("标签,评论\n1,不错\n".encode("gbk"))


@pytest.mark.parametrize(
    ("break_it", "file", "message"),
    [
        (_smp_number, "smp2020_ewect_usual_test.json", "column 'content': expected columns ['content', 'label'], found none (no header row or JSON object)"),
        (_waimai_folder, "waimai_10k.csv", "expected a readable waimai_10k.csv file, found no regular file"),
        (_hotel_broken_link, "ChnSentiCorp_htl_all.csv", "expected a readable ChnSentiCorp_htl_all.csv file, found a link to nothing"),
        (_waimai_no_usable_row, "waimai_10k.csv", "no usable row: a row needs a text and label 0 or 1 (2 rows dropped)"),
        (_jd_not_utf8, "jd_chat_vs_business.tsv", "expected UTF-8 text"),
        (_hotel_header_gbk, "ChnSentiCorp_htl_all.csv", "the header is not valid utf-8: column 1's name: invalid utf-8 byte 0xb1 at character 0 (the public dev files are published as UTF-8: save this one as UTF-8 again)"),
    ],
    ids=["json-not-a-list", "a-folder", "broken-link", "no-usable-row", "not-utf8", "header-not-utf8"],
)  # fmt: skip
def test_a_broken_public_dev_file_stops_evaluation_before_any_model_work(
    tiny_bundle, public_dev, tmp_path, break_it, file, message
):
    data = write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS)
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    break_it(public_dev)
    out = tmp_path / "out"
    result = run_cli(
        "--bundle", tiny_bundle, "--data", data, "-o", out, "--public-dev", public_dev
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1].startswith(f"kefu evaluate: file {public_dev / file}"), (
        result.output
    )
    assert message in result.output.splitlines()[-1]
    assert "Traceback" not in result.output
    # before the report folder is made: no test row was read, nothing was scored
    assert not out.exists()


def test_a_public_dev_folder_without_the_files_is_refused_at_once(tiny_bundle, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS)
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    (empty / "README.md").write_text("not the sets\n", "utf-8")
    out = tmp_path / "out"
    result = run_cli("--bundle", tiny_bundle, "--data", data, "-o", out, "--public-dev", empty)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"kefu evaluate: --public-dev {empty} holds none of the public dev files "
        "(jd_chat_vs_business.tsv, waimai_10k.csv, ChnSentiCorp_htl_all.csv, "
        "smp2020_ewect_usual_test.json); pass the folder that holds them or --no-public-dev"
    )
    assert not out.exists()


def test_a_folder_with_some_of_the_files_is_scored_on_those_and_says_which_are_absent(
    tiny_bundle, public_dev, tmp_path
):
    data = write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS)
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    (public_dev / "waimai_10k.csv").unlink()
    (public_dev / "smp2020_ewect_usual_test.json").unlink()
    out = tmp_path / "out"
    result = run_cli(
        "--bundle", tiny_bundle, "--data", data, "-o", out, "--public-dev", public_dev,
        "--threads", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "public dev: jd_chat_vs_business (5), chnsenticorp_hotel (3); not in the folder: "
        "waimai_10k.csv, smp2020_ewect_usual_test.json"
    ) in result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["public_dev"]) == {"jd_chat_vs_business", "chnsenticorp_hotel"}
