"""Build the seed corpus: `kefu data build` (or `make data`).

Story: read the hand-written messages (datasets/sources/written/*.tsv), split them into
train/dev/test by family, add seeded augmentation inside each split, drop exact and near
duplicates across splits, write datasets/seed/*.jsonl and refresh the data card's numbers.
The same sources give byte-identical files: every random choice comes from a generator seeded
by the family id, and every list is sorted before it is written.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import DataError
from kefu.serving.taxonomy import Taxonomy, load_taxonomy
from kefu.training.data.augment import MAX_CHARS, Augmenter, Message
from kefu.training.data.corpus_row import CorpusRow
from kefu.training.data.overlap import THRESHOLD, max_jaccard

DATASETS = Path("datasets")  # run from the project root, as `make data` does
SPLITS = ("train", "dev", "test")
SPLIT_SHARES = (0.8, 0.1, 0.1)
HEADER = ["urgency", "emotion", "tags", "text"]
RARE_URGENCY, RARE_EMOTION, RARE_WEIGHT = {"critical"}, {"positive"}, 2.0
TAGS = {"hn", "multi", "chip", "card", "frag", "typo", "slang", "dialect", "en", "emoji", "chat"}


@dataclass(frozen=True)
class BuildConfig:
    sources: Path = DATASETS / "sources"
    out: Path = DATASETS / "seed"
    card: Path = DATASETS / "README.md"
    seed: int = 20261122
    rows_per_intent: int = 850  # written + augmented rows aimed at per intent (all splits)
    # Greetings and unclear fragments dominate real chat logs; give them more rows.
    intent_rows: tuple[tuple[str, int], ...] = (("greeting", 1200), ("other", 1000))
    max_variants: int = 5  # augmented variants per written message at most
    # ...and at least this many for a message with a rare label, even in an intent that has
    # reached its target with written rows alone (the rare classes still need their 5%)
    rare_min_variants: int = 2
    combine_share: float = 0.12  # share of augmented rows that join two requests


@dataclass
class SeedRow(CorpusRow):
    family: str
    split: str = field(default="", compare=False)

    def to_json(self) -> str:
        fields = ("id", "text", "intent", "urgency", "emotion", "source", "family")
        return json.dumps({name: getattr(self, name) for name in fields}, ensure_ascii=False)


def stable_hash(*parts: str) -> str:
    return hashlib.sha1("\t".join(parts).encode("utf-8")).hexdigest()


def read_written(folder: Path, taxonomy: Taxonomy) -> list[Message]:
    """Every hand-written message; errors name the file and line."""
    intents = set(taxonomy.labels("intent"))
    urgency, emotion = set(taxonomy.labels("urgency")), set(taxonomy.labels("emotion"))
    groups = taxonomy.intent_groups()
    messages: list[Message] = []
    seen: dict[str, str] = {}
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise DataError("no written sources (*.tsv) found", file=str(folder))
    for path in files:
        intent = path.stem
        if intent not in intents:
            raise DataError(
                f"file name must be an intent id, {intent!r} is not one", file=str(path)
            )
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines[0].split("\t") != HEADER:
            raise DataError(f"header must be {HEADER}", file=str(path), line=1)
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 4:
                raise DataError(
                    f"expected 4 tab-separated fields, found {len(fields)}",
                    file=str(path),
                    line=number,
                )
            urg, emo, tags, text = (value.strip() for value in fields)
            where: dict[str, Any] = {"file": str(path), "line": number}
            if urg not in urgency:
                raise DataError(f"unknown urgency {urg!r}", column="urgency", **where)
            if emo not in emotion:
                raise DataError(f"unknown emotion {emo!r}", column="emotion", **where)
            tag_set = {t for t in tags.split(",") if t}
            if tag_set - TAGS:
                raise DataError(f"unknown tags {sorted(tag_set - TAGS)}", column="tags", **where)
            if not 1 <= len(text) <= MAX_CHARS:
                raise DataError(
                    f"text must be 1..{MAX_CHARS} characters, found {len(text)}",
                    column="text",
                    **where,
                )
            if text in seen:
                raise DataError(f"duplicate text, first in {seen[text]}", column="text", **where)
            seen[text] = f"{path.name}:{number}"
            family = "f" + stable_hash(intent, text)[:10]
            messages.append(
                Message(text, intent, urg, emo, groups[intent], family, "hn" in tag_set)
            )
    return messages


def split_families(messages: list[Message]) -> dict[str, str]:
    """family -> split, stratified by intent, ordered by a hash of the family id."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        by_intent[message.intent].append(message.family)
    assignment = {}
    for families in by_intent.values():
        ordered = sorted(families, key=lambda family: stable_hash("split", family))
        cut_train = round(len(ordered) * SPLIT_SHARES[0])
        cut_dev = cut_train + round(len(ordered) * SPLIT_SHARES[1])
        for index, family in enumerate(ordered):
            assignment[family] = (
                "train" if index < cut_train else "dev" if index < cut_dev else "test"
            )
    return assignment


