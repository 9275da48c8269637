"""Route every scored row with its conversation's context, after scoring, in bounded memory.

Scoring commits chunks in input order with context-free routes (the local engine's committed
parts, the Ray engine's staged chunks: the one router serves both, in `writers.merge_scored`).
Before the merge writes the output, `SessionRouter.routed(parts)` re-routes every row with the
context a server caller would send, in three passes over the committed parts:

1. partition: the few columns routing reads (labels, confidences, abstentions, the intent
   candidates, whether the text asks for a person, session and order keys) go to
   `bucket_count(rows, workers)` bucket files by a hash of the session key, so a session's
   rows share a bucket wherever they were in the input;
2. route: each bucket on its own (`bucket_routing.route_bucket`, given a `BucketTask`: each
   session walked in order with the context a server caller would send). Buckets share no
   session, so they are routed in any order, at once: the router's `runner` routes them one
   after another in this process (`route_serially`), in worker processes (the local engine's
   `RoutingPool`) or as Ray tasks (the Ray engine's `RayRouting`), and every runner writes the
   same decisions;
3. merge: the parts are read again in order and their route columns replaced by the stored
   decisions, taken from every bucket up to the part's last row.

Memory: one bucket (at most about BUCKET_ROWS rows of a few columns) per process routing one;
in this process one part, PENDING_ROWS rows while partitioning and about MERGE_ROWS decisions
while merging, however many buckets. With `workers` > 1 there are at least `workers` buckets once
each keeps MIN_SPLIT_ROWS rows, and a multiple of `workers`, so the workers finish together.
The number of buckets changes no decision. The passes are deterministic, so an interrupted
merge simply runs them again.
"""

from __future__ import annotations

import math
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kefu.serving.batch.bucket_routing import (
    DECIDED_SCHEMA,
    INPUTS,
    ROUTED,
    ROW,
    SESSION_OUTPUT,
    WRITE_ROWS,
    BucketRunner,
    BucketTask,
    SessionStats,
    route_serially,
)
from kefu.serving.batch.scoring import SCORE_SCHEMA
from kefu.serving.batch.sessions import SESSION_KEY, SessionSpec
from kefu.serving.routing_policy import RoutingPolicy

# Rows one process routes at once: about 20 MB of Arrow data; a worker process routing one
# peaks near 300 MB, more than half of it the interpreter with pyarrow and kefu loaded.
BUCKET_ROWS = 50_000
# Fewest rows per bucket worth a bucket of their own for another worker: routing 20,000 rows
# takes about a second, a worker process a fraction of one to start.
MIN_SPLIT_ROWS = 20_000
PENDING_ROWS = 65_536  # rows the partition buffers in all (every bucket written beyond)
MERGE_ROWS = 65_536  # decisions the merge reads ahead from all buckets together, at most


