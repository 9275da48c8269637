"""A kefu chunk as one Ray Data row: read by `ChunkDatasource`, scored by `ScoringActor`.

Why one Ray row per chunk: Ray merges small blocks and splits large ones by rows as it sees fit.
A chunk travels as one row holding its rows in Arrow IPC form, so Ray can bundle and balance
chunks across actors freely but never cut one; each actor scores whole chunks with the same
micro-batches as the local engine, so the confidences are bit-identical, not merely close.
`ray_engine.py` builds the pipeline from these and takes the scored rows back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from kefu.errors import ConfigError
from kefu.serving.batch.job import ScoreJob
from kefu.serving.batch.ray_cluster import RAY_EXTRA_MISSING
from kefu.serving.batch.ray_errors import ray_run_failed
from kefu.serving.batch.readers import read_chunks
from kefu.serving.batch.scoring import Scorer, attach_scores
from kefu.serving.batch.sessions import annotate
from kefu.tabular import ReadOptions, TableFile

try:
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata
except ImportError:  # pragma: no cover - the ray extra is installed in CI
    raise ConfigError(RAY_EXTRA_MISSING) from None

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
        """The file's chunk rows. A read the system refuses (the file deleted or replaced after
        the run's checks) arrives as the reader's `DataError` naming the file, which reaches
        the driver intact; a bare OSError raised here would not: Ray Data writes its retry
        advice over its file name, as it does for the scoring actor's (`ray_run_failed`)."""
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
            yield chunk_row(number, chunk.index, rows, rejects, counts)


class ScoringActor:
    """A Ray actor with one `Scorer` (one ORT session), reused for every chunk it is given.

    A model that cannot be loaded on the actor's node (the bundle changed since the driver
    checked it, or is not the same there; a file unreadable) is kept and raised for every
    chunk: raised by `__init__`, it would reach the driver as Ray's `ActorDiedError`, whose
    text alone holds it, while a chunk's error arrives as it was raised (`ray_errors.py`), so
    the run ends as the local engine's does for the same cause.
    """

    def __init__(
        self,
        bundle: str,
        variant: str | None,
        policy: str | None,
        threads: int,
        batch_size: int,
        route_inputs: bool = False,
    ):
        self.scorer: Scorer | None = None
        self.setup_error: Exception | None = None
        try:
            self.scorer = Scorer.from_bundle(
                bundle,
                variant=variant,
                policy_path=policy,
                intra_op_threads=threads,
                batch_size=batch_size,
            )
        except Exception as exc:
            self.setup_error = exc
        self.route_inputs = route_inputs  # for session routing in the merge

    def __call__(self, batch: pa.Table) -> pa.Table:
        try:
            return self._score(batch)
        except OSError as exc:  # its file named here: on its way to the driver Ray loses it
            raise ray_run_failed(exc) from None

    def _score(self, batch: pa.Table) -> pa.Table:
        if self.setup_error is not None:
            raise self.setup_error
        assert self.scorer is not None
        out = []
        for row in batch.to_pylist():
            rows = from_ipc(row[ROWS])
            texts = rows.column(TEXT).to_pylist()
            scores = self.scorer.score(texts, route_inputs=self.route_inputs)
            scored = attach_scores(rows.drop_columns([TEXT]), scores)
            out.append(
                chunk_row(row[FILE_INDEX], row[CHUNK_INDEX], scored, row[REJECTS], row[COUNTS])
            )
        return pa.concat_tables(out)


def chunk_row(file: int, chunk: int, rows: pa.Table, rejects: str, counts: str) -> pa.Table:
    schema = rows.schema.serialize().to_pybytes()
    values = [file, chunk, to_ipc(rows), rows.num_rows, schema, rejects, counts]
    return pa.table([[value] for value in values], schema=CHUNK_SCHEMA)


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes | pa.Buffer) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()
