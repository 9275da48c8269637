"""The real-message corpus: rebuilt byte-identically from its annotations, splits as promised."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict

import pytest
from support.paths import REPO_ROOT

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS
from kefu.training.data.real import RealConfig, build_real, read_tsv

REAL = REPO_ROOT / "datasets" / "real"
GENERATED = (
    "labelled.jsonl",
    "train.jsonl",
    "dev.jsonl",
    "test.jsonl",
    "train_paraphrases.jsonl",
    "stats.json",
    "README.md",
)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    for name in ("messages.tsv", "README.md"):
        shutil.copy(REAL / name, folder / name)
    shutil.copytree(REAL / "annotations", folder / "annotations")
    shutil.copytree(REAL / "paraphrases", folder / "paraphrases")
    stats = build_real(RealConfig(folder=folder))
    return folder, stats


def rows_of(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rebuilding_gives_the_committed_files_byte_for_byte(rebuilt):
    folder, _ = rebuilt
    for name in GENERATED:
        assert (folder / name).read_bytes() == (REAL / name).read_bytes(), name


def test_every_message_is_labelled_once_on_every_head(rebuilt):
    folder, _ = rebuilt
    messages = read_tsv(folder / "messages.tsv")
    labelled = rows_of(folder / "labelled.jsonl")
    assert [row["id"] for row in labelled] == sorted(m["id"] for m in messages)
    assert all(row["intent"] and row["urgency"] and row["emotion"] for row in labelled)
    splits = {row["split"] for row in labelled}
    assert splits == {"train", "dev", "test"}
    for split in splits:
        assert rows_of(folder / f"{split}.jsonl") == [r for r in labelled if r["split"] == split]


def test_splits_are_about_70_15_15_and_every_jd_session_sits_in_one(rebuilt):
    folder, stats = rebuilt
    total = stats["rows"]["total"]
    for split, share in (("train", 0.70), ("dev", 0.15), ("test", 0.15)):
        assert abs(stats["rows"][split] / total - share) < 0.03
    sessions = defaultdict(set)
    for row in rows_of(folder / "labelled.jsonl"):
        if row["source"] == "jddc2019":
            sessions[row["session"]].add(row["split"])
    assert sessions and all(len(splits) == 1 for splits in sessions.values())


def test_adjudicated_rows_take_the_adjudicators_labels(rebuilt):
    folder, stats = rebuilt
    adjudication = {r["id"]: r for r in read_tsv(folder / "annotations" / "adjudication.j01.tsv")}
    decided_again = {
        r["id"]
        for pattern in (
            "annotations/reread-adjudication.*.tsv",
            "annotations/revisions/*/adjudication.*.tsv",
        )
        for path in folder.glob(pattern)
        for r in read_tsv(path)
    }
    labelled = {row["id"]: row for row in rows_of(folder / "labelled.jsonl")}
    assert stats["adjudicated"] == len(set(adjudication) | decided_again) > 0
    for row_id, decided in adjudication.items():
        if row_id in decided_again:
            continue  # adjudicated again after the re-read or a revision: see their tests
        row = labelled[row_id]
        assert row["adjudicated"] and row["double_annotated"] and row["annotator"] == "j01"
        assert (row["intent"], row["urgency"], row["emotion"]) == (
            decided["intent"],
            decided["urgency"],
            decided["emotion"],
        )


def test_the_committed_revisions_decide_the_labels_they_read(rebuilt):
    folder, stats = rebuilt
    labelled = {row["id"]: row for row in rows_of(folder / "labelled.jsonl")}
    latest, decided = {}, {}  # id -> the last revision that read it, and its adjudication
    for revision in sorted(folder.glob("annotations/revisions/*")):
        read = {r["id"] for path in revision.glob("read.*.tsv") for r in read_tsv(path)}
        assert read
        latest |= dict.fromkeys(read, revision.name)
        for row_id in read:
            decided.pop(row_id, None)
        for path in revision.glob("adjudication.*.tsv"):
            decided |= {r["id"]: r for r in read_tsv(path)}
    assert {i for i, row in labelled.items() if row["revision"]} == set(latest)
    assert all(labelled[i]["revision"] == name for i, name in latest.items())
    for row_id, labels in decided.items():
        row = labelled[row_id]
        assert row["adjudicated"]
        assert [row[h] for h in HEADS] == [labels[h] for h in HEADS]
    assert [block["name"] for block in stats["revisions"]] == ["v6-c1"]


def test_second_annotation_agreement_meets_the_targets(rebuilt):
    _, stats = rebuilt
    agreement = stats["agreement"]["all"]
    assert agreement["intent"]["n"] >= 1200
    assert agreement["intent"]["kappa"] >= 0.80
    assert agreement["urgency"]["kappa"] >= 0.75
    assert agreement["emotion"]["kappa"] >= 0.75


def test_every_message_was_read_again_and_every_disagreement_adjudicated(rebuilt):
    folder, stats = rebuilt
    labelled = rows_of(folder / "labelled.jsonl")
    assert all(row["reread"] for row in labelled)  # the data card says the whole corpus
    block = stats["reread"]
    assert block["agreement"]["all"]["intent"]["n"] == len(labelled)
    decided_again = sum(
        len(read_tsv(path)) for path in folder.glob("annotations/reread-adjudication.*.tsv")
    )
    assert block["disagreed"] == decided_again > 0


def test_an_unknown_label_names_the_file_and_line(tmp_path):
    (tmp_path / "annotations" / "pass1").mkdir(parents=True)
    (tmp_path / "annotations" / "pass2").mkdir()
    (tmp_path / "messages.tsv").write_text(
        "id\tsource\tsession\tturn\ttext\nm1\tatec\t\t\t花呗怎么还\n", encoding="utf-8"
    )
    bad = tmp_path / "annotations" / "pass1" / "b01.a01.tsv"
    bad.write_text("id\tintent\turgency\temotion\tnote\nm1\trefund\tlow\tneutral\t\n", "utf-8")
    with pytest.raises(DataError, match=r"b01\.a01\.tsv, line 2, column 'intent'.*'refund'"):
        build_real(RealConfig(folder=tmp_path))


def write_corpus(folder, messages, **annotations):
    """messages: id -> text (Alipay); annotations: relative path -> {id: (intent, urgency, emotion)}."""
    (folder / "annotations" / "pass1").mkdir(parents=True)
    (folder / "annotations" / "pass2").mkdir()
    lines = "".join(f"{i}\tatec\t\t\t{text}\n" for i, text in messages.items())
    (folder / "messages.tsv").write_text("id\tsource\tsession\tturn\ttext\n" + lines, "utf-8")
    for path, labels in annotations.items():
        file = folder / "annotations" / path.replace("__", "/")
        file.parent.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"{i}\t{a}\t{b}\t{c}\t\n" for i, (a, b, c) in labels.items())
        file.write_text("id\tintent\turgency\temotion\tnote\n" + rows, "utf-8")


MESSAGES = {f"m{i}": text for i, text in enumerate(["花呗怎么还", "借呗不能借了", "你好", "谢谢"])}
FIRST = {
    "m0": ("payment", "low", "neutral"),
    "m1": ("payment", "low", "neutral"),
    "m2": ("greeting", "low", "neutral"),
    "m3": ("greeting", "low", "positive"),
}


def test_a_reread_that_differs_needs_a_new_adjudication_which_then_decides(tmp_path):
    reread = {
        "m0": ("payment", "low", "neutral"),  # agrees: labels kept
        "m1": ("account_security", "medium", "neutral"),  # differs
        "m3": ("greeting", "low", "positive"),
    }
    write_corpus(tmp_path, MESSAGES, pass1__b01_a01_tsv=FIRST, reread__b01_v01_tsv=reread)
    for path in tmp_path.glob("annotations/**/*_tsv"):
        path.rename(path.with_name(path.name.replace("_", ".")))
    with pytest.raises(DataError, match=r"b01\.v01\.tsv.*re-read of m1 differs"):
        build_real(RealConfig(folder=tmp_path))

    decided = "id\tintent\turgency\temotion\trule\nm1\taccount_security\tmedium\tneutral\tC11\n"
    (tmp_path / "annotations" / "reread-adjudication.k01.tsv").write_text(decided, "utf-8")
    stats = build_real(RealConfig(folder=tmp_path))
    labelled = {row["id"]: row for row in rows_of(tmp_path / "labelled.jsonl")}
    assert (labelled["m1"]["intent"], labelled["m1"]["urgency"]) == ("account_security", "medium")
    assert labelled["m1"]["annotator"] == "k01" and labelled["m1"]["adjudicated"]
    assert labelled["m0"]["annotator"] == "a01" and labelled["m0"]["reread"]
    assert not labelled["m2"]["reread"]
    block = stats["reread"]
    assert block["agreement"]["all"]["intent"]["n"] == 3
    assert block["agreement"]["all"]["intent"]["accuracy"] == round(2 / 3, 4)
    assert block["disagreed"] == 1
    assert block["changed"] == {"intent": 1, "urgency": 1, "emotion": 0}
    assert "Re-read under the current guidelines" in (tmp_path / "README.md").read_text("utf-8")


def test_a_revision_read_after_the_reread_needs_an_adjudication_where_it_differs(tmp_path):
    revision = "revisions__v6-c1__read_m01_tsv"
    read = {
        "m0": ("payment", "high", "neutral"),  # differs from the re-read labels
        "m1": ("payment", "low", "neutral"),  # agrees with the first pass: nothing changes
    }
    reread = {"m0": ("payment", "low", "neutral")}
    write_corpus(
        tmp_path, MESSAGES, pass1__b01_a01_tsv=FIRST, reread__b01_v01_tsv=reread, **{revision: read}
    )
    for path in tmp_path.glob("annotations/**/*_tsv"):
        path.rename(path.with_name(path.name.replace("_", ".")))
    with pytest.raises(DataError, match=r"read\.m01\.tsv.*revision v6-c1: read of m0 differs"):
        build_real(RealConfig(folder=tmp_path))

    decided = "id\tintent\turgency\temotion\trule\nm0\tpayment\thigh\tneutral\tC1\n"
    (tmp_path / "annotations" / "revisions" / "v6-c1" / "adjudication.n01.tsv").write_text(
        decided, "utf-8"
    )
    stats = build_real(RealConfig(folder=tmp_path))
    labelled = {row["id"]: row for row in rows_of(tmp_path / "labelled.jsonl")}
    assert (labelled["m0"]["urgency"], labelled["m0"]["annotator"]) == ("high", "n01")
    assert labelled["m0"]["adjudicated"] and labelled["m0"]["revision"] == "v6-c1"
    assert (labelled["m1"]["urgency"], labelled["m1"]["annotator"]) == ("low", "a01")
    assert labelled["m1"]["revision"] == "v6-c1" and not labelled["m1"]["adjudicated"]
    assert labelled["m2"]["revision"] == ""
    assert stats["revisions"] == [
        {
            "name": "v6-c1",
            "read": 2,
            "disagreed": 1,
            "changed": {"intent": 0, "urgency": 1, "emotion": 0},
        }
    ]
    card = (tmp_path / "README.md").read_text("utf-8")
    assert "| v6-c1 | 2 | 1 | 0 | 1 | 0 |" in card


def test_paraphrases_take_their_messages_labels_and_only_training_messages_are_rephrased(
    tmp_path,
):
    messages = {f"m{i}": f"花呗第{i}期怎么还款" for i in range(30)}
    first = {i: ("payment", "low", "neutral") for i in messages}
    first["m0"] = ("payment", "high", "anxious")
    write_corpus(tmp_path, messages, pass1__b01_a01_tsv=first)
    for path in tmp_path.glob("annotations/**/*_tsv"):
        path.rename(path.with_name(path.name.replace("_", ".")))
    build_real(RealConfig(folder=tmp_path))
    split = {row["id"]: row["split"] for row in rows_of(tmp_path / "labelled.jsonl")}
    train = sorted(i for i, s in split.items() if s == "train")
    held = sorted(i for i, s in split.items() if s != "train")
    assert train and held
    folder = tmp_path / "paraphrases"
    folder.mkdir()
    lines = [f"{train[0]}\t还款日到了钱还没扣怎么办", f"{train[1]}\t-"]
    (folder / "p1.w01.tsv").write_text("source_id\ttext\n" + "\n".join(lines) + "\n", "utf-8")
    stats = build_real(RealConfig(folder=tmp_path))
    (kept,) = rows_of(tmp_path / "train_paraphrases.jsonl")
    labels = {row["id"]: row for row in rows_of(tmp_path / "labelled.jsonl")}[train[0]]
    assert kept["paraphrase_of"] == train[0] and kept["writer"] == "w01"
    assert [kept[h] for h in HEADS] == [labels[h] for h in HEADS]
    assert stats["paraphrases"] == {
        "writers": 1,
        "written": 2,
        "skipped": 1,
        "near_duplicates_of_held_out": 0,
        "kept": 1,
    }
    assert "1 in `train_paraphrases.jsonl`" in (tmp_path / "README.md").read_text("utf-8")

    lines.append(f"{held[0]}\t改写的测试消息")  # a dev or test message: would leak it
    (folder / "p1.w01.tsv").write_text("source_id\ttext\n" + "\n".join(lines) + "\n", "utf-8")
    with pytest.raises(DataError, match=r"p1\.w01\.tsv, line 4.*only training messages"):
        build_real(RealConfig(folder=tmp_path))


def test_handover_agreement_scores_the_second_pass_against_the_first():
    from kefu.serving.taxonomy import load_taxonomy
    from kefu.training.data.real import Annotation
    from kefu.training.data.real_stats import handover_agreement

    def read(intent, urgency, emotion):
        return Annotation({"intent": intent, "urgency": urgency, "emotion": emotion}, "a", "f")

    texts = {"m1": "质量太差了", "m2": "还没发货吗", "m3": "转人工", "m4": "好的"}
    first = {
        "m1": read("quality_issue", "high", "dissatisfied"),  # first: hand over
        "m2": read("urge_shipment", "high", "anxious"),  # first: hand over
        "m3": read("other", "low", "neutral"),  # the text asks for a person: both hand over
        "m4": read("greeting", "low", "neutral"),
    }
    second = {
        "m1": read("quality_issue", "medium", "dissatisfied"),  # missed
        "m2": read("urge_shipment", "high", "dissatisfied"),
        "m3": read("other", "low", "neutral"),
        "m4": read("complaint", "low", "neutral"),  # extra
    }
    block = handover_agreement(first, second, texts, sorted(texts), load_taxonomy())
    assert (block["first"], block["second"]) == (3, 3)
    assert block["precision"] == block["recall"] == round(2 / 3, 4)
