"""Learnable labelled rows and a tiny training config for the training tests."""

import json
from pathlib import Path

from kefu.training.config import TrainConfig, build_config


def labelled_rows(taxonomy, copies: int, prefix: str) -> list[dict]:
    """Rows whose text names the intent: learnable in a few steps, every label present."""
    rows = []
    urgency, emotion = taxonomy.labels("urgency"), taxonomy.labels("emotion")
    for i, intent in enumerate(taxonomy.intents):
        for copy in range(copies):
            rows.append(
                {
                    "id": f"{prefix}{i}-{copy}",
                    "text": f"{'在吗，' * copy}{intent.name}{'！' * (i % 3)}",
                    "intent": intent.id,
                    "urgency": urgency[i % len(urgency)],
                    "emotion": emotion[(i + copy) % len(emotion)] if copy else None,
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def tiny_config(data_dir: Path, base_dir: Path | str, **changes) -> TrainConfig:
    values = {
        "train_data": str(data_dir / "train.jsonl"),
        "dev_data": str(data_dir / "dev.jsonl"),
        "base_model": str(base_dir),
        "epochs": 2,
        "batch_size": 16,
        "eval_every": 5,
        "head_lr": 3e-3,
        "lr": 1e-3,
        "threads": 1,
        "max_length": 32,
        "freeze_embeddings": False,  # random tiny embeddings must learn too
        **changes,
    }
    return build_config(values)
