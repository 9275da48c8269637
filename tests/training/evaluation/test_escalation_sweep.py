"""Choosing high_urgency_negative.min_probability on dev: the sweep, the choice, the command."""

import pytest
import yaml
from support.serving import copy_bundle
from support.training import tiny_config
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.serving.deployment import Deployment
from kefu.training.data.loader import load_labelled
from kefu.training.evaluation.escalation import escalation_block
from kefu.training.evaluation.escalation_sweep import (
    GRID,
    SweepPoint,
    choose,
    sweep_min_probability,
)
from kefu.training.evaluation.inference import run_deployment
from kefu.training.train import train


def point(value, precision, recall, rate):
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    escalation = {"precision": precision, "recall": recall, "f1": f1, "rate": rate}
    return SweepPoint(value, escalation)


def test_choose_prefers_the_fewest_hand_overs_that_still_reach_the_recall():
    points = [
        point(0.1, 0.30, 0.95, 0.08),
        point(0.2, 0.40, 0.91, 0.06),
        point(0.3, 0.50, 0.80, 0.04),
        point(None, 0.55, 0.60, 0.03),
    ]
    assert choose(points, min_recall=0.9).min_probability == 0.2
    assert choose(points, min_recall=0.5).min_probability is None
    assert choose(points).min_probability == 0.3  # best F1: 0.615
    # nothing reaches 0.99: the best F1 rather than nothing
    assert choose(points, min_recall=0.99).min_probability == 0.3


def test_among_values_that_score_alike_the_current_one_stays():
    alike = [point(0.05, 1.0, 1.0, 0.02), point(0.1, 1.0, 1.0, 0.02), point(0.2, 0.5, 1.0, 0.04)]
    assert choose(alike).min_probability == 0.05  # no value in effect: the grid's first
    assert choose(alike, current=0.1).min_probability == 0.1
    assert choose(alike, min_recall=0.9, current=0.1).min_probability == 0.1
    assert choose(alike, current=0.2).min_probability == 0.05  # 0.2 scores worse: it moves
    assert choose(alike, min_recall=0.9, current=None).min_probability == 0.05


def test_a_recall_of_exactly_the_minimum_reaches_it_and_ties_go_to_the_better_counts():
    """Ten customers to hand over among 100 messages; each point's counts are consistent."""
    exact = [point(0.1, 0.30, 0.90, 0.30), point(0.2, 0.40, 0.80, 0.20)]
    assert choose(exact, min_recall=0.9).min_probability == 0.1
    # as many hand-overs (10): the one finding all ten customers, not nine
    same_rate = [point(0.1, 0.9, 0.9, 0.10), point(0.2, 1.0, 1.0, 0.10)]
    assert choose(same_rate, min_recall=0.9).min_probability == 0.2
    # F1 0.6 both: 9 found among 20 hand-overs, or 6 among 10: the fewer hand-overs
    same_f1 = [
        SweepPoint(0.1, {"precision": 0.45, "recall": 0.9, "f1": 0.6, "rate": 0.2}),
        SweepPoint(0.2, {"precision": 0.6, "recall": 0.6, "f1": 0.6, "rate": 0.1}),
    ]
    assert choose(same_f1).min_probability == 0.2


def test_choose_picks_nothing_when_no_value_finds_a_hand_over():
    """All F1 undefined: the grid's first value would win by its position alone."""
    points = [point(0.05, 0.0, 0.0, 0.02), point(0.1, 0.0, 0.0, 0.01), point(None, 0.0, 0.0, 0.0)]
    assert choose(points) is None
    assert choose(points, min_recall=0.9) is None


