"""From command-line choices to files: metrics.json, report.md, PNGs, and the bundle's card.

`kefu evaluate` is a thin shell over `run_evaluation`. When the output folder is the bundle (or
inside it), or `update_bundle=True`, the metrics and the model card are also written into the
bundle through `kefu.serving.bundle.update_bundle`, which re-seals its hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.serving.bundle import read_bundle, update_bundle
from kefu.serving.taxonomy import REPO_ROOT
from kefu.training.data.loader import LabelledData, load_labelled, write_rejects
from kefu.training.evaluation.evaluate import evaluate_bundle, write_metrics
from kefu.training.evaluation.model_card import EVALUATION_KEYS, render_model_card
from kefu.training.evaluation.public_dev import PER_SET_DEFAULTS, load_public_sets
from kefu.training.evaluation.report import write_report

# When -o names the bundle itself the report goes one level down: files directly in a bundle are
# sealed into its manifest, and a later evaluation rewriting them would break the seal.
REPORT_SUBDIR = "evaluation"
REJECTS_FILE = "rejects.jsonl"
TRAIN_CONFIG_KEYS = ("train_file", "train_data", "train_path", "train")


@dataclass
class EvaluationRequest:
    bundle: Path
    data: Path
    out: Path
    train_data: Path | None = None
    public_dev: Path | None = None  # None: skip the public sets
    public_dev_limit: int | None = PER_SET_DEFAULTS  # rows per set; None = all
    update_bundle: bool = False
    threads: int | None = None
    columns: dict[str, str] = field(default_factory=dict)  # load_labelled keyword -> column name
    encoding: str | None = None  # text encoding of the data files; None: detected per file
    max_record_lines: int = 5  # a CSV/TSV record over more physical lines is rejected


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
    report_dir = request.out / REPORT_SUBDIR if _same(request.out, bundle.path) else request.out
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = request.max_record_lines
    data = _load(request.data, request.columns, request.encoding, lines, report_dir, log)
    train_path = resolve_train_data(request.train_data, request.data, bundle.training_config)
    trained_with = None if request.train_data else bundle.training_config.get("data_encoding")
    train_encoding = request.encoding or trained_with or None
    train_columns = _train_columns(request, bundle.training_config)
    train_data = _load(train_path, train_columns, train_encoding, lines, None, log)
    public_sets = None
    if request.public_dev is not None:
        public_sets = load_public_sets(request.public_dev, request.public_dev_limit)
        log(
            f"public dev: {', '.join(f'{s.name} ({len(s.texts)})' for s in public_sets) or 'no known files'}"
        )
    result = evaluate_bundle(
        bundle.path,
        data,
        report_dir,
        train_data=train_data,
        public_sets=public_sets,
        threads=request.threads,
    )
    metrics_path = write_metrics(result.metrics, report_dir)
    report_path = write_report(result.metrics, bundle.label_names, result.figures, report_dir)
    files = [
        metrics_path,
        report_path,
        *(p for kind in result.figures.values() for p in kind.values()),
    ]
    into_bundle = request.update_bundle or _inside(request.out, bundle.path)
    if into_bundle:
        kept = {key: value for key, value in bundle.metrics.items() if key not in EVALUATION_KEYS}
        link = _relative_link(report_path, bundle.path)
        card = render_model_card(bundle, result.metrics, report_link=link)
        update_bundle(bundle.path, metrics=kept | result.metrics, model_card=card)
        log(f"bundle {bundle.path}: metrics.json and README.md updated, hashes re-sealed")
    return EvaluationOutcome(result.metrics, report_dir, report_path, files, into_bundle)


def resolve_train_data(
    explicit: Path | None, data_path: Path, training_config: Mapping[str, Any]
) -> Path:
    """The baseline's training split: --train-data, else the bundle's config, else train.* beside --data."""
    if explicit is not None:
        return explicit
    for key in TRAIN_CONFIG_KEYS:
        value = _nested_get(training_config, key)
        if isinstance(value, str) and value:
            for candidate in (Path(value), REPO_ROOT / value):
                if candidate.is_file():
                    return candidate
    sibling = data_path.with_name("train" + data_path.suffix)
    if sibling.is_file() and sibling.resolve() != data_path.resolve():
        return sibling
    raise DataError(
        "no training split found for the TF-IDF baseline: the bundle's training config names none "
        f"and there is no {sibling.name} beside the evaluated file; pass --train-data FILE",
        file=str(data_path),
    )


def _load(
    path: Path,
    columns: Mapping[str, str],
    encoding: str | None,
    max_record_lines: int,
    rejects_dir: Path | None,
    log: Callable[[str], None],
) -> LabelledData:
    data = load_labelled(path, encoding=encoding, max_record_lines=max_record_lines, **columns)
    if data.rejects:
        shown = "; ".join(reject.describe() for reject in data.rejects[:3])
        where = ""
        if rejects_dir is not None:
            write_rejects(data.rejects, rejects_dir / REJECTS_FILE)
            where = f" (all in {rejects_dir / REJECTS_FILE})"
        log(f"{path}: {len(data.rejects)} rows rejected{where}: {shown}")
    return data


def _train_columns(
    request: EvaluationRequest, training_config: Mapping[str, Any]
) -> dict[str, str]:
    """The training run's column names for its own split (unless --train-data names another file)."""
    columns = dict(request.columns)
    if request.train_data is None:
        for field_name in ("text", "intent", "urgency", "emotion", "id"):
            value = training_config.get(f"{field_name}_column")
            if isinstance(value, str) and value:
                columns[f"{field_name}_col"] = value
    return columns


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
