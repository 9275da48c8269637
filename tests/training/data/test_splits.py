"""`load_splits`: the configured files read as train and dev rows, dev held out by normalised
text when no dev file is named, rejected rows summed up in one warning, and a file or a split
left without rows refused by name."""

import json
from pathlib import Path

import pytest

from kefu.errors import DataError
from kefu.serving.taxonomy import load_taxonomy
from kefu.training.config import build_config
from kefu.training.data.loader import load_labelled
from kefu.training.data.splits import load_splits

HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"
FULL_WIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def read(config_values: dict) -> tuple[list, list, list[str]]:
    """(train rows, dev rows, warnings logged) of `load_splits` on a config of these values."""
    logged: list[str] = []
    train, _, dev, _ = load_splits(build_config(config_values), load_taxonomy(), logged.append)
    return train, dev, logged


def test_without_a_dev_file_a_message_and_its_differently_written_copies_stay_together(tmp_path):
    rows = []
    for number in range(60):
        text = f"{HANZI[number % len(HANZI)]}订单 {number}号ABC怎么样"
        for copy in (text, text.translate(FULL_WIDTH), text.replace(" ", "\u3000 ")):
            rows.append({"id": f"r{len(rows)}", "text": copy, "intent": "other"})
    path = write_rows(tmp_path / "train.jsonl", rows)
    train, dev, _ = read({"train_data": str(path), "dev_data": "", "dev_fraction": 0.3})
    dev_ids = {row.id for row in dev}
    copies = [{f"r{row + i}" in dev_ids for i in range(3)} for row in range(0, len(rows), 3)]
    assert all(len(placed) == 1 for placed in copies)
    assert len(train) + len(dev) == len(rows) and 0 < len(dev) < len(rows)


def test_a_training_file_without_usable_rows_or_a_split_left_empty_is_refused(tmp_path):
    good = write_rows(tmp_path / "good.jsonl", [{"text": "在吗", "intent": "greeting"}])
    bad = write_rows(tmp_path / "bad.jsonl", [{"text": "随便", "intent": "no_such_intent"}])
    dev = write_rows(tmp_path / "dev.jsonl", [{"text": "你好", "intent": "greeting"}])
    with pytest.raises(DataError) as caught:
        read({"train_data": [str(good), str(bad)], "dev_data": str(dev)})
    assert str(caught.value) == f"file {bad}: no usable rows"
    with pytest.raises(DataError) as caught:  # the one row is held out as dev
        read({"train_data": str(good), "dev_data": "", "dev_fraction": 0.999})
    assert str(caught.value) == f"file {good}: the train split has no usable rows"


def test_rejected_training_rows_are_summed_up_with_the_first_three_and_the_command_to_list_them(
    tmp_path,
):
    rows = [{"content": f"第{n}个问题", "intent": "no_such_intent"} for n in range(4)]
    rows += [{"content": "在吗", "intent": "greeting"}, {"content": "发票", "intent": "invoice"}]
    path = write_rows(tmp_path / "train.jsonl", rows)
    dev = write_rows(tmp_path / "dev.jsonl", [{"content": "你好", "intent": "greeting"}])
    values = {"train_data": str(path), "dev_data": str(dev), "text_column": "content"}
    _, _, logged = read(values)
    first_three = "; ".join(
        r.describe() for r in load_labelled(path, text_col="content").rejects[:3]
    )
    expected = (
        f"warning: 4 rows of {path} rejected and not used ({first_three}); "
        f"`kefu data validate {path} --text-col content --rejects FILE` lists them all"
    )
    assert logged[0] == expected and "line 4" not in logged[0]
