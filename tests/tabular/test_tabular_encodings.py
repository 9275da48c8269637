"""Users' real files: GBK from Excel, UTF-8 with a BOM, forced encodings, and what fails how."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import ConfigError, DataError
from kefu.serving.batch.readers import read_chunks
from kefu.tabular import (
    ReadOptions,
    decoding,
    estimate_records,
    read_columns,
    read_records,
    table_file,
    write_rejects,
)
from kefu.tabular.decoding import file_encoding
from kefu.training.config import load_config
from kefu.training.data.loader import load_labelled

runner = CliRunner()
# What Excel on Chinese Windows writes for "Save as CSV": GBK, CRLF, a Chinese header.
EXCEL_ROWS = [
    ("编号", "内容", "意图"),
    ("1", "我的快递三天没动了", "logistics_issue"),
    ("2", "退款怎么还没到账！！", "refund_return"),
    ("3", "转人工，电话13812345678", "human_agent"),
]
COLUMNS = ["--text-col", "内容", "--id-col", "编号"]


def excel_csv(path: Path, encoding: str = "gbk", bom: bytes = b"") -> Path:
    text = "".join(",".join(row) + "\r\n" for row in EXCEL_ROWS)
    path.write_bytes(bom + text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("name", "encoding", "bom", "detected"),
    [
        ("gbk.csv", "gbk", b"", "gb18030"),
        ("gb18030.csv", "gb18030", b"", "gb18030"),
        ("bom.csv", "utf-8", b"\xef\xbb\xbf", "utf-8"),
        ("plain.csv", "utf-8", b"", "utf-8"),
    ],
)
def test_each_encoding_is_detected_and_read_the_same(tmp_path, name, encoding, bom, detected):
    path = excel_csv(tmp_path / name, encoding, bom)
    assert file_encoding(table_file(path)) == detected
    assert read_columns(table_file(path)) == ["编号", "内容", "意图"]  # no BOM in the first name
    records = list(read_records(table_file(path)))
    assert [r.values for r in records] == [
        dict(zip(EXCEL_ROWS[0], row, strict=True)) for row in EXCEL_ROWS[1:]
    ]
    assert [(r.line, r.end_line, r.problem) for r in records] == [
        (2, 2, None),
        (3, 3, None),
        (4, 4, None),
    ]


def test_a_mostly_utf8_file_with_damage_stays_utf8(tmp_path):
    path = tmp_path / "damaged.csv"
    path.write_bytes("id,text\n1,我的快递三天没动了\n2,退款\n".encode() + b"3,\xc4\xe3\n")
    assert file_encoding(table_file(path)) == "utf-8"
    *_, damaged = read_records(table_file(path))
    assert damaged.values == {"id": "3", "text": "\udcc4\udce3"}  # kept, rejected by the text check


MAC_CSV = '编号,内容\r1,"两行\r留言"\r2,退款\r'  # Excel for Mac's "CSV (Macintosh)": CR only


def test_a_file_whose_lines_end_with_a_bare_cr_reads_as_its_rows(tmp_path):
    """Split at LF alone, such a file is one line: its header would hold every row."""
    path = tmp_path / "mac.csv"
    path.write_bytes(MAC_CSV.encode("gbk"))
    assert read_columns(table_file(path)) == ["编号", "内容"]
    records = list(read_records(table_file(path)))
    assert [(r.line, r.end_line, r.values) for r in records] == [
        (2, 3, {"编号": "1", "内容": "两行\r留言"}),
        (4, 4, {"编号": "2", "内容": "退款"}),
    ]
    assert estimate_records(table_file(path)) == 3  # lines after the header: an upper bound


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_lines_split_across_read_pieces_are_whole(tmp_path, monkeypatch, end):
    monkeypatch.setattr(decoding, "SNIFF_BYTES", 16)
    monkeypatch.setattr(decoding, "PIECE_BYTES", 5)
    path = tmp_path / "log.csv"
    rows = [("编号", "内容"), *((str(i), "很长的一条留言" * i) for i in range(1, 6))]
    path.write_bytes("".join(",".join(row) + end for row in rows).encode("gbk"))
    records = list(read_records(table_file(path)))
    assert [(r.line, r.values) for r in records] == [
        (i, dict(zip(rows[0], row, strict=True))) for i, row in enumerate(rows[1:], start=2)
    ]


def test_a_bom_where_joined_json_lines_files_start_is_dropped(tmp_path):
    """`cat a.jsonl b.jsonl` of two exports saved with a BOM: b's first line is no broken JSON."""
    path = tmp_path / "joined.jsonl"
    part = b'\xef\xbb\xbf{"id": "1", "text": "\xe5\x9c\xa8\xe5\x90\x97"}\n'
    path.write_bytes(part + part.replace(b'"1"', b'"2"'))
    assert [(r.line, r.values, r.problem) for r in read_records(table_file(path))] == [
        (1, {"id": "1", "text": "在吗"}, None),
        (2, {"id": "2", "text": "在吗"}, None),
    ]


