"""What a reader of report.md and the model card sees: no table or figure that reads as a score
where nothing was measured, and no table that buries the rows that were."""

import json
from types import SimpleNamespace

import pytest
from support.evaluation import EVAL_ROWS, TRAIN_ROWS, run_cli, write_jsonl

from kefu.training.evaluation.card_sections import limits, training_section
from kefu.training.evaluation.routing_tables import escalation_table
from kefu.training.evaluation.score_tables import by_source_table, per_class_table


def test_a_head_without_labels_is_said_unscored_not_drawn_nor_tabled_as_zeros(
    tiny_bundle, tmp_path
):
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    write_jsonl(tmp_path / "test.jsonl", [(text, i, None, e) for text, i, _, e in EVAL_ROWS])
    out = tmp_path / "out"
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"test={tmp_path / 'test.jsonl'}", "-o", out,
        "--no-public-dev", "--min-support", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "test   urgency  not scored (no row carries an urgency label it knows)" in result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    urgency = report.split("### test: urgency")[1].split("###")[0]
    assert "Not scored: no row of this set carries an urgency label the bundle knows." in urgency
    assert "| `low` |" not in urgency and "png" not in urgency
    assert not list(out.glob("*urgency*.png")) and (out / "confusion_intent.png").is_file()
    # escalation needs all three gold labels: no row has them, so no table of dashes
    assert json.loads((out / "metrics.json").read_text())["escalation"]["n"] == 0
    assert "Escalation: not measured on this set" in report
    assert "\n| 0 | — | — |" not in report


def test_a_small_test_file_says_why_its_macro_f1_is_undefined(tiny_bundle, tmp_path):
    """A shop's first test file has a few rows per class: no class reaches --min-support, and a
    bare dash would read as a failure of the model."""
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS)
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"test={tmp_path / 'test.jsonl'}", "-o",
        tmp_path / "out", "--no-public-dev", "--train-data", tmp_path / "train.jsonl",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for head in ("intent", "urgency", "emotion"):
        line = next(
            line for line in result.output.splitlines() if line.startswith(f"test   {head}")
        )
        assert metrics["model"][head]["macro_f1"] is None
        every_class = f"{metrics['model'][head]['macro_f1_all']:.3f}"
        assert line.endswith(
            f"(no class has --min-support 10 rows; over every class present: {every_class})"
        ), line


def test_a_macro_f1_over_some_classes_says_over_how_many(tiny_bundle, tmp_path):
    """Classes under --min-support are left out of macro-F1: the console line says so, or a
    figure over two classes of twelve reads as the head's."""
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS)
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"test={tmp_path / 'test.jsonl'}", "-o",
        tmp_path / "out", "--no-public-dev", "--min-support", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    partial = 0
    for head in ("intent", "urgency", "emotion"):
        scores = metrics["model"][head]
        supports = [entry["support"] for entry in scores["per_class"].values()]
        present, counted = sum(n > 0 for n in supports), sum(n >= 2 for n in supports)
        line = next(
            line for line in result.output.splitlines() if line.startswith(f"test   {head}")
        )
        if scores["macro_f1"] is not None and counted < present:
            partial += 1
            assert line.endswith(
                f"(over the {counted} of {present} classes with --min-support 2 rows; over all: "
                f"{scores['macro_f1_all']:.3f})"
            ), line
        elif scores["macro_f1"] is not None:
            assert "(over" not in line, line
    assert partial  # the rows give at least one head classes on both sides of the cut


def test_per_class_scores_that_are_undefined_are_dashes():
    head = {
        "per_class": {
            "a": {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 1},
            "b": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},  # predicted once
            "c": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},  # never seen
            "d": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2},  # always missed
        }
    }
    rows = per_class_table(head, {}, {"a": 2, "b": 1, "c": 0, "d": 0}, min_support=1)[2:6]
    assert rows == [
        "| `a` |  | 0.500 | 1.000 | 0.667 | 1 | yes |",
        "| `b` |  | 0.000 | — | — | 0 | no |",
        "| `c` |  | — | — | — | 0 | no |",
        "| `d` |  | — | 0.000 | 0.000 | 2 | yes |",
    ]


def test_the_per_class_table_marks_the_classes_macro_f1_averages():
    def head(*supports):
        scores = {"precision": 0.5, "recall": 0.5, "f1": 0.5}
        return {"per_class": {f"c{i}": scores | {"support": s} for i, s in enumerate(supports)}}

    lines = per_class_table(head(12, 10, 9, 0), {}, min_support=10)
    assert lines[0].endswith("| support | averaged |")
    assert [line.rsplit(" | ", 1)[1] for line in lines[2:6]] == ["yes |", "yes |", "no |", "no |"]
    assert lines[-1] == (
        "averaged: the head's macro-F1 averages the F1 of these 2 of 4 classes, those with at "
        "least 10 test rows; the others are listed, not averaged."
    )
    assert per_class_table(head(9, 3), {}, min_support=10)[-1] == (
        "averaged: no class has 10 or more test rows, so the head's macro-F1 averages none and "
        "is undefined (—); `kefu evaluate --min-support N` sets the bar, and `macro_f1_all` in "
        "metrics.json averages every class present."
    )


