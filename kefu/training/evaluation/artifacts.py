"""From command-line choices to files: metrics.json, report.md, PNGs, and the bundle's card.

`kefu evaluate` is a thin shell over `run_evaluation`. A policy file (`--policy`) is laid over
the bundle's policy.yaml as `kefu serve --policy` lays it, and checked, with every option and
the existence of every test and training file, before any of them is read, so a typo stops the
run at once instead of after the baseline is fitted; the public dev files, small, are read and
checked whole at that point too. When the output folder is the bundle (or
inside it), or `update_bundle=True`, the metrics and the model card are also written into the
bundle through `kefu.serving.bundle.writer.update_bundle`, which re-seals its hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.errors import DataError, InputError
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import EVALUATION_DIR
from kefu.serving.bundle.writer import update_bundle
from kefu.serving.routing_policy import RoutingPolicy
from kefu.tabular import table_file
from kefu.training.data.loader import (
    LabelledData,
    load_labelled,
    trained_columns,
    validate_command,
    write_rejects,
)
from kefu.training.data.repeats import fold_text
from kefu.training.evaluation.card_sections import EVALUATION_KEYS
from kefu.training.evaluation.evaluate import (
    TestSet,
    TrainingData,
    evaluate_bundle,
    write_metrics,
)
from kefu.training.evaluation.head_metrics import MIN_SUPPORT
from kefu.training.evaluation.model_card import render_model_card
from kefu.training.evaluation.public_dev import (
    PER_SET_DEFAULTS,
    READERS,
    PublicSet,
    load_public_sets,
)
from kefu.training.evaluation.report import write_report

# When -o names the bundle itself the report goes one level down: files directly in a bundle are
# sealed into its manifest, and a later evaluation rewriting them would break the seal.
REPORT_SUBDIR = EVALUATION_DIR
REJECTS_FILE = "rejects.jsonl"
TRAIN_CONFIG_KEYS = ("train_data", "train_file", "train_path", "train")


def parse_test_set(value: str) -> tuple[str, Path]:
    """`NAME=PATH` or `PATH`; a bare path is named after its folder (datasets/real/test.jsonl: real)."""
    name, sep, path = value.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    bare = Path(value)
    return (bare.parent.name or bare.stem), bare


@dataclass
class EvaluationRequest:
    bundle: Path
    data: list[tuple[str, Path]]  # (set name, file); the first is metrics.json's top level
    out: Path
    train_data: Path | None = None
    lead: str | None = None  # the set the model card leads with (default: the first)
    min_support: int = MIN_SUPPORT
    public_dev: Path | None = None  # None: skip the public sets
    public_dev_limit: int | None = PER_SET_DEFAULTS  # rows per set; None = all
    update_bundle: bool = False
    threads: int | None = None
    # a policy file laid over the bundle's policy.yaml (None: the bundle's alone), as served
    policy: Path | None = None
    # load_labelled keyword -> column name, as given; the rest: the bundle's training columns
    columns: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None  # text encoding of the data files; None: detected per file
    max_record_lines: int = 5  # a CSV/TSV record over more physical lines is rejected
    # the columns of a conversation id and customer turn number, as the test files name them
    session_col: str = "session"
    turn_col: str = "turn"


@dataclass
class EvaluationOutcome:
    metrics: dict[str, Any]
    report_dir: Path
    report: Path
    files: list[Path]
    bundle_updated: bool


def run_evaluation(
    request: EvaluationRequest, log: Callable[[str], None] = lambda _: None
) -> EvaluationOutcome:
    bundle = read_bundle(request.bundle)
    RoutingPolicy.for_bundle(bundle, request.policy)  # PolicyError names file, key and value
    if request.out.exists() and not request.out.is_dir():
        raise InputError(f"-o {request.out} is a file; give a folder for the report", "--out")
    names = [name for name, _ in request.data]
    if len(set(names)) != len(names):
        raise InputError(
            f"two test sets are named alike ({names}); name them with --data NAME=FILE", "--data"
        )
    if request.lead is not None and request.lead not in names:
        raise InputError(
            f"--lead {request.lead!r} names no test set; the sets are {names}", "--lead"
        )
    # Every file exists and has a known type before the first is read: a typo in the last
    # --data or a missing training split fails at once, not after the others are loaded.
    for _, path in request.data:
        table_file(path)
    train_files = resolve_train_data(request.train_data, request.data[0][1], bundle.training_config)
    for path, _ in train_files:
        table_file(path)
    public_sets = _public_sets(request, log)
    report_dir = request.out / REPORT_SUBDIR if _same(request.out, bundle.path) else request.out
    report_dir.mkdir(parents=True, exist_ok=True)
    reading = (request.encoding, request.max_record_lines)
    # a team's test files come from the same export as its training files: same column names
    test_columns = trained_columns(bundle.training_config) | request.columns
    test_sets = [
        TestSet(
            name,
            _load(
                path,
                test_columns,
                reading,
                report_dir,
                log,
                f"{name}_{REJECTS_FILE}" if i else REJECTS_FILE,
            ),
        )
        for i, (name, path) in enumerate(request.data)
    ]
    for test_set in test_sets:
        name_conversations(test_set.data, request.session_col, request.turn_col)
    train_data = training_data(request, train_files, bundle.training_config, log)
    _warn_of_trained_texts(test_sets, train_data.data, log)
    result = evaluate_bundle(
        bundle.path,
        test_sets,
        report_dir,
        train_data=train_data,
        public_sets=public_sets,
        threads=request.threads,
        min_support=request.min_support,
        lead=request.lead,
        policy=request.policy,
    )
    metrics_path = write_metrics(result.metrics, report_dir)
    report_path = write_report(result.metrics, bundle.label_names, result.figures, report_dir)
    files = [
        metrics_path,
        report_path,
        *(p for kinds in result.figures.values() for k in kinds.values() for p in k.values()),
    ]
    into_bundle = request.update_bundle or _inside(request.out, bundle.path)
    if into_bundle:
        stale = EVALUATION_KEYS | set(bundle.metrics.get("test_sets") or [])
        kept = {key: value for key, value in bundle.metrics.items() if key not in stale}
        link = _relative_link(report_path, bundle.path)
        card = render_model_card(bundle, result.metrics, report_link=link)
        update_bundle(bundle.path, metrics=kept | result.metrics, model_card=card)
        log(f"bundle {bundle.path}: metrics.json and README.md updated, hashes re-sealed")
    return EvaluationOutcome(result.metrics, report_dir, report_path, files, into_bundle)


# The real corpus's test split shares 4% of its texts with training (short turns such as 在吗
# stay with their chats); a share this large means the test file holds training rows.
TRAINED_TEXT_SHARE = 0.25


def _warn_of_trained_texts(
    test_sets: list[TestSet], train: LabelledData, log: Callable[[str], None]
) -> None:
    """A test file that is (or holds) the training file scores what the model memorised, far
    above what it reads in new messages; said before anyone quotes the figures."""
    trained = {fold_text(row.text) for row in train.rows}
    for test_set in test_sets:
        rows = test_set.data.rows
        seen = sum(fold_text(row.text) in trained for row in rows)
        if rows and seen >= TRAINED_TEXT_SHARE * len(rows):
            log(
                f"warning: {test_set.name}: {seen} of {len(rows)} rows have a text of the "
                f"training data ({train.source}): their scores measure memory, not reading; "
                "evaluate on held-out rows (kefu data split)"
            )


def _public_sets(request: EvaluationRequest, log: Callable[[str], None]) -> list[PublicSet] | None:
    """The public dev sets, read whole and checked (under a second): a broken file stops the run
    here, before the report folder is made and any test file is read, not after the scoring."""
    if request.public_dev is None:
        return None
    public_sets = load_public_sets(request.public_dev, request.public_dev_limit)
    if not public_sets:
        raise InputError(
            f"--public-dev {request.public_dev} holds none of the public dev files "
            f"({', '.join(READERS)}); pass the folder that holds them or --no-public-dev",
            "--public-dev",
        )
    found = ", ".join(f"{s.name} ({len(s.texts)})" for s in public_sets)
    absent = ", ".join(name for name in READERS if not (request.public_dev / name).exists())
    log(f"public dev: {found}" + (f"; not in the folder: {absent}" if absent else ""))
    return public_sets


def resolve_train_data(
    explicit: Path | None, data_path: Path, training_config: Mapping[str, Any]
) -> list[tuple[Path, float]]:
    """The baseline's training files and weights: --train-data, else the bundle's config (with
    its `train_weights`), else train.* beside the first test file."""
    if explicit is not None:
        return [(explicit, 1.0)]
    named: list[str] = []
    for key in TRAIN_CONFIG_KEYS:
        value = _nested_get(training_config, key)
        files = [value] if isinstance(value, str) else value
        if isinstance(files, list):
            named += [str(f) for f in files if not Path(str(f)).is_file()]
        if isinstance(files, list) and files and all(Path(str(f)).is_file() for f in files):
            weights = training_config.get("train_weights") or [1.0] * len(files)
            # a relative path is read from where training ran
            return [(Path(f), float(w)) for f, w in zip(files, weights, strict=True)]
    sibling = data_path.with_name("train" + data_path.suffix)
    if sibling.is_file() and sibling.resolve() != data_path.resolve():
        return [(sibling, 1.0)]
    config_says = (
        f"the bundle's training config names {', '.join(named[:3])}, not found from "
        f"{Path.cwd()} (relative paths are read from where training ran)"
        if named
        else "the bundle's training config names none"
    )
    raise DataError(
        f"no training split found for the TF-IDF baseline: {config_says}, and there is no "
        f"{sibling.name} beside the evaluated file; pass --train-data FILE",
        file=str(data_path),
    )


def training_data(
    request: EvaluationRequest,
    files: list[tuple[Path, float]],  # resolve_train_data's
    config: Mapping[str, Any],
    log: Callable[[str], None],
) -> TrainingData:
    """The files the bundle was trained on, as one set of rows with per-row weights."""
    columns = _train_columns(request, config)
    rows, weights = [], []
    for path, weight in files:
        trained_with = None if request.train_data else config.get("data_encoding")
        loaded = _load(
            path,
            columns,
            (request.encoding or trained_with, request.max_record_lines),
            None,
            log,
            training=True,
        )
        rows += loaded.rows
        weights += [weight] * len(loaded.rows)
    source = ", ".join(str(path) for path, _ in files)
    return TrainingData(
        LabelledData(source, rows, []), weights if len(files) > 1 or files[0][1] != 1.0 else None
    )


def _load(
    path: Path,
    columns: Mapping[str, Any],  # load_labelled's *_col keywords
    reading: tuple[str | None, int],  # (encoding, max_record_lines)
    rejects_dir: Path | None,
    log: Callable[[str], None],
    rejects_name: str = REJECTS_FILE,
    training: bool = False,
) -> LabelledData:
    """`training`: a file the bundle was trained on, read again for the baseline; its rejects
    were shown when the model was trained, so one line counts them instead of listing them."""
    encoding, max_record_lines = reading
    data = load_labelled(path, encoding=encoding, max_record_lines=max_record_lines, **columns)
    if data.rejects and training:
        log(
            f"{path}: {len(data.rejects)} rows rejected, left out of the baseline as out of "
            f"training ({validate_command(str(path), columns)} lists them)"
        )
    elif data.rejects:
        shown = "; ".join(reject.describe() for reject in data.rejects[:3])
        where = ""
        if rejects_dir is not None:
            write_rejects(data.rejects, rejects_dir / rejects_name)
            where = f" (all in {rejects_dir / rejects_name})"
        log(f"{path}: {len(data.rejects)} rows rejected{where}: {shown}")
    for note in data.missing_column_notes("--{head}-col NAME"):
        log(f"note: {note}")
    return data


def _train_columns(
    request: EvaluationRequest, training_config: Mapping[str, Any]
) -> dict[str, str]:
    """The training run's column names for its own split (unless --train-data names another file)."""
    if request.train_data is None:
        return dict(request.columns) | trained_columns(training_config)
    return dict(request.columns)


def _nested_get(config: Mapping[str, Any], key: str) -> Any:
    """`key` at the top level or one level down (e.g. {"data": {"train_file": ...}})."""
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, Mapping) and key in value:
            return value[key]
    return None


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _relative_link(path: Path, bundle_dir: Path) -> str | None:
    if not _inside(path, bundle_dir):
        return None
    return path.resolve().relative_to(bundle_dir.resolve()).as_posix()


def name_conversations(data: LabelledData, session_col: str, turn_col: str) -> None:
    """Copy the caller's conversation columns to the names the conversation view and the
    bootstrap read (`session`, `turn`). A named column no row holds is an error: silently,
    the conversation view would vanish and the intervals narrow to per-message ones."""
    if (session_col, turn_col) == ("session", "turn"):
        return
    for column, option in ((session_col, "--session-col"), (turn_col, "--turn-col")):
        if data.rows and not any(column in row.extra for row in data.rows):
            found = sorted({key for row in data.rows[:1000] for key in row.extra})
            raise InputError(
                f"{data.source}: no column {column!r} ({option}); other columns: {found[:30]}",
                option,
            )
    for row in data.rows:
        row.extra["session"] = row.extra.get(session_col)
        row.extra["turn"] = row.extra.get(turn_col)
