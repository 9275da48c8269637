"""The committed seed corpus meets the counts the default model relies on, and rebuilds exactly."""

import json
from collections import Counter
from dataclasses import replace

import pytest
from support.paths import REPO_ROOT

from kefu.errors import DataError
from kefu.training.data.build import BuildConfig, build, read_written
from kefu.training.data.overlap import near_duplicate_share

SEED = REPO_ROOT / "datasets" / "seed"
SPLITS = ("train", "dev", "test")


def _rows(split):
    return [
        json.loads(line)
        for line in (SEED / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


@pytest.fixture(scope="module")
def corpus():
    return {split: _rows(split) for split in SPLITS}


def test_rebuild_is_byte_identical(tmp_path):
    out = tmp_path / "seed"
    card = tmp_path / "README.md"
    card.write_text(
        (REPO_ROOT / "datasets" / "README.md").read_text(encoding="utf-8"), encoding="utf-8"
    )
    build(replace(BuildConfig(), out=out, card=card))
    for split in SPLITS:
        assert (out / f"{split}.jsonl").read_bytes() == (SEED / f"{split}.jsonl").read_bytes(), (
            split
        )
    assert card.read_bytes() == (REPO_ROOT / "datasets" / "README.md").read_bytes()


def test_counts(corpus, taxonomy):
    rows = [row for split in SPLITS for row in corpus[split]]
    assert len(rows) >= 15_000
    intents = Counter(row["intent"] for row in rows)
    assert min(intents[label] for label in taxonomy.labels("intent")) >= 400, intents
    for head in ("urgency", "emotion"):
        shares = Counter(row[head] for row in rows)
        assert min(shares[label] for label in taxonomy.labels(head)) >= 0.05 * len(rows), (
            head,
            shares,
        )
    assert set(rows[0]) == {"id", "text", "intent", "urgency", "emotion", "source", "family"}
    assert all(1 <= len(row["text"]) <= 120 for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)


def test_split_by_family_about_80_10_10(corpus):
    families = {split: {row["family"] for row in corpus[split]} for split in SPLITS}
    assert not families["train"] & families["dev"]
    assert not families["train"] & families["test"]
    assert not families["dev"] & families["test"]
    total = sum(len(corpus[split]) for split in SPLITS)
    assert 0.75 <= len(corpus["train"]) / total <= 0.85
    texts = [row["text"] for split in SPLITS for row in corpus[split]]
    assert len(set(texts)) == len(texts)


def test_near_duplicates_between_splits_under_one_percent(corpus):
    train = [row["text"] for row in corpus["train"]]
    assert near_duplicate_share([row["text"] for row in corpus["test"]], train) < 0.01
    assert near_duplicate_share([row["text"] for row in corpus["dev"]], train) < 0.01


def test_label_combinations_make_sense(corpus):
    """A greeting is never critical or angry, a bare human request never critical, thanks never critical."""
    for row in (row for split in SPLITS for row in corpus[split]):
        if row["intent"] in ("greeting", "promotion", "bulk_purchase", "human_agent", "other"):
            assert row["urgency"] != "critical", row
        if row["intent"] == "greeting":
            assert row["emotion"] != "angry", row
        if row["emotion"] == "positive":
            assert row["urgency"] != "critical", row


def test_written_source_errors_name_file_and_line(tmp_path, taxonomy):
    folder = tmp_path / "written"
    folder.mkdir()
    (folder / "greeting.tsv").write_text(
        "urgency\temotion\ttags\ttext\nlow\tneutral\t\t在吗\nlow\tcalm\t\t你好\n", "utf-8"
    )
    with pytest.raises(
        DataError, match=r"greeting\.tsv, line 3, column 'emotion': unknown emotion 'calm'"
    ):
        read_written(folder, taxonomy)
    (folder / "greeting.tsv").write_text(
        "urgency\temotion\ttags\ttext\nlow\tneutral\t\t在吗\nlow\tneutral\t\t在吗\n", "utf-8"
    )
    with pytest.raises(
        DataError, match="line 3, column 'text': duplicate text, first in greeting.tsv:2"
    ):
        read_written(folder, taxonomy)
