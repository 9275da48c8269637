"""Scoring runs for the conversation tests (helpers only, no tests here): a real `kefu score`
process, `run_local` in this process, and the output read back by message id.

ROUTE names the output columns that make up a route, the ones compared between runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from kefu.serving.batch import ScoreJob, run_local

ROUTE = ("queue", "priority", "action", "escalate", "reasons", "candidates")


def kefu_score(inputs: list[Path], output: Path, bundle: Path, *options: str) -> str:
    command = [sys.executable, "-m", "kefu.cli.main", "score", *map(str, inputs), "-o", str(output)]
    command += ["--bundle", str(bundle), "--chunk-size", "4", "--workers", "2", "--no-progress"]
    done = subprocess.run(
        [*command, *options], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def by_id(path: Path) -> dict[str, dict]:
    return {row["msg_id"]: row for row in pq.read_table(path).to_pylist()}


def score_here(source: Path, output: Path, bundle: Path, **options):
    """`run_local` in this process on one real file, in chunks of 4 rows; its summary."""
    job = ScoreJob(
        inputs=[str(source)], output=output, bundle=bundle, chunk_size=4, progress=False, **options
    )
    return run_local(job)