def test_the_command_keeps_the_current_value_when_no_value_finds_a_hand_over(
    trained, data_dir, tmp_path
):
    """A complaint the model reads as a product question (low urgency), and a rule whose classes
    it never finds likely: no value hands the complaint over, so there is nothing to choose on."""
    _, bundle_dir, _ = trained
    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        '{"text": "商品咨询", "intent": "complaint", "urgency": "low", "emotion": "neutral"}\n',
        "utf-8",
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  angry: {enabled: false}\n"
        "  high_urgency_negative: {urgency: [critical], emotions: [angry]}\n",
        "utf-8",
    )
    written = tmp_path / "tuned.yaml"
    result = CliRunner().invoke(
        app,
        [
            "tune-escalation", "--bundle", str(bundle_dir), "--data", str(dev), "--policy",
            str(policy), "--min-recall", "0.9", "--write-policy", str(written),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "recall 0 at every value" in result.output and "keeping the current value" in result.output
    )
    assert (
        "kept min_probability: 0.1" in result.output
        and "chosen min_probability" not in result.output
    )
    assert "  chosen" not in result.output  # no row of the table is marked chosen
    assert yaml.safe_load(written.read_text("utf-8"))["rules"]["high_urgency_negative"] == {
        "urgency": ["critical"], "emotions": ["angry"], "min_probability": 0.1
    }  # fmt: skip
    assert (
        written.read_text("utf-8")
        .splitlines()[1]
        .endswith("(kept: no value found a message the labels hand over)")
    )


@pytest.fixture(scope="module")
def unsure_bundle(data_dir, base_dir, tmp_path_factory):
    """The tiny encoder alone: the lexical model memorises the tiny data and is never unsure."""
    out = tmp_path_factory.mktemp("unsure") / "tiny"
    config = tiny_config(data_dir, base_dir, lexical_weight=0.0, int8=False)
    train(config, out, log=lambda line: None, show_progress=False)
    return out


def test_the_sweep_reroutes_one_model_run_as_evaluate_would_route_it(unsure_bundle, data_dir):
    bundle_dir = unsure_bundle
    deployment = Deployment.load(bundle_dir, threads=1)
    data = load_labelled(data_dir / "dev.jsonl")
    points = sweep_min_probability(deployment, data)
    assert [p.min_probability for p in points] == list(GRID)
    assert (GRID[0], GRID[-2], GRID[-1]) == (0.05, 0.5, None)  # README: 0.05 to 0.5, and null
    rates = [p.escalation["rate"] for p in points]
    # a higher bar hands over fewer messages; null (labels only) fewest of all
    assert rates == sorted(rates, reverse=True)
    assert rates[0] > rates[-1]  # the tiny model is unsure enough for the bar to matter
    assert len({p.escalation["true_rate"] for p in points}) == 1  # the labels do not move
    # the bundle's own value gives exactly what `kefu evaluate` reports
    current = deployment.policy.high_urgency_min_probability
    evaluated = escalation_block(
        data, run_deployment(deployment, data.texts()).decisions, deployment.policy
    )
    assert next(p for p in points if p.min_probability == current).escalation == evaluated


def test_the_command_prints_the_sweep_and_writes_a_policy_that_serves(trained, data_dir, tmp_path):
    _, bundle_dir, _ = trained
    base = tmp_path / "base.yaml"
    # a first-format policy (flat keys) is upgraded, not mixed with `rules`
    base.write_text("clarify:\n  max_candidates: 2\nmax_turns: 5\n", "utf-8")
    written = tmp_path / "tuned.yaml"
    result = CliRunner().invoke(
        app,
        [
            "tune-escalation", "--bundle", str(bundle_dir), "--data", str(data_dir / "dev.jsonl"),
            "--policy", str(base), "--min-recall", "0.5", "--write-policy", str(written),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "current" in result.output and "chosen min_probability:" in result.output
    chosen = result.output.split("chosen min_probability: ")[1].split()[0]
    document = yaml.safe_load(written.read_text("utf-8"))
    assert document["clarify"] == {"max_candidates": 2}  # the rest of --policy is kept
    value = document["rules"]["high_urgency_negative"]["min_probability"]
    assert ("null" if value is None else f"{value:g}") == chosen
    policy = Deployment.load(bundle_dir, policy_path=written, threads=1).policy
    assert policy.high_urgency_min_probability == value and policy.max_candidates == 2
    assert policy.max_turns == 5
    header = written.read_text("utf-8").splitlines()[1]
    if "no value reaches recall 0.5" in result.output:
        assert header.endswith("(best F1: no value reached recall 0.5)")
    else:
        assert header.endswith("(least hand-over at recall >= 0.5)")


def test_the_written_policy_names_the_criterion_that_chose_it(trained, data_dir, tmp_path):
    _, bundle_dir, _ = trained
    written = tmp_path / "tuned.yaml"
    # recall 1.0 at precision > 0 is out of a tiny random model's reach: the best F1 is taken
    result = CliRunner().invoke(
        app,
        [
            "tune-escalation", "--bundle", str(bundle_dir), "--data", str(data_dir / "dev.jsonl"),
            "--min-recall", "1.0", "--write-policy", str(written),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header = written.read_text("utf-8").splitlines()[1]
    reached = "no value reaches recall 1" not in result.output
    assert header.endswith(
        "(least hand-over at recall >= 1)" if reached else "(best F1: no value reached recall 1)"
    )


def test_tuning_a_disabled_rule_is_refused(trained, data_dir, tmp_path):
    _, bundle_dir, _ = trained
    policy = tmp_path / "off.yaml"
    policy.write_text("rules:\n  high_urgency_negative:\n    enabled: false\n", "utf-8")
    result = CliRunner().invoke(
        app,
        [
            "tune-escalation", "--bundle", str(bundle_dir), "--data", str(data_dir / "dev.jsonl"),
            "--policy", str(policy),
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{policy}: rules.high_urgency_negative is disabled" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            '{"text": "在吗", "intent": "hello", "urgency": "low", "emotion": "neutral"}',
            "no usable",
        ),
        (
            '{"text": "在吗", "intent": "greeting", "urgency": "low", "emotion": "neutral"}',
            "no row's labels call for a person",
        ),
    ],
)
def test_a_file_that_cannot_tune_is_a_clear_error(trained, tmp_path, rows, message):
    _, bundle_dir, _ = trained
    dev = tmp_path / "dev.jsonl"
    dev.write_text(rows + "\n", "utf-8")
    result = CliRunner().invoke(
        app, ["tune-escalation", "--bundle", str(bundle_dir), "--data", str(dev)]
    )
    assert result.exit_code != 0
    assert f"{dev}: {message}" in result.output
    assert "Traceback" not in result.output


def test_a_policy_that_cannot_be_written_stops_before_the_dev_set_is_read(tiny_bundle, tmp_path):
    never_read = tmp_path / "missing-dev.jsonl"  # reading it would be an error of its own
    for target, message in [
        (
            tmp_path / "no" / "such" / "policy.yaml",
            f"the folder {tmp_path / 'no' / 'such'} does not exist; create it",
        ),
        (tmp_path, "is a directory; give the path of a YAML file to write"),
    ]:
        result = CliRunner().invoke(
            app,
            [
                "tune-escalation", "--bundle", str(tiny_bundle), "--data", str(never_read),
                "--write-policy", str(target),
            ],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert f"kefu tune-escalation: --write-policy {target}" in result.output
        assert message in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [
        (None, "policy file {policy} does not exist"),
        ("rules: [\n", "{policy} is not valid YAML"),
        ("rules:\n  high_urgency_negative:\n    enabled: false\n", "{policy}: rules.high_urgency"),
    ],
    ids=["missing", "not-yaml", "rule-off"],
)
def test_a_bad_policy_stops_tuning_before_the_dev_set_is_read(
    tiny_bundle, tmp_path, policy_text, message
):
    policy = tmp_path / "policy.yaml"
    if policy_text is not None:
        policy.write_text(policy_text, "utf-8")
    never_read = tmp_path / "missing-dev.jsonl"  # reading it would be an error of its own
    result = CliRunner().invoke(
        app,
        [
            "tune-escalation", "--bundle", str(tiny_bundle), "--data", str(never_read),
            "--policy", str(policy),
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message.format(policy=policy) in result.output
    assert "missing-dev.jsonl" not in result.output


def test_a_model_without_urgency_or_emotion_cannot_tune(tiny_bundle, data_dir, tmp_path):
    bundle_dir = copy_bundle(tiny_bundle, tmp_path / "intent-only", untrained_heads=["emotion"])
    result = CliRunner().invoke(
        app, ["tune-escalation", "--bundle", str(bundle_dir), "--data", str(data_dir / "dev.jsonl")]
    )
    assert result.exit_code == 2, result.output
    assert "the model has no trained emotion head, so high_urgency_negative never fires" in (
        result.output
    )
