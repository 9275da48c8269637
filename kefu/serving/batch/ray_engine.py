"""`kefu score --engine ray`: the same readers and the same `Scorer` on Ray Data.

Usage: `run_ray(job, ray_address=None)` starts a local Ray instance with `job.workers` CPUs for
scoring (plus one for reading and writing); `ray_address="auto"` or "ray://head:10001" joins a
cluster (kefu must be installed on its nodes and the inputs and output on storage they share).
`ray_cluster.py` starts or joins Ray; `ray_chunks.py` reads and scores the chunks (one Ray row
each); `ray_routing.py` routes the session buckets in Ray tasks; `ray_errors.py` reports what a
run raised through Ray as the local engine would (the user's errors one line, a bug with its
remote traceback).

Pipeline: read (a Datasource with one task per input file, running kefu's streaming readers so
rejects, line numbers and column types match the local engine) -> `map_batches` over a pool of
`ScoringActor`s (ActorPoolStrategy), each holding one ONNX Runtime session with
`cores // workers` threads -> the driver takes the scored chunks in input order, as the local
engine commits them: their rows into `OUTPUT.partial/ray/chunks.parquet`, their rejects into
`OUTPUT.partial/ray/rejects.jsonl`, their counts into the summary and its progress bar -> the
merge both engines end with (`writers.merge_scored`) into the output file, then the rejects.

Conversations (`--session-col`): the read task adds each chunk's session and order keys
(`sessions.annotate`), the actors score with route inputs, and the merge routes every row with
its conversation's context through the local engine's `SessionRouter`, over all staged chunks
(buckets by session under `OUTPUT.partial/sessions/`): sessions spread over files and chunks,
whichever actor scored them, are routed exactly as the local engine routes them. The buckets
are routed by Ray tasks (`RayRouting`, `workers` at a time, once the actors are gone), so Ray
stays up until the merge is done.

Ray is the optional extra `ray`, imported only by these `ray_*` modules (each says what to
install when it is missing, `RAY_EXTRA_MISSING`). Memory is bounded
by Ray's streaming executor (backpressure and object-store spilling) and by the merge, which
holds one staged batch (`MERGE_BATCH_CHUNKS` chunks) at a time (with sessions, each routing
task one bucket of routing columns). Nothing is resumed: Ray retries failed tasks and
restarts failed actors itself, and a run that stops (an error, Ctrl-C) removes its staged
chunks, so the same command simply runs again; `--resume` belongs to the local engine.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from kefu.errors import ConfigError, DataError, KefuError
from kefu.serving.batch.job import ReadCounts, ScoreJob, Summary
from kefu.serving.batch.plan import RunPlan, plan_run
from kefu.serving.batch.progress import ProgressReporter
from kefu.serving.batch.ray_cluster import RAY_EXTRA_MISSING, READ_CPUS, quiet_console, start_ray
from kefu.serving.batch.session_routing import SessionRouter
from kefu.serving.batch.staging import STATE
from kefu.serving.batch.writers import concat_lines, merge_scored
from kefu.serving.classifier import ort_threads
from kefu.tabular import estimate_records

try:
    import ray
    from ray.data import ActorPoolStrategy
except ImportError:  # pragma: no cover - the ray extra is installed in CI
    raise ConfigError(RAY_EXTRA_MISSING) from None

from kefu.serving.batch.ray_chunks import (
    CHUNK_INDEX,
    CHUNK_SCHEMA,
    COUNTS,
    FILE_INDEX,
    REJECTS,
    ROW_COUNT,
    ROWS,
    SCHEMA,
    ChunkDatasource,
    ScoringActor,
    from_ipc,
)
from kefu.serving.batch.ray_errors import keep_task_errors, reported
from kefu.serving.batch.ray_routing import RayRouting

# What the driver stages of a scored chunk: its rows (rejects and counts are taken at once).
STAGED_SCHEMA = pa.schema([CHUNK_SCHEMA.field(name) for name in (ROWS, SCHEMA)])
MERGE_BATCH_CHUNKS = 8
STAGED, STAGED_REJECTS = "chunks.parquet", "rejects.jsonl"  # under OUTPUT.partial/ray/
RERUN_HINT = "rerun the same command"


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
    plan = plan_run(job, engine="ray")
    for warning in plan.warnings():
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    _clear_staging(plan.staging_dir, job.fresh)
    staged = plan.staging_dir / "ray"
    try:
        staged.mkdir(parents=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {staged}: {exc.strerror or exc}", file=str(job.output)
        ) from None
    router = SessionRouter.for_run(
        job.sessions,
        plan.policy,
        plan.staging_dir / "sessions",
        workers=job.workers,
        runner=RayRouting(job.workers),
    )
    try:
        with quiet_console():
            started_ray = start_ray(job.workers, ray_address)
            try:
                summary = _stage(job, plan, staged, console)
                summary.check()
                _merge(staged, plan, job.output, summary.scored, router)  # routes on Ray
            finally:
                if started_ray:
                    ray.shutdown()
    except Exception as exc:  # through Ray: the user's errors one line, a bug its traceback
        error = reported(exc)
        if error is exc:
            raise
        raise error from None
    finally:  # nothing here can be resumed: never make the next run ask for --fresh
        shutil.rmtree(plan.staging_dir, ignore_errors=True)
    if router is not None:
        for line in router.lines():
            console.print(line, highlight=False, soft_wrap=True)
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


def _stage(job: ScoreJob, plan: RunPlan, staged: Path, console: Console) -> Summary:
    """Score every chunk on Ray and take the scored chunks in input order, as the local engine
    commits them: rows to `staged/STAGED` (a chunk whose rows were all rejected stages none, as
    the local engine commits no part for it), rejects to `staged/STAGED_REJECTS`, counts into
    the summary returned."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # chunks come back in input order
    context.enable_progress_bars = False  # Ray counts chunks; kefu's bar counts rows
    keep_task_errors(context)  # a scoring actor's error arrives as it was raised
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
            "route_inputs": job.sessions is not None,
        },
        batch_size=1,  # one chunk per call
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=job.workers),
        num_cpus=1,
    )
    total = sum(estimate_records(source) for source in plan.inputs) if job.progress else None
    summary = Summary()
    order = _ChunkOrder()
    with (
        ProgressReporter(total, 0, job.progress, console) as progress,
        pq.ParquetWriter(staged / STAGED, STAGED_SCHEMA) as writer,
        (staged / STAGED_REJECTS).open("w", encoding="utf-8") as rejects_out,
    ):
        for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = (FILE_INDEX, CHUNK_INDEX, ROW_COUNT, REJECTS, COUNTS)
            for file, chunk, rows, rejects, counts in zip(
                *(batch.column(name).to_pylist() for name in columns), strict=True
            ):
                order.check(file, chunk)
                rejects_out.write(rejects)
                read = ReadCounts(**json.loads(counts))
                summary.add(read, rows, [json.loads(line) for line in rejects.splitlines()])
                progress.advance(read.rows)
            with_rows = batch.filter(pc.greater(batch.column(ROW_COUNT), 0))
            if with_rows.num_rows:
                writer.write_table(with_rows.select(STAGED_SCHEMA.names).cast(STAGED_SCHEMA))
    return summary


