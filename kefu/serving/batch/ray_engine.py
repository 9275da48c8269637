"""`kefu score --engine ray`: the same readers and the same `Scorer` on Ray Data.

Usage: `run_ray(job, ray_address=None)` starts a local Ray instance with `job.workers` CPUs for
scoring (plus one for reading and writing); `ray_address="auto"` or "ray://head:10001" joins a
cluster (kefu must be installed on its nodes and the inputs and output on storage they share).
`ray_cluster.py` starts or joins Ray and turns its errors into kefu's.

Pipeline: read (a Datasource with one task per input file, running kefu's streaming readers so
rejects, line numbers and column types match the local engine) -> `map_batches` over a pool of
`ScoringActor`s (ActorPoolStrategy), each holding one ONNX Runtime session with
`cores // workers` threads -> the driver streams the scored chunks, in input order, into
`OUTPUT.partial/ray/chunks.parquet` while its progress bar counts their rows -> a merge into
the output file and `OUTPUT.rejects.jsonl`, in input order.

Why one Ray row per chunk: Ray merges small blocks and splits large ones by rows as it sees fit.
A chunk travels as one row holding its rows in Arrow IPC form, so Ray can bundle and balance
chunks across actors freely but never cut one; each actor scores whole chunks with the same
micro-batches as the local engine, so the confidences are bit-identical, not merely close.

Ray is the optional extra `ray`, imported only here and in `ray_cluster.py`. Memory is bounded
by Ray's streaming executor (backpressure and object-store spilling) and by the merge, which
holds one staged batch (`MERGE_BATCH_CHUNKS` chunks) at a time. Nothing is resumed: Ray retries
failed tasks and restarts failed actors itself, and a run that stops (an error, Ctrl-C) removes
its staged chunks, so the same command simply runs again; `--resume` belongs to the local engine.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from kefu.errors import ConfigError, DataError, KefuError
from kefu.serving.batch.job import ReadCounts, ScoreJob, Summary
from kefu.serving.batch.plan import RunPlan, plan_run
from kefu.serving.batch.progress import ProgressReporter
from kefu.serving.batch.readers import read_chunks
from kefu.serving.batch.scoring import Scorer, attach_scores
from kefu.serving.batch.staging import STATE
from kefu.serving.batch.writers import unified_schema, write_output
from kefu.serving.classifier import ort_threads
from kefu.tabular import ReadOptions, TableFile, estimate_records
from kefu.tabular.output import replacing

try:
    import ray
    from ray.data import ActorPoolStrategy, Datasource, ReadTask
    from ray.data.block import BlockMetadata
except ImportError:  # pragma: no cover - the ray extra is installed in CI
    raise ConfigError(
        "--engine ray needs the ray extra: pip install 'ray[data]>=2.30,<3' "
        "(from a checkout: pip install -e '.[ray]')"
    ) from None

from kefu.serving.batch.ray_cluster import READ_CPUS, quiet_console, start_ray, user_error

# Columns of a chunk row. ROWS holds the chunk's table in Arrow IPC stream form: before
# scoring the input rows plus TEXT, after scoring the output rows; SCHEMA is its schema alone,
# so the merge can plan the output schema without decoding every chunk twice.
FILE_INDEX, CHUNK_INDEX, ROWS, SCHEMA = "_kefu_file", "_kefu_chunk", "_kefu_rows", "_kefu_schema"
REJECTS, COUNTS, TEXT = "_kefu_rejects", "_kefu_counts", "_kefu_text"  # COUNTS: ReadCounts JSON
CHUNK_SCHEMA = pa.schema(
    [
        (FILE_INDEX, pa.int32()),
        (CHUNK_INDEX, pa.int64()),
        (ROWS, pa.large_binary()),
        (SCHEMA, pa.binary()),
        (REJECTS, pa.large_string()),
        (COUNTS, pa.string()),
    ]
)
MERGE_BATCH_CHUNKS = 8
STAGED = "chunks.parquet"  # under OUTPUT.partial/ray/


def run_ray(
    job: ScoreJob, ray_address: str | None = None, console: Console | None = None
) -> Summary:
    console = console or Console(stderr=True)
    started = time.monotonic()
    if job.resume:
        raise ConfigError(
            "--resume continues a run of the local engine (--engine local); a Ray run keeps "
            "nothing when it stops: rerun without --resume"
        )
    if job.sessions is not None:
        raise ConfigError(
            "--session-col is supported by the local engine only (conversations are routed in "
            "order after scoring); rerun with --engine local"
        )
    plan = plan_run(job, engine="ray")
    for warning in plan.warnings():
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    _clear_staging(plan.staging_dir, job.fresh)
    staged = plan.staging_dir / "ray" / STAGED
    try:
        staged.parent.mkdir(parents=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {staged.parent}: {exc.strerror or exc}", file=str(job.output)
        ) from None
    try:
        with quiet_console():
            started_ray = start_ray(job.workers, ray_address)
            try:
                _stage(job, plan, staged, console)
            finally:
                if started_ray:
                    ray.shutdown()
        summary = _merge(staged, job.output, plan)
    except Exception as exc:  # Ray wraps a task's errors: kefu's own error or the cause, one line
        raise user_error(exc) from None
    finally:  # nothing here can be resumed: never make the next run ask for --fresh
        shutil.rmtree(plan.staging_dir, ignore_errors=True)
    summary.files, summary.engine = len(plan.inputs), "ray"
    summary.output, summary.rejects_file = str(job.output), str(plan.rejects_path)
    summary.seconds = time.monotonic() - started
    summary.rows_this_run = summary.rows_read
    return summary


def _clear_staging(staging_dir: Path, fresh: bool) -> None:
    """Refuse to run over the local engine's unfinished run unless --fresh; drop the rest."""
    if not staging_dir.exists():
        return
    if not fresh and (staging_dir / STATE).exists():
        raise ConfigError(
            f"{staging_dir} holds an unfinished run of the local engine; continue it with "
            "--engine local --resume, or pass --fresh to discard it"
        )
    shutil.rmtree(staging_dir)  # --fresh, or what a killed Ray run left (nothing to resume)


