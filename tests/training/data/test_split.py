"""`kefu data split`: chats and repeated texts kept whole, near-repeats moved to train, stable
placement, and files `kefu train --data-dir` reads without column options."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError, InputError
from kefu.training.data.loader import load_labelled
from kefu.training.data.overlap import max_jaccard
from kefu.training.data.split import SPLITS, parse_shares, split_labelled, write_splits
from kefu.training.evaluation.conversations import conversations_of

runner = CliRunner()
HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"


def unique_text(rng: random.Random) -> str:
    return "".join(rng.choice(HANZI) for _ in range(14))


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def labelled(index: int, text: str, **extra) -> dict:
    return {"id": f"r{index}", "text": text, "intent": "other", "urgency": "low", **extra}


def placement(split) -> dict[str, str]:
    return {row.id: name for name in SPLITS for row in split.rows[name]}


def test_chats_and_repeated_texts_sit_in_one_split(tmp_path):
    rng = random.Random(1)
    rows = []
    for chat in range(60):
        for _turn in range(4):
            rows.append(labelled(len(rows), unique_text(rng), chat=f"c{chat}"))
    for _repeat in range(40):
        text = unique_text(rng)
        rows += [labelled(len(rows), text), labelled(len(rows) + 1, text)]
    data = load_labelled(write_rows(tmp_path / "rows.jsonl", rows))
    split = split_labelled(data, session_column="chat")
    where = placement(split)
    by_chat: dict[str, set[str]] = {}
    by_text: dict[str, set[str]] = {}
    for row in data.rows:
        by_text.setdefault(row.text, set()).add(where[row.id])
        if row.extra.get("chat"):
            by_chat.setdefault(row.extra["chat"], set()).add(where[row.id])
    assert all(len(splits) == 1 for splits in by_chat.values())
    assert all(len(splits) == 1 for splits in by_text.values())
    assert {name for splits in by_chat.values() for name in splits} == set(SPLITS)
    assert sum(split.groups.values()) == 60


def test_a_held_out_text_that_nearly_repeats_a_training_text_moves_to_train(tmp_path):
    rng = random.Random(2)
    rows = []
    for _pair in range(80):  # one character apart: 5-gram Jaccard 10/12 = 0.83
        text = unique_text(rng) + "吗"
        rows += [labelled(len(rows), text), labelled(len(rows) + 1, text[:-1] + "呢")]
    data = load_labelled(write_rows(tmp_path / "rows.jsonl", rows))
    split = split_labelled(data, shares=(0.5, 0.25, 0.25))
    assert sum(split.moved.values()) > 0
    train = [row.text for row in split.rows["train"]]
    for name in ("dev", "test"):
        assert (max_jaccard([row.text for row in split.rows[name]], train) < 0.8).all()
    assert sum(len(split.rows[name]) for name in SPLITS) == len(rows)  # nothing lost
    lines = [row.line for row in split.rows["train"]]
    assert lines == sorted(lines)  # moved rows take their place in file order


def test_a_chat_turn_that_nearly_repeats_a_training_text_stays_with_its_chat(tmp_path):
    rng = random.Random(6)
    rows = []
    for chat in range(60):  # a lone message, and a chat whose first turn rewords it
        text = unique_text(rng) + "吗"
        rows.append(labelled(len(rows), text))
        rows.append(labelled(len(rows), text[:-1] + "呢", chat=f"c{chat}"))
        rows.append(labelled(len(rows), unique_text(rng), chat=f"c{chat}"))
    split = split_labelled(
        load_labelled(write_rows(tmp_path / "rows.jsonl", rows)), session_column="chat"
    )
    where = placement(split)
    chats = [{where[f"r{row}"], where[f"r{row + 1}"]} for row in range(1, len(rows), 3)]
    assert all(len(splits) == 1 for splits in chats)
    assert {name for splits in chats for name in splits} == set(SPLITS)


def test_texts_repeated_in_another_case_width_or_spacing_sit_in_one_split(tmp_path):
    rng = random.Random(7)
    rows = []
    for _text in range(200):
        text = unique_text(rng) + "ok"
        for variant in (text, text.upper(), f" {text[:7]} {text[7:-2]}ＯＫ"):
            rows.append(labelled(len(rows), variant))
    split = split_labelled(
        load_labelled(write_rows(tmp_path / "rows.jsonl", rows)), shares=(0.1, 0.45, 0.45)
    )
    where = placement(split)
    families = [{where[f"r{row + i}"] for i in range(3)} for row in range(0, len(rows), 3)]
    assert all(len(splits) == 1 for splits in families)


def test_placement_is_stable_when_rows_are_added_and_moves_with_the_seed(tmp_path):
    rng = random.Random(3)
    rows = [labelled(index, unique_text(rng)) for index in range(300)]
    first = placement(split_labelled(load_labelled(write_rows(tmp_path / "a.jsonl", rows))))
    more = rows + [labelled(300 + index, unique_text(rng)) for index in range(100)]
    grown = placement(split_labelled(load_labelled(write_rows(tmp_path / "b.jsonl", more))))
    assert all(grown[row_id] == name for row_id, name in first.items())
    shares = {name: list(first.values()).count(name) / 300 for name in SPLITS}
    assert shares["train"] == pytest.approx(0.7, abs=0.08)
    reseeded = placement(
        split_labelled(load_labelled(write_rows(tmp_path / "a.jsonl", rows)), seed=14)
    )
    assert reseeded != first


def test_the_files_hold_kefus_own_columns_and_load_without_options(tmp_path):
    source = tmp_path / "export.csv"
    source.write_text(
        "工单号,content,意图,urgency,emotion,shop\n"
        "T1,我的快递三天没动了,物流异常,high,,京东\n"
        "T2,退款怎么还没到账,退款退货,high,不满/失望,京东\n"
        "T3,在吗,问候,low,平静,\n",
        encoding="utf-8-sig",
    )
    data = load_labelled(source, text_col="content", intent_col="意图", id_col="工单号")
    split = split_labelled(data, shares=(1.0, 0.0, 0.0))
    written = write_splits(split, tmp_path / "out", data.rejects)
    lines = [json.loads(line) for line in written["train"].read_text("utf-8").splitlines()]
    assert lines[0] == {
        "id": "T1",
        "text": "我的快递三天没动了",
        "intent": "logistics_issue",
        "urgency": "high",
        "emotion": None,
        "shop": "京东",
    }
    assert written["dev"].read_text("utf-8") == ""
    again = load_labelled(written["train"])
    assert [row.labels for row in again.rows] == [row.labels for row in data.rows]


def test_the_session_column_is_written_as_the_session_evaluation_groups_chats_by(tmp_path):
    """A shop's chat id column (`会话ID`) becomes `session` too, so `kefu evaluate` on the split
    sees each chat (conversation view, chat-wise intervals) without --session-col."""
    source = tmp_path / "export.csv"
    source.write_text(
        "id,会话ID,text,intent\n"
        "a1,c1,在吗,greeting\n"
        "a2,c1,我的快递三天没动了,logistics_issue\n"
        "a3,,退款怎么还没到账,refund_return\n",
        encoding="utf-8",
    )
    data = load_labelled(source)
    split = split_labelled(data, session_column="会话ID", shares=(0.0001, 0.0, 0.9999))
    written = write_splits(split, tmp_path / "out", data.rejects)
    test_rows = [json.loads(line) for line in written["test"].read_text("utf-8").splitlines()]
    assert [(row["id"], row["session"], row["会话ID"]) for row in test_rows] == [
        ("a1", "c1", "c1"),
        ("a2", "c1", "c1"),
        ("a3", None, ""),
    ]
    chats = conversations_of(load_labelled(written["test"]))
    assert {session: [row.id for row in turns] for session, turns in chats.items()} == {
        "c1": ["a1", "a2"]
    }


def test_the_turn_column_is_written_as_the_turn_evaluation_orders_chats_by(tmp_path):
    """A shop's export lists a chat's turns in any order; `--turn-col 轮次` carries the order."""
    source = tmp_path / "export.csv"
    source.write_text(
        "id,会话ID,轮次,text,intent\n"
        "a2,c1,2,我的快递三天没动了,logistics_issue\n"
        "a1,c1,1,在吗,greeting\n"
        "a3,c1,第三轮,退款怎么还没到账,refund_return\n",
        encoding="utf-8",
    )
    data = load_labelled(source)
    split = split_labelled(
        data, session_column="会话ID", turn_column="轮次", shares=(0.0001, 0.0, 0.9999)
    )
    written = write_splits(split, tmp_path / "out", data.rejects)
    test_rows = [json.loads(line) for line in written["test"].read_text("utf-8").splitlines()]
    assert [(row["id"], row["turn"]) for row in test_rows] == [("a2", 2), ("a1", 1), ("a3", None)]
    chats = conversations_of(load_labelled(written["test"]))
    assert [row.id for row in chats["c1"]] == ["a1", "a2", "a3"]  # unreadable turns last
    with pytest.raises(DataError, match=r"turn column 'turn' is missing; found columns \["):
        split_labelled(data, turn_column="turn")


def test_parse_shares():
    assert parse_shares("80,10,10") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_shares("90,10,0") == pytest.approx((0.9, 0.1, 0.0))  # no test split: allowed
    with pytest.raises(InputError) as caught:
        parse_shares("0.7,0.1,0.1,0.1")
    assert str(caught.value) == (
        "--shares '0.7,0.1,0.1,0.1' is not three non-negative numbers for train, dev and test, "
        "e.g. 0.7,0.15,0.15 or 80,10,10"
    )
    for bad in ("0.7,0.3", "a,b,c", "0,0.5,0.5", "-1,1,1"):
        with pytest.raises(InputError, match="--shares"):
            parse_shares(bad)


def test_a_missing_session_column_is_named_with_the_columns_found(tmp_path):
    data = load_labelled(write_rows(tmp_path / "rows.jsonl", [labelled(0, "在吗")]))
    with pytest.raises(DataError, match=r"session column 'chat_id' is missing; found columns \["):
        split_labelled(data, session_column="chat_id")


def test_kefu_data_split_writes_rejects_and_refuses_to_overwrite(tmp_path):
    rows = [labelled(index, f"第{index}个问题怎么处理呢") for index in range(30)]
    rows.append({"id": "bad", "text": "在吗", "intent": "no_such_intent"})
    source = write_rows(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "splits"
    done = runner.invoke(app, ["data", "split", str(source), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "1 rejected rows in" in done.output
    # no --config: the default config's path is relative to a checkout, the split may be anywhere
    assert f"next: kefu train --data-dir {out} --out models/mine" in done.output
    reject = json.loads((out / "rejects.jsonl").read_text("utf-8"))
    assert (reject["id"], reject["reason"]) == ("bad", "unknown_label")
    kept = sum(len((out / f"{name}.jsonl").read_text("utf-8").splitlines()) for name in SPLITS)
    assert kept == 30
    again = runner.invoke(app, ["data", "split", str(source), "--out", str(out)])
    assert again.exit_code == 2
    assert "already holds train.jsonl, dev.jsonl, test.jsonl, rejects.jsonl" in again.output
    forced = runner.invoke(app, ["data", "split", str(source), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output


def test_the_table_names_an_output_folder_with_brackets_as_it_is(tmp_path):
    # rich reads [b] as markup: the folder's name would lose it in the table
    source = write_rows(tmp_path / "rows.jsonl", [labelled(i, f"第{i}个问题") for i in range(5)])
    out = tmp_path / "v[b]"
    done = runner.invoke(
        app, ["data", "split", str(source), "--out", str(out)], env={"COLUMNS": "400"}
    )
    assert done.exit_code == 0, done.output
    assert str(out / "train.jsonl") in done.output
