"""Batch scoring of historical chat logs: `kefu score INPUT... -o OUTPUT --bundle DIR`.

Usage: `run_local(ScoreJob(inputs=["logs/*.csv"], output=Path("scored.parquet"), bundle=...))`.

The batch path holds no model logic: every row goes through `Classifier.predict` and
`routing.decide`, exactly as the HTTP route does. What lives here is the plumbing around them:
chunks cut by `kefu.tabular`'s streaming reader, chunked and resumable commits, a process pool,
a progress bar and the final merge into one output file plus `OUTPUT.rejects.jsonl`.
`ray_engine.py` runs the same readers, the same `Scorer` and the same merge (with
`--session-col`, the same conversation routing) on Ray Data.
"""

from kefu.serving.batch.job import ScoreJob, Summary
from kefu.serving.batch.local_engine import run_local

__all__ = ["ScoreJob", "Summary", "run_local"]
