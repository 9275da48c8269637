"""Local scoring runs for the `kefu score` tests (no tests here): a job run in
this process with the progress bar off, and its rejects file read back; and what a `kefu score`
process printed to stderr, without the lines of Ray's core."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kefu.serving.batch import ScoreJob, Summary, run_local

# Ray's C++ core writes its own lines to file descriptor 2 ("[2026-... E ...] core_worker.cc")
CORE_LINE = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,]+ [A-Z] \d+ \d+\] ")


def kefu_lines(stderr: str) -> list[str]:
    """The lines kefu printed (Ray's core prints into the same stream, where it will)."""
    return [line for line in stderr.strip().splitlines() if not CORE_LINE.match(line)]


def score(
    tmp_path: Path, bundle: Path, inputs: list[Path | str], output: str, **options: Any
) -> Summary:
    job = ScoreJob(
        inputs=[str(p) for p in inputs],
        output=tmp_path / output,
        bundle=bundle,
        progress=False,
        **options,
    )
    return run_local(job)


def read_rejects(output: Path) -> list[dict]:
    return [
        json.loads(line)
        for line in Path(f"{output}.rejects.jsonl").read_text(encoding="utf-8").splitlines()
    ]
