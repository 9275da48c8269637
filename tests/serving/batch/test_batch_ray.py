"""`--engine ray` on a small local Ray instance: same rows, rejects and bit-identical scores."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, expected_bad, write_csv, write_jsonl

from kefu.serving.batch import ScoreJob, run_local

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.mark.ray
def test_ray_engine_matches_the_local_engine(tmp_path, tiny_bundle):
    from kefu.serving.batch.ray_engine import run_ray

    rows = chat_log(2_400, seed=3)
    inputs = [
        str(write_jsonl(rows[:1_500], tmp_path / "a.jsonl", extra_lines=[b"{broken"])),
        str(write_csv(rows[1_500:], tmp_path / "b.csv")),
    ]
    options = {"bundle": tiny_bundle, "id_col": "msg_id", "chunk_size": 150, "progress": False}
    local = run_local(ScoreJob(inputs=inputs, output=tmp_path / "local.parquet", **options))
    # workers=2: two scoring actors; the local Ray instance gets 2 + 1 logical CPUs
    remote = run_ray(ScoreJob(inputs=inputs, output=tmp_path / "ray.parquet", workers=2, **options))
    assert not ray.is_initialized()  # the engine shut down the instance it started

    assert (remote.rows_read, remote.scored, remote.rejected) == (
        local.rows_read,
        local.scored,
        local.rejected,
    )
    # JSONL: 5 bad kinds per 50 rows + the broken line; CSV holds text, so a number or null
    # arrives as "12345" or "": 4 bad rows per 50
    assert remote.rows_read == 2_401 and remote.rejected == expected_bad(1_500) + 1 + 4 * 900 // 50
    expected = pq.read_table(tmp_path / "local.parquet")
    assert pq.read_table(tmp_path / "ray.parquet").equals(
        expected
    )  # schema, order, bit-identical scores
    local_rejects = (tmp_path / "local.parquet.rejects.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "ray.parquet.rejects.jsonl").read_text(encoding="utf-8") == local_rejects
    assert not (tmp_path / "ray.parquet.partial").exists()
