"""Broken CSV quoting loses nothing: suspicious records are rejected by line, the rest re-read."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.tabular import ReadOptions, read_blocks, read_records, table_file

ISSUE_14 = 'id,text\nr1,"open quote\nr2,hello\nr3,world\nr4,"ok"\nr5,a,b\nr6,fine\n'


def records(path: Path, **options):
    return [
        (r.line, r.end_line, (r.values or {}).get("id"), r.problem and r.problem[0])
        for r in read_records(table_file(path), ReadOptions(**options))
    ]


def csv_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "q.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_an_unterminated_quote_no_longer_swallows_the_rows_after_it(tmp_path):
    path = csv_file(tmp_path, ISSUE_14)
    assert records(path) == [
        (2, 2, "r1", "unclosed_quote"),  # rejected alone; lines 3-5 are read again
        (3, 3, "r2", None),
        (4, 4, "r3", None),
        (5, 5, "r4", None),
        (6, 6, "r5", "malformed_row"),  # keeps its id
        (7, 7, "r6", None),
    ]
    first = next(iter(read_records(table_file(path))))
    assert first.problem[1] == (
        "a quoted field opens on this line and does not close properly: it runs to line 5 "
        "(',' expected after '\"'); lines 3-5 are read again as records"
    )
    assert [r.values["text"] for r in read_records(table_file(path))][1:4] == [
        "hello",
        "world",
        "ok",
    ]


def test_a_long_well_formed_record_is_rejected_whole_unless_allowed(tmp_path):
    card = "\n".join(f"[第{i}行]" for i in range(7))
    path = csv_file(tmp_path, f'id,text\na,"{card}"\nb,next\n')
    assert records(path) == [(2, 8, "a", "record_too_long"), (9, 9, "b", None)]
    assert records(path, max_record_lines=7) == [(2, 8, "a", None), (9, 9, "b", None)]
    two_lines = csv_file(tmp_path, 'id,text\na,"第一行\n第二行"\n')
    assert records(two_lines) == [(2, 3, "a", None)]  # line breaks in a message are fine


def test_a_quote_open_to_the_end_of_the_file_or_past_the_limit(tmp_path):
    to_eof = csv_file(tmp_path, 'id,text\nr1,ok\nr2,"never closed\nr3,x\nr4,y\n')
    assert records(to_eof) == [
        (2, 2, "r1", None),
        (3, 3, "r2", "unclosed_quote"),
        (4, 4, "r3", None),
        (5, 5, "r4", None),
    ]
    assert [r.problem[1] for r in read_records(table_file(to_eof)) if r.problem] == [
        "a quoted field opens on this line and does not close properly: it runs to the end of "
        "the file (line 5); lines 4-5 are read again as records"
    ]
    rows = "".join(f"r{i},{'长' * 50}\n" for i in range(3, 300))
    runaway = csv_file(tmp_path, f'id,text\nr1,ok\nr2,"open\n{rows}')
    found = records(runaway, max_record_chars=1000)
    assert found[:3] == [(2, 2, "r1", None), (3, 3, "r2", "unclosed_quote"), (4, 4, "r3", None)]
    assert len(found) == 299 and all(problem is None for *_, problem in found[2:])


def test_one_line_quirks_read_as_before_and_over_long_lines_are_rejected(tmp_path):
    path = csv_file(tmp_path, 'id,text,shop\n1,"VIP"客户问题,a\n2,' + "长" * 60 + ",b\n")
    found = list(read_records(table_file(path), ReadOptions(max_record_chars=50)))
    assert found[0].values == {"id": "1", "text": "VIP客户问题", "shop": "a"}
    assert (found[1].line, found[1].problem[0], found[1].values["id"]) == (
        3,
        "record_too_long",
        "2",
    )


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_blocks_still_account_for_every_line_after_recovery(tmp_path, size):
    path = csv_file(tmp_path, ISSUE_14 + "\n\nr7,last\n")
    blocks = list(read_blocks(table_file(path), size))
    assert sum(block.lines for block in blocks) == ISSUE_14.count("\n") + 3
    assert sum(len(block) for block in blocks) == 7
    lines = [(r.line, r.end_line) for block in blocks for r in block.records]
    assert lines == sorted(lines) and len({line for line, _ in lines}) == 7


def test_the_character_limit_keeps_a_record_of_exactly_the_limit(tmp_path):
    one_line = csv_file(tmp_path, "id,text\n1," + "x" * 7 + "\n")  # 10 characters with its \n
    assert records(one_line, max_record_chars=10) == [(2, 2, "1", None)]
    two_lines = csv_file(tmp_path, 'id,text\na,"xx\nxx"\nb,ok\n')  # 6 + 4 characters
    assert records(two_lines, max_record_chars=10) == [(2, 3, "a", None), (4, 4, "b", None)]
    # a first line of exactly the limit is read on: the record closes, whole and too long
    at_limit = csv_file(tmp_path, 'id,text\na,"' + "x" * 6 + '\nend"\nb,ok\n')
    (first, second) = read_records(table_file(at_limit), ReadOptions(max_record_chars=10))
    assert (first.line, first.end_line, first.problem) == (
        2,
        3,
        ("record_too_long", "the record holds 15 characters, more than the limit of 10"),
    )
    assert (second.line, second.values) == (4, {"id": "b", "text": "ok"})


def test_an_over_long_line_is_rejected_by_what_is_wrong_with_it(tmp_path):
    long_text = "长" * 60
    path = csv_file(tmp_path, f'id,text\nr1,"{long_text}\nr2,ok\nr3,{long_text},extra\nr4,ok\n')
    found = list(read_records(table_file(path), ReadOptions(max_record_chars=50)))
    assert [(r.line, r.end_line, r.values["id"], r.problem) for r in found] == [
        (2, 2, "r1", ("unclosed_quote", "a quoted field opens on this line and does not close properly: it is still open after 1 line (65 characters)")),
        (3, 3, "r2", None),
        (4, 4, "r3", ("record_too_long", "the record holds 70 characters, more than the limit of 50")),
        (5, 5, "r4", None),
    ]  # fmt: skip


def test_records_with_too_few_fields_name_the_count(tmp_path):
    path = csv_file(tmp_path, ' id , text ,shop\nr1,a\nr2,"b\nc",d,e\nr3,ok,s\n')
    found = list(read_records(table_file(path)))
    assert [(r.line, r.end_line, r.values, r.problem) for r in found] == [
        (2, 2, {"id": "r1", "text": "a"}, ("malformed_row", "expected 3 fields, found 2")),
        (3, 3, {"id": "r2", "text": "b\n"}, ("unclosed_quote", "a quoted field opens on this line and does not close properly: it runs to line 4 and leaves 4 fields, not 3; lines 4-4 are read again as records")),
        (4, 4, {"id": 'c"', "text": "d", "shop": "e"}, None),  # read again, on its own
        (5, 5, {"id": "r3", "text": "ok", "shop": "s"}, None),
    ]  # fmt: skip
