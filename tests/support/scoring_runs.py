"""Local scoring runs for the `kefu score` tests (no tests here): a job run in
this process with the progress bar off, and its rejects file read back; runs in which a file
changes right after the run's checks, in this process or through the CLI; and what a `kefu
score` process printed to stderr, without the lines of Ray's core."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kefu.serving.batch import ScoreJob, Summary, local_engine, run_local

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


def run_changed_after_checks(
    engine: str, job: ScoreJob, change: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> Summary:
    """Run `job` on `engine` in this process, calling `change` once the run's checks passed
    (a file that changes between the checks and the workers that read it)."""
    if engine == "ray":
        from kefu.serving.batch import ray_engine as module
    else:
        module = local_engine
    check = module.plan_run

    def plan_then_change(job: ScoreJob, engine: Any) -> Any:
        plan = check(job, engine)
        change()
        return plan

    monkeypatch.setattr(module, "plan_run", plan_then_change)
    run = local_engine.run_local if engine == "local" else module.run_ray
    return run(job, console=Console(file=io.StringIO()))


# `kefu score` in a separate process; CHANGE (statements on `job`) runs once the checks passed
CLI_CHANGED_AFTER_CHECKS = """
import sys
from pathlib import Path

from kefu.cli.main import app
from kefu.serving.batch import local_engine


def plan_then_change(job, engine):
    plan = check(job, engine)
CHANGE
    return plan


if __name__ == "__main__":  # not again in a spawned worker, which imports this module
    if sys.argv[1] == "ray":
        from kefu.serving.batch import ray_engine as engine
    else:
        engine = local_engine
    check = engine.plan_run
    engine.plan_run = plan_then_change
    app(sys.argv[2:], prog_name="kefu")
"""


def kefu_score_changed_after_checks(
    engine: str, change: str, source: Path, output: Path, bundle: Path
) -> subprocess.CompletedProcess:
    """`kefu score --engine ENGINE --workers 2` on `source`, `change` run after its checks."""
    script = CLI_CHANGED_AFTER_CHECKS.replace("CHANGE", textwrap.indent(change, "    "))
    return subprocess.run(
        [sys.executable, "-c", script, engine, "score"]
        + [str(source), "-o", str(output), "--bundle", str(bundle)]
        + ["--engine", engine, "--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
