"""`kefu tune-escalation`: choose high_urgency_negative.min_probability for a bundle, on dev.

Usage: kefu tune-escalation --bundle models/mine --data datasets/real/dev.jsonl \
           --min-recall 0.9 --write-policy policy.yaml
then `kefu serve --bundle models/mine --policy policy.yaml` (or `kefu score --policy`), and
`kefu evaluate --policy policy.yaml` for what it hands over on the test split.
Run it on a dev split, never on the test split the model is reported on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kefu.cli.options import DEFAULT_BUNDLE, BundleDir
from kefu.errors import InputError

COLUMN_HELP = (
    "Column of the dev file holding the {} (default: the one the bundle was trained on, as its "
    "training config names it)."
)


def command(
    bundle: BundleDir = DEFAULT_BUNDLE,
    data: Path = typer.Option(
        ..., "--data", help="Labelled dev file (JSONL, CSV, TSV, Parquet or xlsx), not test."
    ),
    policy: Path = typer.Option(
        None, "--policy", help="The policy file you serve with, if any (the rest stays as set)."
    ),
    min_recall: float = typer.Option(
        None,
        "--min-recall",
        min=0.0,
        max=1.0,
        help="Choose the value that hands over least while finding this share of the messages "
        "the labels hand over (default: the best F1).",
    ),
    write_policy: Path = typer.Option(
        None, "--write-policy", help="Write --policy (or an empty one) with the chosen value."
    ),
    threads: int = typer.Option(None, "--threads", min=1, help="ONNX Runtime threads."),
    text_col: str = typer.Option(None, "--text-col", help=COLUMN_HELP.format("text")),
    intent_col: str = typer.Option(None, "--intent-col", help=COLUMN_HELP.format("intent")),
    urgency_col: str = typer.Option(None, "--urgency-col", help=COLUMN_HELP.format("urgency")),
    emotion_col: str = typer.Option(None, "--emotion-col", help=COLUMN_HELP.format("emotion")),
    id_col: str = typer.Option(None, "--id-col", help=COLUMN_HELP.format("message id")),
    encoding: str = typer.Option(None, "--encoding", help="Text encoding (default: detected)."),
) -> None:
    """Route the dev messages under each candidate value; print precision, recall and rate."""
    import yaml

    from kefu.cli.extras import require_train_extra

    require_train_extra(("sklearn", "scipy"))

    from kefu.serving.classifier import Classifier
    from kefu.serving.deployment import Deployment, check_deployable
    from kefu.serving.policy_files import read_policy_file, upgrade
    from kefu.serving.routing import Reason
    from kefu.tabular.output import replacing
    from kefu.training.data.loader import load_labelled, trained_columns
    from kefu.training.evaluation.escalation_sweep import choose, sweep_min_probability
    from kefu.training.evaluation.tables import fmt

    # Every option first (bundle, policy, the rule and heads it tunes, the file to write): a
    # bad one fails in a second, not after the dev set is read and scored.
    model, routing_policy = check_deployable(bundle, policy_path=policy)
    if Reason.HIGH_URGENCY_NEGATIVE not in routing_policy.enabled:
        source = policy if policy is not None else f"the policy of {bundle}"
        raise InputError(
            f"{source}: rules.high_urgency_negative is disabled, so min_probability changes "
            "nothing; tune with a policy that leaves the rule on (enabled: true)",
            field="--policy",
        )
    untrained = [head for head in ("urgency", "emotion") if not model.trained(head)]
    if untrained:
        raise InputError(
            f"{bundle}: the model has no trained {' or '.join(untrained)} head, so "
            "high_urgency_negative never fires and min_probability changes nothing",
            field="--bundle",
        )
    if write_policy is not None:
        _check_policy_target(write_policy)
    given = {
        "text_col": text_col,
        "intent_col": intent_col,
        "urgency_col": urgency_col,
        "emotion_col": emotion_col,
        "id_col": id_col,
    }
    columns: dict[str, Any] = trained_columns(model.training_config) | {
        keyword: name for keyword, name in given.items() if name is not None
    }
    labelled = load_labelled(data, encoding=encoding, **columns)
    for note in labelled.missing_column_notes("--{head}-col NAME"):
        typer.echo(f"note: {note}", err=True)
    for reject in labelled.rejects[:5]:
        typer.echo(f"rejected (not scored): {reject.describe()}", err=True)
    if len(labelled.rejects) > 5:
        typer.echo(f"... {len(labelled.rejects) - 5} more rejected rows", err=True)
    if not labelled.rows:
        raise InputError(f"{data}: no usable labelled rows", field="--data")
    deployment = Deployment(Classifier(model, intra_op_threads=threads), routing_policy)
    current = deployment.policy.high_urgency_min_probability
    points = sweep_min_probability(deployment, labelled)
    true_rate = points[0].escalation["true_rate"]  # the labels' own: the same at every value
    if not true_rate:
        raise InputError(
            f"{data}: no row's labels call for a person, so there is nothing to tune on",
            field="--data",
        )
    chosen = choose(points, min_recall, current=current)
    typer.echo(f"{data}: escalation by min_probability ({len(labelled.rows)} rows)")
    typer.echo(
        f"{'min_probability':>15} {'precision':>9} {'recall':>6} {'F1':>5} {'human':>6} {'clarify':>7}"
    )
    for point in points:
        marks = [
            mark
            for mark, hit in (
                ("chosen", point is chosen),
                ("current", point.min_probability == current),
            )
            if hit
        ]
        shown_value = "null" if point.min_probability is None else f"{point.min_probability:g}"
        typer.echo(
            f"{shown_value:>15} {fmt(point.escalation['precision']):>9} "
            f"{fmt(point.escalation['recall']):>6} {fmt(point.escalation['f1']):>5} "
            f"{point.get('rate'):>6.1%} {point.escalation['actions'].get('clarify', 0):>7.1%}"
            f"  {', '.join(marks)}".rstrip()
        )
    typer.echo(f"the labels hand over {true_rate:.1%} of the rows")
    criterion = "best F1"
    if chosen is None:
        # nothing to choose on: keep what runs now rather than the grid's first value
        typer.echo(
            "no value finds any of the messages the labels hand over (recall 0 at every "
            "value), so none is better than another; keeping the current value"
        )
        criterion = "kept: no value found a message the labels hand over"
    elif min_recall is not None and chosen.get("recall") < min_recall:
        typer.echo(f"no value reaches recall {min_recall:g}; chose the best F1 instead")
        criterion = f"best F1: no value reached recall {min_recall:g}"
    elif min_recall is not None:
        criterion = f"least hand-over at recall >= {min_recall:g}"
    value = current if chosen is None else chosen.min_probability
    verb = "kept" if chosen is None else "chosen"
    typer.echo(f"{verb} min_probability: {'null' if value is None else f'{value:g}'}")
    if write_policy is not None:
        # a first-format policy (flat keys) is written in this format: it may not mix the two
        document = upgrade(read_policy_file(policy), str(policy))[0] if policy is not None else {}
        rules = document.setdefault("rules", {})
        rules.setdefault("high_urgency_negative", {})["min_probability"] = value
        header = (
            f"# high_urgency_negative.min_probability chosen by `kefu tune-escalation` on {data}\n"
            f"# for {deployment.model_version} ({criterion})\n"
        )
        with replacing(write_policy) as tmp:
            tmp.write_text(
                header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8"
            )
        typer.echo(f"wrote {write_policy}")


def _check_policy_target(path: Path) -> None:
    """--write-policy names a file in a folder that exists (it is written after the sweep)."""
    if path.is_dir():
        raise InputError(
            f"--write-policy {path} is a directory; give the path of a YAML file to write",
            field="--write-policy",
        )
    if not path.parent.is_dir():
        raise InputError(
            f"--write-policy {path}: the folder {path.parent} does not exist; create it or "
            "choose another path",
            field="--write-policy",
        )
