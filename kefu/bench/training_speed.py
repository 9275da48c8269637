"""Training speed: seconds per 1,000 training examples with the default config.

Times the real training loop (`kefu.training.loop.fit`: length-bucketed batches, forward, loss,
backward, gradient clipping, AdamW and schedule steps) for a few steps on a seeded slice of the
training split, after a one-step warm-up. The slice is exactly `steps * batch_size` rows so
every step is a full batch; the dev set is a handful of rows, so the one evaluation `fit` runs
at its end costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kefu.bench.reference import build_encoder
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.taxonomy import HEADS, load_taxonomy
from kefu.serving.tokenization import TextEncoder
from kefu.training.config import TrainConfig, load_config
from kefu.training.data.loader import LabelledData, load_labelled
from kefu.training.loop import fit
from kefu.training.model import MultiHeadClassifier, MultiHeadLoss
from kefu.training.sampling import encode_split

DEFAULT_CONFIG = Path(__file__).parents[1] / "training" / "configs" / "default.yaml"
DEV_ROWS = 8


def bench_training(
    bundle_dir: Path,
    fallback_data: LabelledData,
    *,
    steps: int = 8,
    threads: int = 1,
    max_seconds: float = 120.0,
    config_path: Path = DEFAULT_CONFIG,
) -> dict[str, Any]:
    """{"seconds_per_1000": s, "steps", "batch_size", "examples", ...} for the default config."""
    config = load_config(config_path) if config_path.is_file() else TrainConfig()
    bundle = read_bundle(bundle_dir)
    data, data_source = training_data(config, fallback_data)
    rng = np.random.default_rng(config.seed)
    picks = rng.integers(0, len(data.rows), size=steps * config.batch_size + DEV_ROWS)
    rows = [data.rows[int(i)] for i in picks]
    encoder = TextEncoder.from_file(bundle.tokenizer_path, config.max_length)
    taxonomy = load_taxonomy()
    train_rows, dev_rows = rows[DEV_ROWS:], rows[:DEV_ROWS]
    train_set = encode_split(
        [r.text for r in train_rows], [r.labels for r in train_rows], encoder, taxonomy
    )
    dev_set = encode_split(
        [r.text for r in dev_rows], [r.labels for r in dev_rows], encoder, taxonomy
    )

    torch.manual_seed(config.seed)
    torch.set_num_threads(threads)
    base_encoder, weights = build_encoder(bundle)
    head_sizes = {head: len(bundle.labels[head]) for head in HEADS}
    model = MultiHeadClassifier(base_encoder, head_sizes, config.dropout)
    loss_fn = MultiHeadLoss(config.loss_weights, None, config.label_smoothing)

    def run(max_steps: int) -> Any:
        timed = dataclasses.replace(
            config, epochs=1, max_steps=max_steps, eval_every=0, patience=0,
            time_budget_minutes=max_seconds / 60,
        )  # fmt: skip
        return fit(model, train_set, dev_set, timed, encoder.pad_id, loss_fn, lambda _: None, False)

    run(1)  # warm-up: first-call allocations and thread start-up are not training speed
    started = time.perf_counter()
    history = run(steps)
    seconds = time.perf_counter() - started
    examples = history.steps * config.batch_size
    per_1000 = 1000 * seconds / examples
    return {
        "seconds_per_1000": per_1000,
        "examples": examples,
        "steps": history.steps,
        "batch_size": config.batch_size,
        "seconds": seconds,
        "mean_tokens": float(train_set.lengths.mean()),
        "max_length": config.max_length,
        "threads": threads,
        "weights": weights,
        "config": str(config_path) if config_path.is_file() else "TrainConfig defaults",
        "data": data_source,
        "epoch_seconds_estimate": per_1000 * len(data.rows) / 1000,
        "epoch_rows": len(data.rows),
    }


def training_data(config: TrainConfig, fallback: LabelledData) -> tuple[LabelledData, str]:
    """The config's training split when it exists (relative to the working directory), else the workload."""
    path = Path(config.train_data[0])
    if path.is_file():
        data = load_labelled(path)
        if data.rows:
            return data, str(path)
    return fallback, fallback.source
