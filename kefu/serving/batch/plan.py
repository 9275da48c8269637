"""Everything checked before the first row is scored, shared by the local and the Ray engine.

`plan_run` resolves the inputs, opens each one (readable, has the text and id columns), checks
the output path, what `--resume` would continue, and validates the bundle and routing policy
without starting ONNX Runtime, so a bad argument fails in a second with a message naming the
file, not an hour into the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import kefu
from kefu.errors import ConfigError, DataError
from kefu.serving.batch.job import ScoreJob
from kefu.serving.batch.scoring import SCORE_COLUMNS
from kefu.serving.batch.sources import check_input, check_output, found_columns, output_paths
from kefu.serving.deployment import check_deployable
from kefu.serving.routing_policy import RoutingPolicy
from kefu.tabular import ReadOptions, TableFile, resolve_files
from kefu.tabular.options import OTHER_COLUMNS_CHARS


@dataclass
class RunPlan:
    inputs: list[TableFile]
    read_options: ReadOptions
    output_format: str
    excel_csv: bool
    rejects_path: Path
    staging_dir: Path
    model_version: str
    fingerprint: dict[str, Any]
    clashing_columns: list[str] = field(
        default_factory=list
    )  # input columns named like score columns
    policy: RoutingPolicy | None = None  # validated; session routing decides with it
    resume_note: str | None = None  # --resume with no unfinished run: what happens instead

    def named_as(self, names: list[str]) -> RunPlan:
        """This plan with its inputs named `names` (a resumed run's first names), same files."""
        if len(names) != len(self.inputs):  # a state written before names were kept
            return self
        inputs = [
            replace(source, display_name=name)
            for source, name in zip(self.inputs, names, strict=True)
        ]
        return replace(self, inputs=inputs)

    def warnings(self) -> list[str]:
        warnings = [self.resume_note] if self.resume_note else []
        if self.clashing_columns:
            warnings.append(
                f"input columns {self.clashing_columns} are named like score columns: they are "
                "kept as input_<name>, and the score columns hold this run's predictions"
            )
        return warnings


def plan_run(job: ScoreJob, engine: str) -> RunPlan:
    read_options = ReadOptions(
        encoding=job.encoding,
        max_record_lines=job.max_record_lines,
        max_record_chars=job.max_text_chars + OTHER_COLUMNS_CHARS,  # as the text limit moves
    )
    inputs = resolve_files(job.inputs)
    output_format = check_output(job.output, inputs, job.output_format, job.excel_csv)
    columns: dict[str, None] = {}
    for source in inputs:
        found = check_input(source, job.text_col, job.id_col, read_options)
        columns.update(dict.fromkeys(found or []))
        _check_session_columns(source, found, job)
    bundle, policy = check_deployable(job.bundle, job.variant, job.policy)  # now, not in a worker
    rejects_path, staging_dir = output_paths(job.output)
    resume_note = _check_resume(job, engine, staging_dir)
    files_hash = hashlib.sha256(
        json.dumps(bundle.manifest.files, sort_keys=True).encode()
    ).hexdigest()
    fingerprint = {
        # Committed chunks were scored by this code: an upgrade between runs would mix two
        # versions' outputs (routes, columns, cleaning) in one file.
        "kefu_version": kefu.__version__,
        "engine": engine,
        "inputs": [source.fingerprint() for source in inputs],
        "output": str(job.output.resolve()),
        "read_options": read_options.fingerprint(),
        "max_text_chars": job.max_text_chars,
        "text_col": job.text_col,
        "id_col": job.id_col,
        "chunk_size": job.chunk_size,
        "batch_size": job.batch_size,
        "model_version": bundle.manifest.model_version,
        "bundle_files": files_hash,
        "variant": job.variant or bundle.manifest.default_variant,
        "policy": job.policy_hash(),
        "session_col": job.session_col,
        "turn_col": job.turn_col,
        "time_col": job.time_col,
    }
    return RunPlan(
        inputs=inputs,
        read_options=read_options,
        output_format=output_format,
        excel_csv=job.excel_csv,
        rejects_path=rejects_path,
        staging_dir=staging_dir,
        model_version=bundle.manifest.model_version,
        fingerprint=fingerprint,
        clashing_columns=[name for name in columns if name in SCORE_COLUMNS],
        policy=policy,
        resume_note=resume_note,
    )


def _check_resume(job: ScoreJob, engine: str, staging_dir: Path) -> str | None:
    """`--resume` continues the unfinished run under OUTPUT.partial/. With none there, a
    finished OUTPUT is refused (scoring it again is a fresh run: rerun without --resume),
    and with no OUTPUT either the run starts from the beginning, saying so."""
    if not job.resume or engine != "local" or staging_dir.exists():
        return None  # the Ray engine refuses --resume itself; a staging folder is resumed
    if job.output.exists():
        raise ConfigError(
            f"nothing to resume: {job.output} is already written and no unfinished run of it is "
            f"left (no {staging_dir}); rerun without --resume to score it again"
        )
    return f"no unfinished run of {job.output} to resume (no {staging_dir}); scoring from the start"


def _check_session_columns(source: TableFile, columns: list[str] | None, job: ScoreJob) -> None:
    """The session columns must exist (JSONL: in its first 1,000 records) before any row is
    scored."""
    spec = job.sessions
    if spec is None or columns is None:
        return
    for option, name in (
        ("--session-col", spec.session_col),
        ("--turn-col", spec.turn_col),
        ("--time-col", spec.time_col),
    ):
        if name is not None and name not in columns:
            raise DataError(
                f"{option} column {name!r} is missing; {found_columns(source, columns)}",
                file=source.display_name,
                column=name,
            )
