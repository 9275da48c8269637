"""Issue 14: `kefu score` accounts for physical input lines, and broken quoting loses no row."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from support.chat_logs import chat_log, write_csv
from typer.testing import CliRunner

from kefu.cli.main import app

runner = CliRunner()


def test_the_issue_example_scores_every_row_and_rejects_the_broken_ones(tmp_path, tiny_bundle):
    source = tmp_path / "q.csv"  # printf 'id,text\nr1,"open quote\nr2,hello\n...' > q.csv
    source.write_bytes(b'id,text\nr1,"open quote\nr2,hello\nr3,world\nr4,"ok"\nr5,a,b\nr6,fine\n')
    out = tmp_path / "q.parquet"
    args = ["score", str(source), "-o", str(out), "--text-col", "text", "--id-col", "id"]
    result = runner.invoke(app, [*args, "--bundle", str(tiny_bundle), "--no-progress"])

    assert pq.read_table(out).column("id").to_pylist() == ["r2", "r3", "r4", "r6"]
    assert pq.read_table(out).column("text").to_pylist() == ["hello", "world", "ok", "fine"]
    rejects = [json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["end_line"], r["id"], r["reason"]) for r in rejects] == [
        (2, 2, "r1", "unclosed_quote"),
        (6, 6, "r5", "malformed_row"),
    ]
    assert "lines 3-5 are read again as records" in rejects[0]["detail"]
    assert "rows read 6 = scored 4 + rejected 2" in result.output
    assert "input lines 7 = 6 in rows + 1 header or blank" in result.output
    assert (
        "warning: records rejected for broken quoting or length: unclosed_quote 1; their lines "
        "are in the rejects, and the lines after a broken quote were read again as rows"
    ) in result.output
    # 2 of 6 is more than the default --max-reject-rate 0.2: the run fails, after the outputs
    assert result.exit_code == 1
    assert "kefu score: 2 of 6 rows rejected (33.3%), more than --max-reject-rate 0.2 (20%)" in (
        result.output
    )
    allowed = runner.invoke(
        app,
        [*args, "--bundle", str(tiny_bundle), "--no-progress", "--max-reject-rate", "0.5"],
    )
    assert allowed.exit_code == 0, allowed.output


def test_multiline_rows_are_counted_and_reported(tmp_path, tiny_bundle):
    rows = chat_log(30, bad=False)
    rows[3]["text"] = "第一行\n第二行"
    rows[7]["text"] = "a\nb\nc\nd\ne\nf\ng"  # over --max-record-lines 5: rejected whole
    source = write_csv(rows, tmp_path / "log.csv")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        ["score", str(source), "-o", str(out), "--bundle", str(tiny_bundle), "--no-progress",
         "--id-col", "msg_id"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # the summary is the command's output; warnings go to stderr, beside errors
    assert "rows read 30 = scored 29 + rejected 1" in result.stdout
    assert "input lines 38 = 37 in rows + 1 header or blank" in result.stdout
    assert "warning: 37 lines made 30 rows: 2 of them span several lines" in result.stderr
    assert "warning: records rejected for broken quoting or length: record_too_long 1" in (
        result.stderr
    )
    assert "warning" not in result.stdout
    (reject,) = [json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert (reject["line"], reject["end_line"], reject["reason"]) == (10, 16, "record_too_long")
    assert reject["id"] == rows[7]["msg_id"]
    kept = runner.invoke(
        app,
        ["score", str(source), "-o", str(tmp_path / "all.jsonl"), "--bundle", str(tiny_bundle),
         "--no-progress", "--max-record-lines", "7"],
    )  # fmt: skip
    assert "rows read 30 = scored 30 + rejected 0" in kept.output


def test_a_json_array_on_one_line_is_scored_and_accounted_in_elements(tmp_path, tiny_bundle):
    rows = [{"id": f"m{n}", "text": text} for n, text in enumerate(["在吗", "退款", "快递没到"])]
    source = tmp_path / "export.json"  # as pandas to_json(orient="records") writes it
    source.write_text(json.dumps([rows[0], 7, *rows[1:]], ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        ["score", str(source), "-o", str(out), "--bundle", str(tiny_bundle), "--no-progress",
         "--id-col", "id", "--max-reject-rate", "0.5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in scored] == ["m0", "m1", "m2"]
    assert "rows read 4 = scored 3 + rejected 1" in result.output
    assert "input lines 4 = 4 in rows + 0 header or blank" in result.output  # elements
    (reject,) = [json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert (reject["line"], reject["end_line"], reject["reason"]) == (2, 2, "not_an_object")