def bucket_count(rows: int, workers: int = 1) -> int:
    """Buckets of at most BUCKET_ROWS rows; with several workers, at least one each when every
    bucket keeps MIN_SPLIT_ROWS rows, and a multiple of `workers` (equal shares of the rows)."""
    buckets = max(1, math.ceil(rows / BUCKET_ROWS))
    if workers > 1:
        buckets = max(buckets, min(workers, rows // MIN_SPLIT_ROWS))
        if buckets >= workers:
            buckets = math.ceil(buckets / workers) * workers
    return buckets


class SessionRouter:
    """Routes a run's rows with their conversations' context (see the module's docstring).

    `workers`: how many buckets `runner` routes at once (it decides the number of buckets);
    `runner`: how the buckets are routed, `route_serially` when None."""

    def __init__(
        self,
        spec: SessionSpec,
        policy: RoutingPolicy,
        workdir: Path,
        workers: int = 1,
        runner: BucketRunner | None = None,
    ):
        self.spec, self.policy, self.workdir = spec, policy, workdir
        self.workers, self.runner = workers, runner or route_serially
        self.stats = SessionStats()

    @classmethod
    def for_run(
        cls,
        spec: SessionSpec | None,
        policy: RoutingPolicy | None,
        workdir: Path,
        workers: int = 1,
        runner: BucketRunner | None = None,
    ) -> SessionRouter | None:
        """The router of a run with session options (either engine); None without them, or
        without a policy to decide with."""
        if spec is None or policy is None:
            return None
        return cls(spec, policy, workdir, workers, runner)

    def lines(self) -> list[str]:
        """The summary lines of the last `routed` run."""
        return self.stats.lines(self.spec)

    def routed(self, parts: Callable[[], Iterable[pa.Table]], rows: int) -> Iterator[pa.Table]:
        """The parts (`parts()` is called twice) with session-aware routes, hidden columns kept
        for the caller's schema to drop."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self.stats = SessionStats()
        buckets = bucket_count(rows, self.workers)
        self._partition(parts(), buckets)
        self._route(buckets)
        batch = max(256, MERGE_ROWS // buckets)
        cursors = [_Cursor(self._path("decided", b), batch) for b in range(buckets)]
        first = 0
        for part in parts():
            last = first + part.num_rows
            decided = pa.concat_tables([cursor.take_below(last) for cursor in cursors])
            decided = decided.sort_by(ROW)
            if decided.column(ROW).to_pylist() != list(range(first, last)):
                raise RuntimeError(f"session routing lost rows {first}..{last - 1}")
            for name in (*ROUTED, *SESSION_OUTPUT):
                index = part.schema.get_field_index(name)
                part = part.set_column(index, SCORE_SCHEMA.field(name), decided.column(name))
            first = last
            yield part
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _path(self, kind: str, bucket: int) -> Path:
        return self.workdir / f"{kind}-{bucket:05d}.parquet"

    def _route(self, buckets: int) -> None:
        """Every bucket's keys -> its decisions (one runner call), then the keys are dropped.

        The keys stay until the runner is done, so a task that a runner retries (Ray, after a
        worker died) finds them."""
        tasks = self._tasks(buckets)
        for stats in self.runner(tasks) if tasks else []:
            self.stats.add(stats)
        for task in tasks:
            Path(task.keys).unlink()

    def _tasks(self, buckets: int) -> list[BucketTask]:
        """A task per bucket that got rows (one that got none has no keys file)."""
        return [
            BucketTask(
                str(self._path("keys", bucket).absolute()),
                str(self._path("decided", bucket).absolute()),
                self.spec,
                self.policy,
            )
            for bucket in range(buckets)
            if self._path("keys", bucket).exists()
        ]

    def _partition(self, parts: Iterable[pa.Table], buckets: int) -> None:
        writers: dict[int, pq.ParquetWriter] = {}
        pending: dict[int, list[pa.Table]] = {}
        first = 0
        for part in parts:
            keys = part.select(INPUTS).append_column(
                ROW, pa.array(np.arange(first, first + part.num_rows, dtype=np.int64))
            )
            assigned = (
                np.array(
                    [
                        zlib.crc32(session.encode()) if session is not None else first + i
                        for i, session in enumerate(keys.column(SESSION_KEY).to_pylist())
                    ],
                    dtype=np.int64,
                )
                % buckets
            )
            first += part.num_rows
            for bucket in np.unique(assigned).tolist():
                pending.setdefault(bucket, []).append(keys.take(np.nonzero(assigned == bucket)[0]))
                if sum(table.num_rows for table in pending[bucket]) >= WRITE_ROWS:
                    self._write(writers, bucket, pending.pop(bucket))
            if sum(table.num_rows for tables in pending.values() for table in tables) >= (
                PENDING_ROWS
            ):  # many buckets, each short of WRITE_ROWS
                for bucket, tables in pending.items():
                    self._write(writers, bucket, tables)
                pending.clear()
        for bucket, tables in pending.items():
            self._write(writers, bucket, tables)
        for writer in writers.values():
            writer.close()

    def _write(self, writers: dict[int, pq.ParquetWriter], bucket: int, tables: list) -> None:
        table = pa.concat_tables(tables)
        if bucket not in writers:
            writers[bucket] = pq.ParquetWriter(self._path("keys", bucket), table.schema)
        writers[bucket].write_table(table)


class _Cursor:
    """Reads one bucket's decisions (sorted by row) forward, `batch` rows at a time."""

    def __init__(self, path: Path, batch: int = WRITE_ROWS):
        self.batches = (
            iter(pq.ParquetFile(path).iter_batches(batch_size=batch)) if path.exists() else iter(())
        )
        self.buffer = DECIDED_SCHEMA.empty_table()

    def take_below(self, end: int) -> pa.Table:
        """Every remaining decision of a row before `end`."""
        while self.buffer.num_rows == 0 or self.buffer.column(ROW)[-1].as_py() < end:
            batch = next(self.batches, None)
            if batch is None:
                break
            self.buffer = pa.concat_tables([self.buffer, pa.Table.from_batches([batch])])
        rows = self.buffer.column(ROW).to_numpy()
        cut = int(np.searchsorted(rows, end))
        taken, self.buffer = self.buffer.slice(0, cut), self.buffer.slice(cut)
        return taken
