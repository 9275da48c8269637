"""Local scoring runs for the `kefu score` tests (no tests here): a job run in
this process with the progress bar off, and its rejects file read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kefu.serving.batch import ScoreJob, Summary, run_local


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