def _stage(job: ScoreJob, plan: RunPlan, staged: Path, console: Console) -> None:
    """Score every chunk on Ray; write the scored chunk rows to `staged`, in input order."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # chunks come back in input order
    context.enable_progress_bars = False  # Ray counts chunks; kefu's bar counts rows
    chunks = ray.data.read_datasource(
        ChunkDatasource(plan.inputs, job, plan.read_options),
        num_cpus=READ_CPUS,  # unlike the actors' 1 CPU, so Ray does not fuse the two
    )
    scored = chunks.map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            "bundle": str(job.bundle.resolve()),
            "variant": job.variant,
            "policy": str(job.policy.resolve()) if job.policy else None,
            "threads": ort_threads(job.workers),
            "batch_size": job.batch_size,
        },
        batch_size=1,  # one chunk per call
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=job.workers),
        num_cpus=1,
    )
    total = sum(estimate_records(source) for source in plan.inputs) if job.progress else None
    with (
        ProgressReporter(total, 0, job.progress, console) as progress,
        pq.ParquetWriter(staged, CHUNK_SCHEMA) as writer,
    ):
        for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.write_table(batch.select(CHUNK_SCHEMA.names).cast(CHUNK_SCHEMA))
            for counts in batch.column(COUNTS).to_pylist():
                progress.advance(json.loads(counts)["rows"])


class ChunkDatasource(Datasource):
    """One read task per input file, yielding one row per kefu chunk."""

    def __init__(self, inputs: list[TableFile], job: ScoreJob, options: ReadOptions):
        self.inputs, self.job, self.options = inputs, job, options

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(source.size for source in self.inputs)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        tasks = []
        for number, source in enumerate(self.inputs):
            metadata = BlockMetadata(
                num_rows=None,
                size_bytes=source.size,
                exec_stats=None,
                input_files=(str(source.path),),
            )
            tasks.append(ReadTask(functools.partial(self._read, number, source), metadata))
        return tasks

    def _read(self, number: int, source: TableFile) -> Iterator[pa.Table]:
        job = self.job
        chunks = read_chunks(
            source, text_col=job.text_col, id_col=job.id_col, chunk_size=job.chunk_size,
            options=self.options, max_text_chars=job.max_text_chars,
        )  # fmt: skip
        for chunk in chunks:
            rows = chunk.table.append_column(TEXT, pa.array(chunk.texts, pa.string()))
            rejects = "".join(
                json.dumps(reject, ensure_ascii=False) + "\n" for reject in chunk.rejects
            )
            counts = json.dumps(asdict(chunk.counts), ensure_ascii=False)
            yield _chunk_row(number, chunk.index, rows, rejects, counts)


class ScoringActor:
    """A Ray actor with one `Scorer` (one ORT session), reused for every chunk it is given."""

    def __init__(
        self, bundle: str, variant: str | None, policy: str | None, threads: int, batch_size: int
    ):
        self.scorer = Scorer.from_bundle(
            bundle,
            variant=variant,
            policy_path=policy,
            intra_op_threads=threads,
            batch_size=batch_size,
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for row in batch.to_pylist():
            rows = _from_ipc(row[ROWS])
            texts = rows.column(TEXT).to_pylist()
            scored = attach_scores(rows.drop_columns([TEXT]), self.scorer.score(texts))
            out.append(
                _chunk_row(row[FILE_INDEX], row[CHUNK_INDEX], scored, row[REJECTS], row[COUNTS])
            )
        return pa.concat_tables(out)


def _chunk_row(file: int, chunk: int, rows: pa.Table, rejects: str, counts: str) -> pa.Table:
    values = [file, chunk, _to_ipc(rows), rows.schema.serialize().to_pybytes(), rejects, counts]
    return pa.table([[value] for value in values], schema=CHUNK_SCHEMA)


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _merge(staged: Path, output: Path, plan: RunPlan) -> Summary:
    """Staged chunk rows -> the output file and the rejects file, in (file, chunk) order."""
    schemas = pq.read_table(staged, columns=[SCHEMA]).column(0).to_pylist()
    schema = unified_schema(pa.ipc.read_schema(pa.py_buffer(raw)) for raw in schemas)
    summary = Summary()
    hint = "rerun the same command"
    with (
        replacing(plan.rejects_path, hint) as rejects_tmp,
        rejects_tmp.open("w", encoding="utf-8") as rejects_out,
    ):

        def scored_parts() -> Iterator[pa.Table]:
            for row in _chunk_rows_in_order(staged):
                rows = _from_ipc(row[ROWS])
                rejects_out.write(row[REJECTS])
                rejects = [json.loads(line) for line in row[REJECTS].splitlines()]
                summary.add(ReadCounts(**json.loads(row[COUNTS])), rows.num_rows, rejects)
                yield rows

        write_output(
            scored_parts(), schema, output, plan.output_format, excel_csv=plan.excel_csv, hint=hint
        )
    summary.check()
    return summary


def _chunk_rows_in_order(staged: Path) -> Iterator[dict[str, Any]]:
    """Every staged chunk row, checked to be in (file, chunk) order with no gap inside a file.

    `preserve_order` makes Ray keep input order; the check turns a broken promise into an
    error rather than an output whose row order quietly differs from the local engine's.
    """
    expected = (0, 0)
    for batch in pq.ParquetFile(staged).iter_batches(batch_size=MERGE_BATCH_CHUNKS):
        for row in batch.to_pylist():
            key = (row[FILE_INDEX], row[CHUNK_INDEX])
            if key != expected and not (key[0] > expected[0] and key[1] == 0):
                raise KefuError(
                    f"Ray returned chunk {key} where {expected} was expected; rerun with --engine local"
                )
            expected = (key[0], key[1] + 1)
            yield row
