"""Training and dev rows from the configured files: `load_splits(config, taxonomy, log)`.

Several training files are mixed by their `train_weights` (each row carries its file's weight,
which the batch sampler turns into draws per epoch); without dev files, dev is held out by a
hash of the normalised text so that copies of one message never land on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.serving.bundle.schema import sha256_file
from kefu.serving.taxonomy import Taxonomy
from kefu.serving.tokenization import normalize_text
from kefu.training.config import TrainConfig
from kefu.training.data.loader import LabelledRow, load_labelled, validate_command


def load_splits(
    config: TrainConfig, taxonomy: Taxonomy, log: Callable[[str], None]
) -> tuple[list[LabelledRow], list[float], list[LabelledRow], str]:
    """Train rows with their draw weights, dev rows, and the data hash (sha256 over the files).

    Without dev files, dev is `dev_fraction` of train chosen by a hash of the normalised text,
    so that copies of one message never land on both sides.
    """
    columns: dict[str, Any] = {
        "text_col": config.text_column,
        "intent_col": config.intent_column,
        "urgency_col": config.urgency_column,
        "emotion_col": config.emotion_column,
        "id_col": config.id_column,
    }
    train_files = [Path(path) for path in config.train_data]
    dev_files = [Path(path) for path in config.dev_data]
    file_weights = config.train_weights or [1.0] * len(train_files)
    train_rows: list[LabelledRow] = []
    weights: list[float] = []
    dev_rows: list[LabelledRow] = []
    no_intent_column: list[str] = []  # a note per training file without the intent column
    for path, weight in [
        *zip(train_files, file_weights, strict=True),
        *((p, 0.0) for p in dev_files),
    ]:
        data = load_labelled(
            path,
            taxonomy=taxonomy,
            encoding=config.data_encoding or None,
            max_record_lines=config.max_record_lines,
            **columns,
        )
        if data.rejects:
            shown = "; ".join(reject.describe() for reject in data.rejects[:3])
            log(
                f"warning: {len(data.rejects)} rows of {data.source} rejected and not used "
                f"({shown}); `{validate_command(data.source, columns)} --rejects FILE` lists "
                "them all"
            )
        if not data.rows:
            raise DataError("no usable rows", file=str(path))
        notes = data.missing_column_notes("--set {head}_column=NAME")
        if "intent" in data.missing_columns and weight > 0:
            no_intent_column.append(notes[0])
        for note in notes:
            log(f"warning: {note}")
        if path in dev_files and weight == 0.0:
            dev_rows += data.rows
        else:
            train_rows += data.rows
            weights += [weight] * len(data.rows)
    if len(no_intent_column) == len(train_files):
        # routing is keyed on the intent, so it must be trained (head_plan.untrained_heads); say
        # which column was looked for, not only that no row had an intent
        raise DataError(f"{no_intent_column[0]} (the intent head must be trained)")
    if not dev_files:
        # version 1 of the normalisation, so that a new rule does not move rows between splits
        in_dev = [
            _hash_fraction(normalize_text(row.text, version=1)) < config.dev_fraction
            for row in train_rows
        ]
        dev_rows = [row for row, dev in zip(train_rows, in_dev, strict=True) if dev]
        weights = [w for w, dev in zip(weights, in_dev, strict=True) if not dev]
        train_rows = [row for row, dev in zip(train_rows, in_dev, strict=True) if not dev]
    for name, rows in (("train", train_rows), ("dev", dev_rows)):
        if not rows:
            raise DataError(f"the {name} split has no usable rows", file=str(train_files[-1]))
    digest = hashlib.sha256()
    for path in [*train_files, *dev_files]:
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return train_rows, weights, dev_rows, digest.hexdigest()


def _hash_fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 16**8
