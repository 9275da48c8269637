"""`kefu score` with the local engine: what a run writes (scores, counts, rejects, columns,
output formats, workers)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, expected_bad, write_csv, write_jsonl, write_parquet
from support.scoring_runs import read_rejects, score

from kefu.serving.batch.scoring import SCORE_COLUMNS
from kefu.serving.classifier import Classifier
from kefu.serving.routing import ConversationContext, decide
from kefu.serving.routing_policy import RoutingPolicy


def test_jsonl_to_parquet_scores_every_good_row_and_rejects_the_rest(tmp_path, tiny_bundle):
    rows = chat_log(400)
    source = write_jsonl(rows, tmp_path / "log.jsonl", extra_lines=[b"{broken"])
    summary = score(tmp_path, tiny_bundle, [source], "out.parquet", id_col="msg_id", chunk_size=64)
    bad = expected_bad(400) + 1
    assert (summary.rows_read, summary.scored, summary.rejected) == (401, 400 - bad + 1, bad)
    assert summary.lines()[0] == f"rows read 401 = scored {400 - bad + 1} + rejected {bad}"
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["msg_id", "shop", "created_at", "text", *SCORE_COLUMNS]
    good = [r for r in rows if isinstance(r.get("text"), str) and r["text"].strip()]
    assert table.column("msg_id").to_pylist() == [r["msg_id"] for r in good]  # input order kept
    rejects = read_rejects(tmp_path / "out.parquet")
    assert [r["line"] for r in rejects] == sorted(r["line"] for r in rejects)
    assert rejects[0] == {
        "file": str(source.resolve()),
        "line": 1,
        "end_line": 1,
        "id": "m000000",
        "column": "text",
        "reason": "empty_text",
        "detail": "text is empty or holds only white space, markup or invisible characters",
    }
    assert rejects[-1]["reason"] == "invalid_json" and rejects[-1]["line"] == 401
    assert not (tmp_path / "out.parquet.partial").exists()


def test_scores_are_the_classifier_and_router_output(tmp_path, tiny_bundle):
    rows = chat_log(40, bad=False)
    rows[3]["text"] = "我的快递三天没动了，" * 20  # past the model's 64 tokens
    score(tmp_path, tiny_bundle, [write_jsonl(rows, tmp_path / "log.jsonl")], "out.parquet")
    scored = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["truncated"] for row in scored].count(True) == 1
    classifier = Classifier.from_bundle(tiny_bundle, intra_op_threads=1)
    policy = RoutingPolicy.for_bundle(classifier.bundle)
    every_label = max(len(labels) for labels in classifier.bundle.labels.values())
    for row in scored[:10]:
        # every label ranked: the high-urgency rule reads P(urgency) x P(emotion) over all of them
        (prediction,) = classifier.predict([row["text"]], top_k=every_label)
        decision = decide(prediction, ConversationContext(), policy)
        assert (row["intent"], row["urgency"], row["emotion"]) == (
            prediction.intent.label,
            prediction.urgency.label,
            prediction.emotion.label,
        )
        assert row["intent_confidence"] == pytest.approx(prediction.intent.confidence, abs=1e-6)
        for head in ("intent", "urgency", "emotion"):
            assert row[f"{head}_abstain"] is prediction.heads[head].abstain
        assert (
            row["queue"],
            row["priority"],
            row["action"],
            row["escalate"],
            row["reasons"],
            row["candidates"],
        ) == (
            decision.queue,
            decision.priority,
            decision.action,
            decision.escalate,
            decision.reasons,
            [candidate.intent for candidate in decision.candidates],
        )
        assert (row["group"], row["truncated"], row["model_version"]) == (
            prediction.group,
            prediction.truncated,
            "tiny-0",
        )


def test_parquet_csv_and_jsonl_outputs_hold_the_same_rows(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(120), tmp_path / "log.jsonl")
    for name in ("out.parquet", "out.csv", "out.jsonl"):
        score(tmp_path, tiny_bundle, [source], name, chunk_size=50)
    parquet = pq.read_table(tmp_path / "out.parquet").to_pylist()
    csv_rows = pacsv.read_csv(
        tmp_path / "out.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
    ).to_pylist()
    jsonl = [
        json.loads(line)
        for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(parquet) == len(csv_rows) == len(jsonl) > 0
    for p, c, j in zip(parquet, csv_rows, jsonl, strict=True):
        assert p == j
        assert (c["msg_id"], c["intent"], c["escalate"], c["intent_confidence"]) == (
            p["msg_id"],
            p["intent"],
            p["escalate"],
            p["intent_confidence"],
        )
        assert (c["reasons"] or "") == ";".join(p["reasons"])
        assert (c["candidates"] or "") == ";".join(p["candidates"])
    assert (tmp_path / "out.csv.rejects.jsonl").read_bytes() == (
        tmp_path / "out.jsonl.rejects.jsonl"
    ).read_bytes()


def test_two_workers_give_bit_identical_output(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(300), tmp_path / "log.jsonl")
    score(tmp_path, tiny_bundle, [source], "one.parquet", chunk_size=40, workers=1)
    score(tmp_path, tiny_bundle, [source], "two.parquet", chunk_size=40, workers=2)
    assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "two.parquet"))


def test_several_formats_and_a_glob_make_one_output_with_all_columns(tmp_path, tiny_bundle):
    rows = chat_log(60, bad=False)
    write_csv([{**r, "channel": "app"} for r in rows[:20]], tmp_path / "a.csv")
    write_jsonl(rows[20:40], tmp_path / "b.jsonl")
    write_parquet(rows[40:], tmp_path / "c.parquet")
    summary = score(
        tmp_path, tiny_bundle, [tmp_path / "a.csv", str(tmp_path / "[bc].*")], "out.parquet"
    )
    assert (summary.files, summary.scored, summary.rejected) == (3, 60, 0)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names[:5] == ["msg_id", "shop", "created_at", "text", "channel"]
    assert table.column("msg_id").to_pylist() == [r["msg_id"] for r in rows]
    assert table.column("channel").to_pylist() == ["app"] * 20 + [None] * 40


def test_input_columns_named_like_score_columns_are_kept_as_input_columns(tmp_path, tiny_bundle):
    rows = [
        {**r, "intent": "invoice", "urgency": "low"} for r in chat_log(30, bad=False)
    ]  # gold labels
    source = write_jsonl(rows, tmp_path / "labelled.jsonl")
    score(tmp_path, tiny_bundle, [source], "first.csv")
    first = pacsv.read_csv(tmp_path / "first.csv")
    assert first.column_names == [
        "msg_id",
        "shop",
        "created_at",
        "text",
        "input_intent",
        "input_urgency",
        *SCORE_COLUMNS,
    ]
    assert set(first.column("input_intent").to_pylist()) == {"invoice"}
    score(
        tmp_path, tiny_bundle, [tmp_path / "first.csv"], "second.parquet"
    )  # re-score a scored file
    second = pq.read_table(tmp_path / "second.parquet")
    assert second.column_names[:6] == first.column_names[:6]  # input_intent was taken: dropped
    assert second.column_names[6:] == [
        f"input_{name}" for name in SCORE_COLUMNS if name not in ("intent", "urgency")
    ] + list(SCORE_COLUMNS)
    assert second.column("intent").to_pylist() == first.column("intent").to_pylist()


def test_empty_input_gives_an_empty_output_with_the_score_schema(tmp_path, tiny_bundle):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    summary = score(tmp_path, tiny_bundle, [tmp_path / "empty.jsonl"], "out.parquet")
    assert (summary.rows_read, summary.scored, summary.rejected) == (0, 0, 0)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 0 and table.column_names == list(SCORE_COLUMNS)
    assert isinstance(table.schema.field("reasons").type, pa.ListType)


def test_jsonl_output_writes_nan_and_infinity_as_null(tmp_path, tiny_bundle):
    values = [float("nan"), float("inf"), float("-inf"), 0.5]
    source = tmp_path / "log.parquet"
    pq.write_table(pa.table({"text": ["在吗"] * 4, "score": values}), source)
    score(tmp_path, tiny_bundle, [source], "out.jsonl")

    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")

    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line, parse_constant=refuse) for line in lines]
    assert [record["score"] for record in records] == [None, None, None, 0.5]


def test_csv_output_writes_a_binary_column_as_its_text(tmp_path, tiny_bundle):
    source = tmp_path / "log.parquet"
    raw = ["在吗".encode(), b"\xff ok", None]
    pq.write_table(pa.table({"text": ["在吗"] * 3, "raw": pa.array(raw, pa.binary())}), source)
    score(tmp_path, tiny_bundle, [source], "out.csv")
    cells = pacsv.read_csv(
        tmp_path / "out.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
    )
    assert cells.column("raw").to_pylist() == ["在吗", "\ufffd ok", None]


def test_a_chunk_with_a_single_reject_keeps_it_in_the_rejects_file(tmp_path, tiny_bundle):
    source = tmp_path / "log.csv"
    source.write_text("id,text\n1,在吗\n2,\n3,退款\n4,\n5,好\n", encoding="utf-8")
    summary = score(tmp_path, tiny_bundle, [source], "out.parquet", id_col="id", chunk_size=2)
    assert (summary.rows_read, summary.scored, summary.rejected) == (5, 3, 2)
    rejects = read_rejects(tmp_path / "out.parquet")
    assert [(r["line"], r["id"], r["reason"]) for r in rejects] == [
        (3, "2", "empty_text"),
        (5, "4", "empty_text"),
    ]


def test_a_merge_that_writes_another_number_of_rows_than_were_scored_is_an_error(tmp_path):
    from types import SimpleNamespace

    from kefu.serving.batch.writers import merge_scored

    part = pa.table({"text": ["在吗"]})
    plan = SimpleNamespace(output_format="parquet", excel_csv=False)
    with pytest.raises(RuntimeError, match="merge wrote 1 rows but 2 were scored"):
        merge_scored(lambda: [part], [part.schema], 2, plan, tmp_path / "out.parquet")
