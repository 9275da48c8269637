"""One text limit for the server and batch scoring: a 30,000-character message is rejected by
both (it used to be scored, truncated, by `kefu score` and refused with 422 by the server)."""

import json
import os
import subprocess
import sys

from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.server.app import create_app

LONG = "我的快递三天没动了" * 3334  # 30,006 characters


def kefu_score(tmp_path, bundle, source, *options, env=None):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kefu.cli.main",
            "score",
            str(source),
            "-o",
            str(tmp_path / "out.jsonl"),
        ]
        + ["--bundle", str(bundle), "--id-col", "id", "--workers", "1", "--no-progress", *options],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def rejects(tmp_path):
    path = tmp_path / "out.jsonl.rejects.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_server_and_batch_both_reject_a_text_over_the_limit(tmp_path, tiny_bundle):
    source = tmp_path / "in.jsonl"
    rows = [{"id": "long", "text": LONG}, {"id": "short", "text": "在吗"}]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    done = kefu_score(tmp_path, tiny_bundle, source, "--max-reject-rate", "1")
    assert done.returncode == 0, done.stderr
    assert rejects(tmp_path) == [
        {
            "file": str(source),
            "line": 1,
            "end_line": 1,
            "id": "long",
            "column": "text",
            "reason": "text_too_long",
            "detail": "text has 30006 characters; the limit is 20000",
        }
    ]
    with TestClient(create_app(isolated_settings(tiny_bundle))) as client:
        response = client.post("/v1/classify", json={"text": LONG})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "text_too_long")


def test_one_setting_moves_both_limits(tmp_path, tiny_bundle):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "在吗在吗在吗"}) + "\n", "utf-8")
    done = kefu_score(tmp_path, tiny_bundle, source, env={"KEFU_MAX_TEXT_CHARS": "5"})
    assert done.returncode == 1  # its only row rejected: the run fails, after the rejects
    assert "no usable rows (1 read, all rejected)" in done.stderr
    assert [r["reason"] for r in rejects(tmp_path)] == ["text_too_long"]
    settings = isolated_settings(tiny_bundle, max_text_chars=5)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/classify", json={"text": "在吗在吗在吗"})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "text_too_long")


def test_a_server_with_a_higher_limit_scores_what_it_accepts(tiny_bundle):
    """The model behind the server refuses texts over the server's own limit, not over the
    Python default: a text the request check let through is answered."""
    settings = isolated_settings(tiny_bundle, max_text_chars=len(LONG))
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/classify", json={"text": LONG})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["truncated"] is True
