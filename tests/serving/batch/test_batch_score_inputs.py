"""`kefu score` with odd inputs and arguments: what is rejected, refused or printed (reserved
keys, record lengths, changing column types, bad arguments, unfinished runs, the summary)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, expected_bad, write_jsonl
from support.scoring_runs import read_rejects, score
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import ConfigError
from kefu.serving.batch import ScoreJob, Summary
from kefu.serving.batch.readers import reserved_key

runner = CliRunner()


def test_an_unfinished_run_needs_resume_or_fresh(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(20), tmp_path / "log.jsonl")
    (tmp_path / "out.parquet.partial").mkdir()
    with pytest.raises(ConfigError, match="pass --resume to continue it or --fresh to start over"):
        score(tmp_path, tiny_bundle, [source], "out.parquet")
    assert score(tmp_path, tiny_bundle, [source], "out.parquet", fresh=True).rows_read == 20


@pytest.mark.parametrize(
    ("files", "args", "message", "exit_code"),
    [
        ({"log.txt": b"x"}, [], "unknown input file type '.txt'", 1),
        ({"log.xlsx": b"x"}, [], "not a readable xlsx workbook", 1),
        ({"log.parquet.gz": b"x"}, [], "a compressed parquet file cannot be read", 1),
        ({"log.csv": b"id,body\n1,hi\n"}, [], "column 'text': text column 'text' is missing", 1),
        ({"log.csv": b"id,text\n1,hi\n"}, ["--id-col", "msg"], "id column 'msg' is missing", 1),
        ({"log.parquet": b"PAR1 garbage"}, [], "not a readable Parquet file", 1),
        ({"log.csv": b"text\nhi\n"}, ["-o", "out.txt"], "unknown output file type '.txt'", 2),
        ({"log.csv": b"text\nhi\n"}, ["--format", "xml"], "--format must be one of", 2),
        ({"log.csv": b"text\nhi\n"}, ["--excel-csv"], "--excel-csv applies to CSV output", 2),
        ({"log.csv": b"text\nhi\n"}, ["--encoding", "klingon"], "unknown encoding 'klingon'", 2),
        ({"log.csv": b"text\nhi\n"}, ["--variant", "fp16"], "unknown model variant 'fp16'", 2),
        ({"log.csv": b"text\nhi\n"}, ["--engine", "spark"], "--engine must be 'local' or 'ray'", 2),
    ],
)
def test_bad_arguments_print_one_clear_error_line(
    tmp_path, tiny_bundle, monkeypatch, files, args, message, exit_code
):
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        Path(name).write_bytes(content)
    output = [] if "-o" in args else ["-o", "out.parquet"]
    result = runner.invoke(
        app, ["score", *files, "--bundle", str(tiny_bundle), "--no-progress", *output, *args]
    )
    assert result.exit_code == exit_code, result.output
    assert result.output.startswith("kefu score: ") and message in result.output
    assert "Traceback" not in result.output
    if not any(word in message for word in ("type", "variant", "engine", "--", "encoding")):
        assert next(iter(files)) in result.output  # the message names the file


@pytest.mark.parametrize("rate", ["1.5", "-0.1"])
def test_a_reject_rate_outside_0_to_1_is_a_bad_option(tmp_path, tiny_bundle, rate):
    source = write_jsonl(chat_log(5), tmp_path / "log.jsonl")
    output = tmp_path / "out.parquet"
    args = ["score", str(source), "-o", str(output), "--bundle", str(tiny_bundle)]
    result = runner.invoke(app, [*args, "--max-reject-rate", rate])
    assert result.exit_code == 2
    assert "Invalid value for '--max-reject-rate'" in result.stderr
    assert not output.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1, got 0"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"resume": True, "fresh": True}, "--resume and --fresh contradict each other; pass one of them"),
    ],
)  # fmt: skip
def test_a_job_that_cannot_run_is_refused_by_its_options(tmp_path, options, message):
    with pytest.raises(ConfigError) as raised:
        ScoreJob(inputs=["log.csv"], output=tmp_path / "out.parquet", bundle=tmp_path, **options)
    assert str(raised.value) == message


def test_cli_prints_the_summary(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(100), tmp_path / "log.jsonl")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        [
            "score",
            str(source),
            "-o",
            str(out),
            "--bundle",
            str(tiny_bundle),
            "--chunk-size",
            "30",
            "--workers",
            "1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    bad = expected_bad(100)
    assert f"rows read 100 = scored {100 - bad} + rejected {bad}" in result.output
    assert "rejected by reason: empty_text 4, missing_text 4, not_text 2" in result.output
    assert "1 input file(s), engine local, 100 rows in " in result.output  # the default engine


def test_engine_ray_hands_the_job_and_its_address_to_the_ray_engine(tmp_path, monkeypatch):
    """Without starting Ray: a stand-in for the Ray engine's module takes the call (the local
    engine, handed this job, would fail on its missing input and bundle)."""
    calls = []

    def run_ray(job, ray_address=None, console=None):
        calls.append((job.output, ray_address))
        return Summary(engine="ray")

    ray_engine = types.ModuleType("kefu.serving.batch.ray_engine")
    ray_engine.run_ray = run_ray
    monkeypatch.setitem(sys.modules, ray_engine.__name__, ray_engine)
    output = tmp_path / "out.parquet"
    args = ["score", "log.jsonl", "-o", str(output), "--bundle", str(tmp_path / "no-bundle")]
    result = runner.invoke(app, [*args, "--engine", "ray", "--ray-address", "auto"])
    assert result.exit_code == 0, result.output
    assert calls == [(output, "auto")]
    assert "engine ray" in result.output


def test_kefu_bundle_names_the_bundle_when_bundle_is_left_out(tmp_path, tiny_bundle, monkeypatch):
    source = write_jsonl(chat_log(20, bad=False), tmp_path / "log.jsonl")
    monkeypatch.setenv("KEFU_BUNDLE", str(tiny_bundle))
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["score", str(source), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert set(pq.read_table(out).column("model_version").to_pylist()) == {"tiny-0"}


def test_batch_and_report_import_neither_torch_nor_ray():
    code = (
        "import sys, kefu.serving.batch, kefu.serving.batch.local_engine, kefu.serving.report; "
        "bad = [m for m in ('torch', 'transformers', 'ray') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_first_jsonl_record_without_text_is_a_reject_not_a_refused_file(tmp_path, tiny_bundle):
    source = tmp_path / "log.jsonl"
    lines = [
        {"id": "a", "body": "我的快递呢"},
        {"id": "b", "text": "在吗"},
        {"id": "c", "text": "退款"},
    ]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), "utf-8")
    summary = score(tmp_path, tiny_bundle, [source], "out.jsonl")
    assert (summary.rows_read, summary.scored, summary.rejected) == (3, 2, 1)
    assert [(r["line"], r["reason"]) for r in read_rejects(tmp_path / "out.jsonl")] == [
        (1, "missing_text")
    ]


def test_a_reserved_key_late_in_a_jsonl_file_rejects_that_row(tmp_path, tiny_bundle):
    rows = [{"id": f"r{i}", "text": "在吗"} for i in range(1_001)]
    rows.append({"id": "late", "text": "退款", "_kefu_order": 5})
    source = tmp_path / "log.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    summary = score(tmp_path, tiny_bundle, [source], "out.parquet", id_col="id", chunk_size=512)
    assert (summary.scored, summary.rejected) == (1_001, 1)
    (reject,) = read_rejects(tmp_path / "out.parquet")
    assert (reject["line"], reject["id"], reject["reason"]) == (1_002, "late", "reserved_column")
    assert reject["detail"] == "key '_kefu_order' starts with '_kefu_' (reserved)"
    assert pq.read_table(tmp_path / "out.parquet").column_names[:2] == ["id", "text"]


def test_a_long_reserved_key_is_quoted_cut_and_marked():
    key = "_kefu_x" + "👍🏽" * 40
    reason, detail = reserved_key({"text": "在吗", key: 1})
    # a plain cut at 64 characters of the key kept a hand without its skin tone, and no mark
    assert (reason, detail) == (
        "reserved_column",
        f"key '_kefu_x{'👍🏽' * 15}… starts with '_kefu_' (reserved)",
    )


def test_a_csv_record_is_refused_for_its_length_only_past_the_text_limit(tmp_path, tiny_bundle):
    source = tmp_path / "log.csv"
    source.write_text(
        "id,channel,text\n"
        + f"a,{'x' * 40},{'长' * 19_990}\n"  # a text within the default limit, a record over it
        + f"b,web,{'长' * 25_000}\n",
        "utf-8",
    )
    default = score(tmp_path, tiny_bundle, [source], "a.jsonl")
    assert (default.scored, default.rejected) == (1, 1)
    (reject,) = read_rejects(tmp_path / "a.jsonl")
    assert (reject["line"], reject["column"], reject["reason"]) == (3, "text", "text_too_long")
    raised = score(tmp_path, tiny_bundle, [source], "b.jsonl", max_text_chars=50_000)
    assert (raised.scored, raised.rejected) == (2, 0)


def test_a_parquet_text_column_of_categories_is_scored(tmp_path, tiny_bundle):
    """pandas writes a `category` column as a dictionary of strings, one per row group."""
    texts = ["退款", "在吗", "退款", None, "发货"]
    source = tmp_path / "log.parquet"
    pq.write_table(
        pa.table({"text": pa.array(texts).dictionary_encode()}), source, row_group_size=2
    )
    summary = score(tmp_path, tiny_bundle, [source], "out.parquet", chunk_size=2)
    assert (summary.scored, summary.rejected) == (4, 1)
    assert pq.read_table(tmp_path / "out.parquet").column("text").to_pylist() == [
        "退款",
        "在吗",
        "退款",
        "发货",
    ]
    (reject,) = read_rejects(tmp_path / "out.parquet")
    assert (reject["line"], reject["reason"]) == (4, "missing_text")


def test_a_missing_jsonl_column_says_which_records_were_read(tmp_path, tiny_bundle):
    source = tmp_path / "log.jsonl"
    source.write_text('{"id": "a", "body": "在吗"}\n', encoding="utf-8")
    result = runner.invoke(
        app, ["score", str(source), "-o", str(tmp_path / "o.jsonl"), "--bundle", str(tiny_bundle)]
    )
    assert result.exit_code == 1
    assert "found columns ['id', 'body'] (the keys of its first 1,000 lines)" in result.output


def test_a_column_whose_type_changes_between_chunks_is_promoted_or_becomes_text(
    tmp_path, tiny_bundle
):
    """Each JSONL chunk has its own column types: 1 then 1.5 is a float column, 7 then "seven"
    a text column, and every row is kept."""
    rows = [
        {"text": "在吗", "n": 1 if i < 4 else 1.5, "mixed": 7 if i < 4 else "seven"}
        for i in range(8)
    ]
    source = write_jsonl(rows, tmp_path / "log.jsonl")
    score(tmp_path, tiny_bundle, [source], "out.parquet", chunk_size=4)
    table = pq.read_table(tmp_path / "out.parquet")
    assert (table.schema.field("n").type, table.schema.field("mixed").type) == (
        pa.float64(),
        pa.string(),
    )
    assert table.column("n").to_pylist() == [1.0] * 4 + [1.5] * 4
    assert table.column("mixed").to_pylist() == ["7"] * 4 + ["seven"] * 4