def test_gbk_excel_csv_works_for_validate_score_and_report(tmp_path, tiny_bundle):
    path = excel_csv(tmp_path / "导出.csv")
    validate = runner.invoke(app, ["data", "validate", str(path), *COLUMNS, "--intent-col", "意图"])
    assert validate.exit_code == 0, validate.output
    assert f"{path}: 3 usable rows, 0 rejected" in validate.output
    out = tmp_path / "scored.csv"
    score = runner.invoke(
        app,
        [
            "score",
            str(path),
            "-o",
            str(out),
            "--bundle",
            str(tiny_bundle),
            "--no-progress",
            *COLUMNS,
        ],
    )
    assert score.exit_code == 0, score.output
    assert "rows read 3 = scored 3 + rejected 0" in score.output
    scored = out.read_text(encoding="utf-8").splitlines()  # output is always UTF-8
    assert scored[0].startswith('"编号","内容","意图","intent","intent_confidence",')
    assert '"我的快递三天没动了"' in scored[1]
    report = runner.invoke(
        app, ["report", str(out), "-o", str(tmp_path / "r.html"), "--text-col", "内容"]
    )
    assert report.exit_code == 0, report.output
    assert "3 messages from 1 file(s)" in report.output


def test_forcing_the_wrong_encoding_names_file_line_encoding_and_the_fix(tmp_path, tiny_bundle):
    path = excel_csv(tmp_path / "gbk.csv")
    with pytest.raises(DataError) as caught:
        read_columns(table_file(path), ReadOptions(encoding="utf-8"))
    assert str(caught.value) == (
        f"file {path}, line 1: the header is not valid utf-8: column 1's name: invalid utf-8 "
        "byte 0xb1 at character 0 (if the file is not utf-8, pass --encoding gb18030)"
    )
    result = runner.invoke(
        app,
        [
            "score",
            str(path),
            "-o",
            str(tmp_path / "o.parquet"),
            "--bundle",
            str(tiny_bundle),
            "--encoding",
            "utf-8",
            *COLUMNS,
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"kefu score: file {path}, line 1: the header is not valid utf-8" in result.output
    assert "pass --encoding gb18030" in result.output
    forced = load_labelled(path, text_col="内容", intent_col="意图", id_col="编号", encoding="gbk")
    assert len(forced.rows) == 3


def test_a_header_that_does_not_decode_names_the_column_the_byte_is_in(tmp_path):
    """The character position counts within one column's name, so the column is named too."""
    path = tmp_path / "export.csv"
    path.write_bytes("id,内容\r\n1,你好\r\n".encode("gbk"))
    with pytest.raises(DataError) as caught:
        read_columns(table_file(path), ReadOptions(encoding="utf-8"))
    assert str(caught.value) == (
        f"file {path}, line 1: the header is not valid utf-8: column 2's name: invalid utf-8 "
        "byte 0xc4 at character 0 (if the file is not utf-8, pass --encoding gb18030)"
    )


def test_rows_that_do_not_decode_fail_validate_and_score_with_the_fix(tmp_path, tiny_bundle):
    path = tmp_path / "ascii-header.csv"  # an ASCII header leaves only the rows to fail
    path.write_bytes(
        b"id,text,intent\r\n" + "1,在吗,greeting\r\n2,退款,refund_return\r\n".encode("gbk")
    )
    validate = runner.invoke(app, ["data", "validate", str(path), "--encoding", "utf-8"])
    assert validate.exit_code == 1
    assert (
        f"kefu data validate: file {path}: no usable rows (rejected: undecodable_text 2); "
        "if the file is GBK/GB18030, rerun with --encoding gb18030" in validate.output
    )
    assert (
        "rejected: " + str(path) + ", line 2, column 'text': invalid utf-8 byte 0xd4"
        in validate.output
    )
    out = tmp_path / "o.jsonl"
    score = runner.invoke(
        app,
        [
            "score",
            str(path),
            "-o",
            str(out),
            "--bundle",
            str(tiny_bundle),
            "--encoding",
            "utf-8",
            "--no-progress",
        ],
    )
    assert score.exit_code == 1
    assert score.output.count("kefu score: ") == 1
    assert f"{path}: no usable rows (2 read, all rejected)" in score.output
    assert "rerun with --encoding gb18030" in score.output
    assert out.exists() and len(Path(f"{out}.rejects.jsonl").read_text().splitlines()) == 2
    detected = runner.invoke(
        app,
        [
            "score",
            str(path),
            "-o",
            str(tmp_path / "ok.parquet"),
            "--bundle",
            str(tiny_bundle),
            "--no-progress",
        ],
    )
    assert detected.exit_code == 0, detected.output
    assert pq.read_table(tmp_path / "ok.parquet").column("text").to_pylist() == ["在吗", "退款"]


def test_utf16_and_unknown_encodings_are_refused_with_the_fix(tmp_path):
    path = tmp_path / "unicode.csv"
    for encoding in ("utf-16", "utf-16-be", "utf-32", "utf-32-be"):
        mark = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}
        path.write_bytes(mark.get(encoding, b"") + "id,text\n1,在吗\n".encode(encoding))
        with pytest.raises(DataError) as caught:
            read_columns(table_file(path))
        wide = encoding[:6]  # the command converts from UTF-32 as UTF-32, not as UTF-16
        assert str(caught.value) == (
            f"file {path}: the file is {wide.upper()} (it starts with its byte-order mark); save "
            f'it as "CSV UTF-8" or convert it: iconv -f {wide} -t utf-8 {path} > '
            f"{tmp_path}/unicode-utf8.csv"
        )
    excel = tmp_path / "客服 导出.txt"  # Excel's "Unicode Text": UTF-16, tab-separated
    excel.write_bytes("id\ttext\r\n1\t在吗\r\n".encode("utf-16"))
    with pytest.raises(DataError) as caught:
        table_file(excel)
    assert str(caught.value).endswith(
        f'rename the file or convert it (Excel\'s "Unicode Text" .txt: iconv -f utf-16 -t '
        f"utf-8 '{excel}' > '{tmp_path}/客服 导出-utf8.tsv')"
    )
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        ReadOptions(encoding="klingon")
    with pytest.raises(ConfigError, match="not ASCII-compatible"):
        ReadOptions(encoding="utf-16")
    assert ReadOptions(encoding="GBK").encoding == "gbk"
    assert ReadOptions(encoding="utf-8-sig").encoding == "utf-8"


def test_train_takes_the_encoding_as_a_config_field(tmp_path):
    assert load_config(None, ["data_encoding=gb18030"]).data_encoding == "gb18030"
    with pytest.raises(ConfigError, match="config data_encoding = 'klingon'"):
        load_config(None, ["data_encoding=klingon"])
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--encoding", "klingon"])
    assert result.exit_code == 2 and "kefu train: config data_encoding = 'klingon'" in result.output


def test_rejects_of_a_gbk_file_are_utf8_json(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("编号,内容,意图\r\n1,在吗,打招呼\r\n".encode("gbk"))  # 问候 would resolve
    data = load_labelled(path, text_col="内容", intent_col="意图", id_col="编号")
    out = tmp_path / "rejects.jsonl"
    write_rejects(data.rejects, out)
    assert "打招呼" in out.read_text(encoding="utf-8")  # readable as it is, not \\u-escaped
    (reject,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert (reject["id"], reject["column"], reject["reason"]) == ("1", "意图", "unknown_label")
    assert "unknown intent label '打招呼'" in reject["detail"]


@pytest.mark.parametrize(
    ("name", "content", "detected"),
    [
        # one well-formed UTF-8 character and one bad byte: not mostly UTF-8
        ("tie.csv", "id,text\n1,在\n".encode() + b"2,\xc4\n", "gb18030"),
        # a byte-order mark says UTF-8, whatever follows
        ("bom.csv", b"\xef\xbb\xbf" + "id,text\n1,在吗\n2,你好\n".encode("gbk"), "utf-8"),
        # GBK after the first KiB of ASCII rows is still seen
        ("late.csv", b"id,text\n" + b"".join(b"%d,hello\n" % i for i in range(1000)) + "1000,在吗\n".encode("gbk"), "gb18030"),
    ],
)  # fmt: skip
def test_the_encoding_follows_the_stated_rule_at_its_edges(tmp_path, name, content, detected):
    path = tmp_path / name
    path.write_bytes(content)
    assert file_encoding(table_file(path)) == detected


def test_a_gb18030_row_that_does_not_decode_says_to_try_utf8(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("id,text\n1,在吗\n".encode("gbk") + b"2,\x80\n")
    (chunk,) = read_chunks(table_file(path), text_col="text", id_col="id", chunk_size=10)
    assert [(r["line"], r["reason"], r["detail"]) for r in chunk.rejects] == [
        (3, "undecodable_text", "invalid gb18030 byte 0x80 at character 0 (if the file is not gb18030, pass --encoding utf-8)"),
    ]  # fmt: skip


def test_a_header_that_does_not_decode_gives_the_readers_own_fix(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("编号,内容\n1,在吗\n".encode("gbk"))
    options = ReadOptions(encoding="utf-8", encoding_fix="convert the file to UTF-8")
    with pytest.raises(DataError) as caught:
        read_columns(table_file(path), options)
    assert str(caught.value) == (
        f"file {path}, line 1: the header is not valid utf-8: column 1's name: invalid utf-8 "
        "byte 0xb1 at character 0 (convert the file to UTF-8)"
    )
