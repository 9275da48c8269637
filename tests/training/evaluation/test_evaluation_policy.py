"""`kefu evaluate --policy`: the routing numbers describe a policy file served beside the bundle
(laid over its policy.yaml as `kefu serve --policy` lays it) and say which policy they are of;
a bad file stops the run with one line naming the file, the key and the value."""

import hashlib
import json

import pytest
from support.evaluation import EVAL_ROWS, TRAIN_ROWS, run_cli, write_jsonl

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.deployment import Deployment
from kefu.serving.entities import asks_for_human
from kefu.serving.routing import Action, content_reasons
from kefu.serving.routing_policy import RoutingPolicy
from kefu.training.evaluation.inference import run_deployment

# greeting becomes a complaint intent: the gold routing of both greeting rows changes with it
TUNED = "rules:\n  complaint: {intents: [complaint, greeting]}\nclarify: {max_candidates: 2}\n"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "tuned.yaml"
    path.write_text(TUNED, "utf-8")
    return path


@pytest.fixture(scope="module")
def evaluated(tiny_bundle, evaluation_data, tuned, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation-out")
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"seed={evaluation_data / 'test.jsonl'}", "-o", out,
        "--data", evaluation_data / "real" / "test.jsonl", "--policy", tuned,
        "--no-public-dev", "--threads", 1, "--min-support", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def gold_human(policy: RoutingPolicy) -> int:
    rows = [row for row in EVAL_ROWS if all(row[1:])]
    return sum(bool(content_reasons(*row[1:], asks_for_human(row[0]), policy)) for row in rows)


def test_escalation_is_routed_with_the_policy_file_laid_over_the_bundles(
    evaluated, tiny_bundle, tuned
):
    _, metrics = evaluated
    bundle = read_bundle(tiny_bundle)
    served = RoutingPolicy.for_bundle(bundle, tuned)
    assert gold_human(served) == gold_human(RoutingPolicy.for_bundle(bundle)) + 2
    deployment = Deployment.load(tiny_bundle, variant="fp32", policy_path=tuned, threads=1)
    fully_labelled = [row[0] for row in EVAL_ROWS if all(row[1:])]
    decisions = run_deployment(deployment, fully_labelled).decisions
    handed = sum(decision.action is Action.HUMAN for decision in decisions)
    for block in (metrics, metrics["real"]):
        escalation = block["escalation"]
        assert escalation["true_human"] == gold_human(served)
        assert escalation["predicted_human"] == handed
        assert escalation["policy"] == "tuned.yaml"  # its name, never its path
    assert metrics["real"]["conversations"]["policy"] == "tuned.yaml"


def test_the_routing_blocks_record_the_policy_files_content_hash(evaluated, tuned):
    """Two files named alike (this week's tuned.yaml and last week's) are told apart."""
    _, metrics = evaluated
    content = hashlib.sha256(tuned.read_bytes()).hexdigest()
    for block in (metrics["escalation"], metrics["real"]["escalation"]):
        assert block["policy_sha256"] == content
    assert metrics["real"]["conversations"]["policy_sha256"] == content


def test_the_report_says_which_policy_the_routing_numbers_are_of(evaluated, tuned):
    out, _ = evaluated
    report = (out / "report.md").read_text(encoding="utf-8")
    content = hashlib.sha256(tuned.read_bytes()).hexdigest()[:12]
    said = (
        f"Routed with the policy file `tuned.yaml` (sha256 `{content}`) laid over the bundle's "
        "policy.yaml."
    )
    escalation = [line for line in report.splitlines() if line.startswith("Escalation:")]
    conversations = [line for line in report.splitlines() if line.startswith("Conversations:")]
    assert len(escalation) == 2 and all(said in line for line in escalation)
    assert len(conversations) == 1 and said in conversations[0]


def test_without_policy_the_blocks_name_the_bundles_own(tiny_bundle, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    write_jsonl(tmp_path / "test.jsonl", EVAL_ROWS)
    out = tmp_path / "out"
    result = run_cli(
        "--bundle", tiny_bundle, "--data", tmp_path / "test.jsonl", "-o", out,
        "--no-public-dev", "--threads", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["escalation"]["policy"] == "bundle"
    # identified as the manifest pins it, the sha256 of the bundle's policy.yaml
    sealed = read_bundle(tiny_bundle).manifest.files["policy.yaml"]
    assert sealed == hashlib.sha256((tiny_bundle / "policy.yaml").read_bytes()).hexdigest()
    assert metrics["escalation"]["policy_sha256"] == sealed
    said = f"Routed with the bundle's policy.yaml (sha256 `{sealed[:12]}`)."
    assert said in (out / "report.md").read_text("utf-8")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            "rules:\n  complaint: {intents: [refund]}\n",
            "{path}: rules.complaint.intents has unknown intent ids ['refund']",
        ),
        (
            "rules:\n  long_conversation: {max_turns: -1}\n",
            "{path}: rules.long_conversation.max_turns",
        ),
        ("rules: [complaint\n", "{path} is not valid YAML"),
        (None, "policy file {path} does not exist"),
    ],
)
def test_a_bad_policy_file_is_one_line_exit_2_before_any_data_is_read(
    tiny_bundle, tmp_path, content, said
):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content, "utf-8")
    result = run_cli(
        "--bundle", tiny_bundle, "--data", tmp_path / "no_such_test.jsonl", "-o", tmp_path / "out",
        "--policy", path, "--no-public-dev",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"kefu evaluate: {said.format(path=path)}" in result.output
    assert "Traceback" not in result.output and "no_such_test" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("routing", "said"),
    [
        ({"n": 3}, ""),  # written before evaluation recorded the policy: nothing is claimed
        (
            {"policy": "tuned.yaml"},  # and before it recorded the hash: the name alone
            " Routed with the policy file `tuned.yaml` laid over the bundle's policy.yaml.",
        ),
        ({"policy": "bundle", "policy_sha256": None}, " Routed with the bundle's policy.yaml."),
    ],
)
def test_older_routing_blocks_say_what_they_recorded(routing, said):
    from kefu.training.evaluation.routing_tables import routed_with

    assert routed_with(routing) == said