class _ChunkOrder:
    """Checks that chunks arrive in (file, chunk) order with no gap inside a file.

    `preserve_order` makes Ray keep input order; the check turns a broken promise into an
    error rather than an output whose row order (and, with sessions, whose routes: ties in a
    session keep input order) quietly differs from the local engine's.
    """

    def __init__(self) -> None:
        self.expected = (0, 0)

    def check(self, file: int, chunk: int) -> None:
        key, expected = (file, chunk), self.expected
        if key != expected and not (key[0] > expected[0] and key[1] == 0):
            raise KefuError(
                f"Ray returned chunk {key} where {expected} was expected; rerun with --engine local"
            )
        self.expected = (file, chunk + 1)


def _merge(
    staged: Path, plan: RunPlan, output: Path, scored: int, router: SessionRouter | None
) -> None:
    """The staged chunks -> the output file (through `router` with sessions), in input order;
    then the staged rejects -> the rejects file. Reads one batch of chunks at a time."""

    def column(name: str) -> Iterator[pa.Scalar]:
        with pq.ParquetFile(staged / STAGED) as chunks:
            for batch in chunks.iter_batches(batch_size=MERGE_BATCH_CHUNKS, columns=[name]):
                yield from batch.column(0)

    schemas = (pa.ipc.read_schema(raw.as_buffer()) for raw in column(SCHEMA))

    def parts() -> Iterator[pa.Table]:
        return (from_ipc(raw.as_buffer()) for raw in column(ROWS))

    merge_scored(parts, schemas, scored, plan, output, router, hint=RERUN_HINT)
    concat_lines([staged / STAGED_REJECTS], plan.rejects_path, hint=RERUN_HINT)
