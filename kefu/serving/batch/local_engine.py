"""The local engine: read chunks, score them in a process pool, commit them in order, merge.

Usage: `summary = run_local(ScoreJob(inputs=["logs/*.jsonl"], output=Path("out.parquet"),
bundle=Path("models/default"), workers=2))`.

Chunks are committed strictly in input order (a finished chunk waits for the ones before it),
which keeps the output in input order and makes "committed" a prefix of the chunk sequence:
the thing `--resume` needs. The processes that score and route are `worker_pools.py`'s.

Memory bound: the main process holds at most `2 x workers` chunks in flight plus the one being
read, each worker one chunk and one micro-batch, and the final merge one Parquet row group:
about (2 x workers + 1) x chunk_size rows, whatever the input size.

With sessions, the merge routes the conversations first (`session_routing.py`): its buckets
go to a `RoutingPool` of `workers` processes, started once scoring's pool has stopped, each
routing one bucket at a time (one bucket alone is routed in this process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from kefu.serving.batch.job import ScoreJob, Summary
from kefu.serving.batch.plan import RunPlan, plan_run
from kefu.serving.batch.progress import ProgressReporter
from kefu.serving.batch.readers import Chunk, count_chunks, read_chunks
from kefu.serving.batch.scoring import attach_scores
from kefu.serving.batch.session_routing import (
    SessionRouter,
)
from kefu.serving.batch.sessions import annotate
from kefu.serving.batch.staging import RESUME_HINT, RunState, Staging
from kefu.serving.batch.worker_pools import RoutingPool, ScorerPool
from kefu.serving.batch.writers import concat_lines, merge_scored
from kefu.tabular import estimate_records


def run_local(job: ScoreJob, console: Console | None = None) -> Summary:
    console = console or Console(stderr=True)
    started = time.monotonic()
    plan = plan_run(job, engine="local")
    for warning in plan.warnings():
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    staging = Staging(plan.staging_dir)
    state = staging.open(
        plan.fingerprint,
        resume=job.resume,
        fresh=job.fresh,
        input_names=[source.display_name for source in plan.inputs],
    )
    plan = plan.named_as(state.input_names)
    if state.committed_chunks:
        console.print(
            f"resuming after {state.committed_chunks} committed chunks ({state.rows_read} rows)",
            highlight=False,
        )
    rows_before, chunks_before = state.rows_read, state.committed_chunks
    if state.phase == "scoring":
        total = sum(estimate_records(source) for source in plan.inputs) if job.progress else None
        with (
            ScorerPool(job) as pool,
            ProgressReporter(total, state.rows_read, job.progress, console) as progress,
        ):
            for chunk, scores in pool.score_in_order(
                _annotated(job, _pending_chunks(job, plan, state))
            ):
                scored = attach_scores(chunk.table, scores)
                staging.commit(state, chunk.index, chunk.counts, scored, chunk.rejects)
                progress.advance(chunk.rows_read)
        state.phase = "finalising"
        staging.save(state)
    summary = state.summary()
    summary.check()
    router = SessionRouter.for_run(
        job.sessions,
        plan.policy,
        staging.directory / "sessions",
        workers=job.workers,
        runner=RoutingPool(job.workers),
    )
    finalise(staging, state, job.output, plan, router)
    if router is not None:
        for line in router.lines():
            console.print(line, highlight=False, soft_wrap=True)
    summary.files, summary.engine = len(plan.inputs), "local"
    summary.output, summary.rejects_file = str(job.output), str(plan.rejects_path)
    summary.seconds = time.monotonic() - started
    summary.rows_this_run = summary.rows_read - rows_before
    summary.resumed_from_chunk = chunks_before
    return summary


def finalise(
    staging: Staging,
    state: RunState,
    output: Path,
    plan: RunPlan,
    router: SessionRouter | None = None,
) -> None:
    """Merge the committed parts into OUTPUT and OUTPUT.rejects.jsonl; then drop the staging.

    With sessions, `router` first routes every row with its conversation's context.
    """
    parts = staging.parts(state)

    def tables() -> Iterator[pa.Table]:
        return (pq.read_table(part) for part in parts)

    schemas = (pq.read_schema(part) for part in parts)
    merge_scored(tables, schemas, state.scored, plan, output, router, hint=RESUME_HINT)
    concat_lines(staging.reject_files(state), plan.rejects_path, hint=RESUME_HINT)
    staging.remove()


def _annotated(job: ScoreJob, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Chunks with their session and order keys (`sessions.annotate`) when sessions are on."""
    spec = job.sessions
    for chunk in chunks:
        if spec is not None:
            chunk.table = annotate(chunk.table, spec)
        yield chunk


def _pending_chunks(job: ScoreJob, plan: RunPlan, state: RunState) -> Iterator[Chunk]:
    """Chunks not yet committed; whole files already committed are skipped without reading."""
    first_index = 0
    for number, source in enumerate(plan.inputs):
        known = state.file_chunks[number] if number < len(state.file_chunks) else None
        if known is not None and first_index + known <= state.committed_chunks:
            first_index += known
            continue
        skip = max(0, state.committed_chunks - first_index)
        count = skip
        for chunk in read_chunks(
            source,
            text_col=job.text_col,
            id_col=job.id_col,
            chunk_size=job.chunk_size,
            options=plan.read_options,
            first_index=first_index,
            skip=skip,
            max_text_chars=job.max_text_chars,
        ):
            count += 1
            yield chunk
        if known is None:
            if skip and count == skip:  # every chunk was skipped, so none was counted: count them
                count = count_chunks(source, job.chunk_size, plan.read_options)
            state.file_chunks.append(count)  # saved with the next commit
        first_index += count
