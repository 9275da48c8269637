"""`benchmarks/README.md`: the latest full run's table and the machine it came from.

Rewritten by every full `kefu bench` run (a `--quick` run leaves it alone unless asked), so
the committed file always matches one results file, which it links.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kefu.bench.table import markdown_table

INTRO = """\
# kefu benchmarks

`make bench` (or `kefu bench --bundle DIR [--quick]`) measures kefu on the machine it runs on:
raw ONNX Runtime (the floor), a Hugging Face `transformers` PyTorch pipeline (the reference), the
real HTTP server under load, batch scoring, training speed, INT8 accuracy cost and compute
efficiency. Numbers from different machines do not compare; the ratios within one run mostly do.
Every run writes `benchmarks/results/<date>[-quick][-partial].json` (`-partial`: parts skipped
or failed); this file shows the latest full run.
"""

NOTES = """\
How to read it:
- raw ORT: the `session.run` call and tokenisation timed separately; batches of messages of
  similar length (as the server's micro-batcher and `kefu score` form them), {threads} ORT threads.
- PyTorch pipeline: a `transformers.Pipeline` subclass (kefu's text normalisation, base model
  tokenizer, padded batches, eager forward, {threads} torch threads), same batches.
  Weights: {torch_weights}.
- HTTP server: `kefu serve` (1 worker unless said) on 127.0.0.1; the load generator is a
  separate process on the same cores (it competes with the server for CPU, so it is a bare
  asyncio socket client that pre-encodes its requests: about 0.1 ms of CPU per request, against
  about 1.5 ms for an HTTP client library). "c=N" levels send single-message requests, "8-message
  requests" levels 8 messages per request; "GET /healthz" is the same load on an endpoint that
  does nothing, the floor of uvicorn, FastAPI and kefu's middleware. Server CPU is the whole
  process tree (event loop, inference thread, ORT threads, log thread, every worker) divided by
  the requests served; in the JSON, `parts.server.variants.<variant>.c32.server_cpu_ms_per_request`
  (and `server_cpu_ms_per_message`, `client_cpu_ms_per_request`, per level).
- batch scoring: `kefu score` with its defaults, wall clock from launch to exit (start-up and
  model load included); peak memory is summed PSS over the process tree.
- training: the real loop (`kefu.training.loop.fit`) for {train_steps} steps of the default config.
- accuracy: top-1 label per head through `Classifier`, no abstention, seed test split.
- compute: FLOPs from the architecture on real tokens; peak from a timed float32 numpy matmul.
- ratios: below 1.00x in "ours / PyTorch" means kefu is faster; server and batch ratios show how
  much of the raw model speed survives the surrounding code. Each ratio divides numbers taken
  under the same load: ORT timed in turns with the pipeline; server and batch scoring against a
  short raw ORT run just before them ("raw ORT just before", in the JSON for batch scoring);
  "best batch" there is the faster of batch 8 and batch 32 on batches of near-equal token
  length, a floor the server, which batches whatever arrives together, cannot reach exactly.
  The server p50 (c=1) and 8-message (c=32) ratios are the median of {rounds} rounds in which
  raw ORT and the server take turns a few seconds each (on this shared machine absolute times
  move by half between minutes); the rows below them give the same ratios from the long levels
  and the raw run before them. In the JSON: `ratios.server_p50_over_raw_b1`,
  `ratios.server_c32_over_raw_best`, `ratios.server_c32_batch8_over_raw_best`,
  `ratios.server_c32_workers2_over_workers1`, `ratios.single_shot`, and every round in
  `parts.server.variants.<variant>.interleaved`.
- batch scoring can beat raw ORT (above 1.00x): `kefu score` runs one single-threaded ORT
  session per core, which on these short messages uses the cores better than one session with
  {threads} intra-op threads.
- raw ORT runs each batch in one `session.run`; kefu (server, batch scoring, accuracy) runs the
  INT8 graph one message per `session.run`, because rows of one run share its dynamic
  activation scales and a message's answer would depend on its neighbours
  (`kefu/serving/bundle/schema.py`, `ROW_BY_ROW_VARIANTS`). On the groups the server cuts (close
  lengths, still padded) that costs no more per message than one run per group.
- INT8's achieved GFLOP/s is integer work measured against a float32 peak, so it can pass 100%.
"""


def shown_path(path: str) -> str:
    """A path relative to the working directory when it lies inside it (no machine prefix)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def busy_note(machine: dict[str, Any]) -> str:
    """Whether other work shared the CPU. Only the load at the start tells: by the end the
    one-minute average holds the bench's own server and load generator, busy on every core."""
    if (machine.get("load_avg_1m_at_start") or 0) <= machine["cores"]:
        return " (the end figure is the bench's own load)"
    return " (above the core count at the start: other work shared the CPU, absolute numbers are pessimistic)"


PROFILE_FILE = "server_profile.md"  # beside the README: kept across runs, written by hand


def profile_section(readme_path: Path) -> str:
    """The server profile (`python -m kefu.bench.server_profile`), when one was recorded."""
    try:
        return (readme_path.parent / PROFILE_FILE).read_text(encoding="utf-8").rstrip() + "\n"
    except OSError:
        return ""


def render_readme(results: dict[str, Any], results_path: Path, readme_path: Path) -> str:
    machine = results["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    bundle = results["bundle"]
    workload = results["workload"]
    parts = results["parts"]
    link = os.path.relpath(results_path, readme_path.parent)
    lines = [
        INTRO,
        "## Latest run",
        "",
        f"- date: {results['date']}{' (quick mode: tiny sizes, not representative)' if results['quick'] else ''}"
        f"{'; partial: ' + ', '.join(results['skipped']) + ' skipped' if results.get('skipped') else ''}; "
        f"total {results['total_seconds'] / 60:.1f} min; results: [{link}]({link})",
        f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"{machine['os']}; load average {machine['load_avg_1m_at_start']} at start, "
        f"{machine.get('load_avg_1m_at_end', '?')} at end{busy_note(machine)}",
        f"- versions: {versions}",
        f"- bundle: `{bundle['model_version']}` (base {bundle['base_model']}, default variant "
        f"{bundle['default_variant']}, max_length {bundle['max_length']})",
        f"- messages: {shown_path(workload['source'])} ({workload['rows']} texts, mean {workload['mean_chars']:.0f} "
        f"characters / {workload['mean_tokens']:.0f} tokens, p95 {workload['p95_tokens']:.0f} tokens)",
        "",
        markdown_table(results),
        NOTES.format(
            threads=results["threads"],
            torch_weights=parts.get("torch", {}).get("weights", "n/a"),
            train_steps=parts.get("training", {}).get("steps", "n/a"),
            rounds=results.get("plan", {}).get("server_interleaved_rounds", "n/a"),
        ),
        profile_section(readme_path),
    ]
    return "\n".join(lines)


def write_readme(results: dict[str, Any], results_path: Path, readme_path: Path) -> Path:
    readme_path.parent.mkdir(parents=True, exist_ok=True)
    readme_path.write_text(render_readme(results, results_path, readme_path), encoding="utf-8")
    return readme_path
