"""Fixtures of the conversation scoring tests (`kefu score --session-col`): a bundle unsure
enough that every conversation rule fires, a policy without the content rules, a shuffled chat
log, and one local Ray instance per module for the Ray runs."""

from __future__ import annotations

import random

import pytest
from support.chat_logs import write_csv, write_jsonl
from support.conversations import content_rules_off, conversations, unsure_bundle


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return unsure_bundle(tiny_bundle, tmp_path_factory.mktemp("unsure") / "bundle")


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return content_rules_off(tmp_path_factory.mktemp("policy") / "policy.yaml")


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    """The conversations shuffled (sessions interleaved, turns out of order) over two files."""
    rows = conversations()
    random.Random(5).shuffle(rows)
    folder = tmp_path_factory.mktemp("chats")
    half = len(rows) // 2
    csv_rows = [{**row, "turn": str(row["turn"])} for row in rows[:half]]
    return rows, [
        write_csv(csv_rows, folder / "a.csv"),
        write_jsonl(rows[half:], folder / "b.jsonl"),
    ]


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for this module's Ray runs (each would otherwise start its own,
    seconds each); `run_ray` joins it and leaves it running."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from kefu.serving.batch.ray_cluster import quiet_console, start_ray

    with quiet_console():
        started = start_ray(workers=2)
    yield
    if started:
        ray.shutdown()