def augment_split(
    messages: list[Message],
    split: str,
    augmenter: Augmenter,
    config: BuildConfig,
    variants_wanted: dict[str, int],
    taken: set[str],
) -> list[SeedRow]:
    """Written rows plus their variants; `taken` holds every text already in the corpus."""
    rows: list[SeedRow] = []
    partners = sorted(messages, key=lambda m: m.family)
    for message in sorted(messages, key=lambda m: m.family):
        suffix = ":hard_negative" if message.hard_negative else ""
        rows.append(_row(message, 0, message.text, "written" + suffix, split))
        wanted = variants_wanted[message.family]
        rng = random.Random(f"{config.seed}:{message.family}")
        index, attempts = 1, 0
        while index <= wanted and attempts < wanted * 4:
            attempts += 1
            if rng.random() < config.combine_share:
                text, ops = augmenter.combine(message, rng.choice(partners), rng), ["combine"]
            else:
                made = augmenter.variant(message, rng)
                text, ops = made if made else (None, [])
            if not text or text in taken:
                continue
            taken.add(text)
            rows.append(
                _row(message, index, text, f"augmented:{'+'.join(sorted(ops))}{suffix}", split)
            )
            index += 1
    return rows


def allocate_variants(messages: list[Message], config: BuildConfig) -> dict[str, int]:
    """family -> number of augmented variants, so each intent reaches `rows_per_intent`.

    Rare labels weigh more (critical urgency, positive emotion): the corpus needs at least 5%
    of each class, and those classes live in a few intents only, so a rare-label message gets
    `rare_min_variants` even where written rows alone fill its intent. Remainders go by family
    hash.
    """
    by_intent: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_intent[message.intent].append(message)
    wanted: dict[str, int] = {}
    for group in by_intent.values():
        group = sorted(group, key=lambda m: stable_hash("extra", m.family))
        rare = [m.urgency in RARE_URGENCY or m.emotion in RARE_EMOTION for m in group]
        weights = [1.0 + RARE_WEIGHT * is_rare for is_rare in rare]
        target = dict(config.intent_rows).get(group[0].intent, config.rows_per_intent)
        missing = max(0, target - len(group))
        shares = [missing * weight / sum(weights) for weight in weights]
        counts = [int(share) for share in shares]
        for index in range(missing - sum(counts)):
            counts[index % len(counts)] += 1
        for message, count, is_rare in zip(group, counts, rare, strict=True):
            if is_rare:
                count = max(count, config.rare_min_variants)
            wanted[message.family] = min(config.max_variants, count)
    return wanted


def _row(message: Message, index: int, text: str, source: str, split: str) -> SeedRow:
    return SeedRow(
        id=f"{message.family}-{index}",
        text=text,
        intent=message.intent,
        urgency=message.urgency,
        emotion=message.emotion,
        source=source,
        family=message.family,
        split=split,
    )


def drop_cross_split_duplicates(rows_by_split: dict[str, list[SeedRow]]) -> dict[str, float]:
    """Remove dev/test rows that repeat or nearly repeat an earlier split; return shares before."""
    before = {}
    for later, earlier in (("dev", ["train"]), ("test", ["train", "dev"])):
        references = [row.text for split in earlier for row in rows_by_split[split]]
        scores = max_jaccard([row.text for row in rows_by_split[later]], references)
        before[later] = float((scores >= THRESHOLD).mean()) if len(scores) else 0.0
        rows_by_split[later] = [
            row
            for row, score in zip(rows_by_split[later], scores, strict=True)
            if score < THRESHOLD
        ]
    return before


def build(config: BuildConfig = BuildConfig(), taxonomy: Taxonomy | None = None) -> dict:
    taxonomy = taxonomy or load_taxonomy()
    lexicon = yaml.safe_load((config.sources / "augment.yaml").read_text(encoding="utf-8"))
    messages = read_written(config.sources / "written", taxonomy)
    assignment = split_families(messages)
    variants_wanted = allocate_variants(messages, config)
    augmenter = Augmenter(lexicon, taxonomy.labels("urgency"))
    taken = {message.text for message in messages}
    rows_by_split = {
        split: augment_split(
            [m for m in messages if assignment[m.family] == split],
            split,
            augmenter,
            config,
            variants_wanted,
            taken,
        )
        for split in SPLITS
    }
    near_duplicates_before = drop_cross_split_duplicates(rows_by_split)
    near_duplicates_after = {
        "dev": _share(rows_by_split["dev"], rows_by_split["train"]),
        "test": _share(rows_by_split["test"], rows_by_split["train"] + rows_by_split["dev"]),
    }
    config.out.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        rows.sort(key=lambda row: row.id)
        (config.out / f"{split}.jsonl").write_text(
            "".join(row.to_json() + "\n" for row in rows), "utf-8"
        )
    from kefu.training.data.card import corpus_stats, update_card

    stats = corpus_stats(rows_by_split, taxonomy, near_duplicates_before, near_duplicates_after)
    update_card(config.card, stats, rows_by_split, taxonomy, config.out / "stats.json")
    return stats


def _share(queries: list[SeedRow], references: list[SeedRow]) -> float:
    scores = max_jaccard([row.text for row in queries], [row.text for row in references])
    return float((scores >= THRESHOLD).mean()) if len(scores) else 0.0
