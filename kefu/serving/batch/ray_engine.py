"""`kefu score --engine ray`: the same readers and the same `Scorer` on Ray Data.

Usage: `run_ray(job, ray_address=None)` starts a local Ray instance with `job.workers` CPUs for
scoring (plus one for reading and writing); `ray_address="auto"` or "ray://head:10001" joins a
cluster (kefu must be installed on its nodes and the inputs and output on storage they share).
`ray_cluster.py` starts or joins Ray; `ray_errors.py` reports what a run raised through Ray
as the local engine would (the user's errors one line, a bug with its remote traceback).

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

Why one Ray row per chunk: Ray merges small blocks and splits large ones by rows as it sees fit.
A chunk travels as one row holding its rows in Arrow IPC form, so Ray can bundle and balance
chunks across actors freely but never cut one; each actor scores whole chunks with the same
micro-batches as the local engine, so the confidences are bit-identical, not merely close.

Ray is the optional extra `ray`, imported only here and in `ray_cluster.py`. Memory is bounded
by Ray's streaming executor (backpressure and object-store spilling) and by the merge, which
holds one staged batch (`MERGE_BATCH_CHUNKS` chunks) at a time (with sessions, each routing
task one bucket of routing columns). Nothing is resumed: Ray retries failed tasks and
restarts failed actors itself, and a run that stops (an error, Ctrl-C) removes its staged
chunks, so the same command simply runs again; `--resume` belongs to the local engine.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from kefu.errors import ConfigError, DataError, KefuError
from kefu.serving.batch.job import ReadCounts, ScoreJob, Summary
from kefu.serving.batch.plan import RunPlan, plan_run
from kefu.serving.batch.progress import ProgressReporter
from kefu.serving.batch.readers import read_chunks
from kefu.serving.batch.scoring import Scorer, attach_scores
from kefu.serving.batch.session_routing import (
    BucketTask,
    SessionRouter,
    SessionStats,
    route_bucket,
    route_serially,
)
from kefu.serving.batch.sessions import annotate
from kefu.serving.batch.staging import STATE
from kefu.serving.batch.writers import concat_lines, merge_scored
from kefu.serving.classifier import ort_threads
from kefu.tabular import ReadOptions, TableFile, estimate_records

try:
    import ray
    from ray.data import ActorPoolStrategy, Datasource, ReadTask
    from ray.data.block import BlockMetadata
    from ray.exceptions import RayTaskError
except ImportError:  # pragma: no cover - the ray extra is installed in CI
    raise ConfigError(
        "--engine ray needs the ray extra: pip install 'ray[data]>=2.30,<3' "
        "(from a checkout: pip install -e '.[ray]')"
    ) from None

from kefu.serving.batch.ray_cluster import READ_CPUS, quiet_console, start_ray
from kefu.serving.batch.ray_errors import keep_task_errors, reported

# Columns of a chunk row. ROWS holds the chunk's table in Arrow IPC stream form: before
# scoring the input rows plus TEXT (and the session keys), after scoring the output rows;
# ROW_COUNT its rows; SCHEMA its schema alone, so the merge can plan the output schema without
# decoding every chunk twice.
FILE_INDEX, CHUNK_INDEX, ROWS, SCHEMA = "_kefu_file", "_kefu_chunk", "_kefu_rows", "_kefu_schema"
REJECTS, COUNTS, TEXT = "_kefu_rejects", "_kefu_counts", "_kefu_text"  # COUNTS: ReadCounts JSON
ROW_COUNT = "_kefu_row_count"
CHUNK_SCHEMA = pa.schema(
    [
        (FILE_INDEX, pa.int32()),
        (CHUNK_INDEX, pa.int64()),
        (ROWS, pa.large_binary()),
        (ROW_COUNT, pa.int64()),
        (SCHEMA, pa.binary()),
        (REJECTS, pa.large_string()),
        (COUNTS, pa.string()),
    ]
)
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
        spec = job.sessions
        for chunk in chunks:
            inputs = chunk.table if spec is None else annotate(chunk.table, spec)
            rows = inputs.append_column(TEXT, pa.array(chunk.texts, pa.string()))
            rejects = "".join(
                json.dumps(reject, ensure_ascii=False) + "\n" for reject in chunk.rejects
            )
            counts = json.dumps(asdict(chunk.counts), ensure_ascii=False)
            yield _chunk_row(number, chunk.index, rows, rejects, counts)


class ScoringActor:
    """A Ray actor with one `Scorer` (one ORT session), reused for every chunk it is given."""

    def __init__(
        self,
        bundle: str,
        variant: str | None,
        policy: str | None,
        threads: int,
        batch_size: int,
        route_inputs: bool = False,
    ):
        self.scorer = Scorer.from_bundle(
            bundle,
            variant=variant,
            policy_path=policy,
            intra_op_threads=threads,
            batch_size=batch_size,
        )
        self.route_inputs = route_inputs  # for session routing in the merge

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for row in batch.to_pylist():
            rows = _from_ipc(row[ROWS])
            texts = rows.column(TEXT).to_pylist()
            scores = self.scorer.score(texts, route_inputs=self.route_inputs)
            scored = attach_scores(rows.drop_columns([TEXT]), scores)
            out.append(
                _chunk_row(row[FILE_INDEX], row[CHUNK_INDEX], scored, row[REJECTS], row[COUNTS])
            )
        return pa.concat_tables(out)


def _chunk_row(file: int, chunk: int, rows: pa.Table, rejects: str, counts: str) -> pa.Table:
    schema = rows.schema.serialize().to_pybytes()
    values = [file, chunk, _to_ipc(rows), rows.num_rows, schema, rejects, counts]
    return pa.table([[value] for value in values], schema=CHUNK_SCHEMA)


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes | pa.Buffer) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


class RayRouting:
    """A `BucketRunner` (session_routing.py): each bucket routed by a Ray task of one CPU, at
    most `workers` at once (memory: one bucket each, wherever Ray places them). The tasks read
    and write the bucket files under OUTPUT.partial/sessions/ by absolute path, as the read
    tasks read the inputs: the run's files are on storage the cluster shares. A task whose
    worker died is retried by Ray (routing a bucket again writes the same file); a run that
    stops cancels the tasks still out."""

    def __init__(self, workers: int):
        self.workers = workers

    def __call__(self, tasks: list[BucketTask]) -> list[SessionStats]:
        if self.workers == 1 or len(tasks) == 1:  # as fast here, and no task to start
            return route_serially(tasks)
        route = ray.remote(num_cpus=1)(route_bucket)
        waiting, out = list(tasks), []
        in_flight: list[ray.ObjectRef] = []
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < self.workers:
                    in_flight.append(route.remote(waiting.pop(0)))
                done, in_flight = ray.wait(in_flight, num_returns=1)
                out.extend(_results(done))
        except BaseException:
            for ref in in_flight:
                with suppress(Exception):  # the error that stopped the run is the one to report
                    ray.cancel(ref, force=True)
            raise
        return out


def _results(refs: list[ray.ObjectRef]) -> list[SessionStats]:
    """The routing tasks' results; kefu's errors and write errors (a full disk) that a task
    raised are raised as the driver would have raised them routing here (the merge names the
    output in a write error): one line, with no remote traceback (Ray's `RayTaskError` holds
    one in its message). A bug stays the `RayTaskError`, its traceback kept (`ray_errors.py`)."""
    try:
        return list(ray.get(refs))
    except RayTaskError as exc:
        if isinstance(exc.cause, KefuError | OSError):
            raise exc.cause from None
        raise


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
        return (_from_ipc(raw.as_buffer()) for raw in column(ROWS))

    merge_scored(parts, schemas, scored, plan, output, router, hint=RERUN_HINT)
    concat_lines([staged / STAGED_REJECTS], plan.rejects_path, hint=RERUN_HINT)