def test_the_classes_marked_averaged_are_the_ones_macro_f1_is_the_mean_of(tiny_bundle, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS * 2)  # some classes 2 x 1 rows, some 2 x 2+
    out = tmp_path / "out"
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"test={tmp_path / 'test.jsonl'}", "-o", out,
        "--no-public-dev", "--min-support", 3, "--threads", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    report = (out / "report.md").read_text(encoding="utf-8")
    left_out = 0
    for head in ("intent", "urgency", "emotion"):
        section = report.split(f"### test: {head}\n")[1].split("###")[0]
        rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
        marked = [row[0].strip("| `") for row in rows if row[-1] == "yes |"]
        per_class = metrics["model"][head]["per_class"]
        assert marked and len(rows) == len(per_class), head
        left_out += len(per_class) - len(marked)
        mean = sum(per_class[label]["f1"] for label in marked) / len(marked)
        assert metrics["model"][head]["macro_f1"] == pytest.approx(mean), head
    assert left_out  # some classes are too rare to average: the marks tell them apart


def test_sources_too_small_to_average_a_class_are_counted_not_listed():
    part = {head: {"macro_f1": None} for head in ("intent", "urgency", "emotion")}
    block = {
        "by_source": {
            "written": {"n": 937, **part},
            "augmented:card": {"n": 30, **part},
            "augmented:card+chip": {"n": 9, **part},
            "augmented:swap": {"n": 2, **part},
        }
    }
    lines = by_source_table(block, min_support=10)
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| written", "| augmented:card"]
    assert not any("augmented:swap" in line for line in lines)
    assert lines[-1] == (
        "2 sources with fewer than 10 messages (11 in all) are left out of this table "
        "(`by_source` in metrics.json holds them)."
    )
    del block["by_source"]["augmented:swap"]
    assert by_source_table(block, min_support=10)[-1] == (
        "1 source with fewer than 10 messages (9) is left out of this table "
        "(`by_source` in metrics.json holds it)."
    )


def fake_bundle(config):
    manifest = SimpleNamespace(data_hash="abc", notes=[])
    return SimpleNamespace(training_config=config, metrics={}, manifest=manifest)


def test_the_card_lists_training_files_not_a_python_list():
    bundle = fake_bundle({"train_data": ["a/train.jsonl", "b/train.jsonl"], "dev_data": "d.jsonl"})
    rows = training_section(bundle)
    assert "| train data | `a/train.jsonl`, `b/train.jsonl` (? rows) |" in rows
    assert "| dev data | `d.jsonl` (? rows) |" in rows


def test_the_card_names_the_labels_without_test_rows():
    def head(supports, n=5):
        per_class = {label: {"support": s} for label, s in supports.items()}
        return {"n": n, "per_class": per_class}

    metrics = {
        "model": {
            "intent": head({"payment": 5, "counterfeit": 0, "bulk_purchase": 0}),
            "urgency": head({"low": 5, "critical": 0}),
            "emotion": head({"neutral": 0, "angry": 0}, n=0),  # unlabelled head: not a label gap
        }
    }
    lines = limits(fake_bundle({}), metrics, "MIT")
    assert (
        "- Labels with no test rows, so unmeasured here: intent: `counterfeit`, "
        "`bulk_purchase`; urgency: `critical`."
    ) in lines


def test_an_escalation_table_whose_labels_hand_nothing_over_says_why_recall_is_a_dash():
    def block(true_rate):
        routing = {
            "n": 5, "precision": None, "recall": None if not true_rate else 0.0, "f1": None,
            "rate": 0.0, "true_rate": true_rate, "actions": {"bot": 0.8, "clarify": 0.2},
        }  # fmt: skip
        return {"escalation": routing}

    lines = escalation_table(block(0.0))
    assert lines[-1] == (
        "No message of this set is one its labels hand over (true rate 0), so recall and F1 are "
        "undefined (—), and precision too where kefu hands none over; a set with angry, critical "
        "or complaining customers measures them."
    )
    assert "| fp32 | 5 | — | — | — | 0.000 | 0.000 | 0.800 | 0.200 | — |" in lines
    assert not any("true rate 0)" in line for line in escalation_table(block(0.2)))
