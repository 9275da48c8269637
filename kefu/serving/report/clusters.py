"""TOP repeated questions: near-duplicate clusters of message texts.

Customers ask the same thing in many spellings ("我的快递怎么还没到" / "快递怎么还没到啊？？" /
"我的快递怎么还没到 订单123"), so exact counting splits one hotspot into many rows. Texts are
first normalised (NFKC, lower case, order numbers and digits folded, punctuation, spaces and
emoji dropped) and counted exactly; the distinct normalised forms are then grouped with MinHash
over character bigrams and LSH banding (20 bands x 3 rows: a pair at Jaccard 0.6 shares a band
with probability 0.99, at 0.7 with 0.9999), and a collision joins two forms only when their real
bigram Jaccard is at least `JACCARD`. A cluster's count is the sum of its forms' counts; its example is the original
text of its most frequent form.

Memory: one entry per distinct normalised form, cut to `MAX_FORM_CHARS`. Past `MAX_FORMS` forms,
the forms are clustered as at the end and each cluster merged into its most frequent form; of
those, forms still seen once are dropped (a repeated question is by definition seen more than
once: fifty one-off spellings of one question merged are one form seen fifty times), and the
least frequent beyond half of `MAX_FORMS`. A cluster's count is then exact unless a spelling was
dropped while its cluster had no other member in memory; the page says how many messages were
dropped.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from kefu.serving.preview import cut

JACCARD = 0.6
BANDS, ROWS_PER_BAND = 20, 3
MAX_FORMS = 200_000
EXAMPLE_CHARS = 120  # longest example shown, its "…" included (cut between whole characters)
# A repeated question is short; the head of a 20,000-character paste still tells its repeats,
# and memory (the form as a key, its bigrams in MinHash) stays bounded per form.
MAX_FORM_CHARS = 300
_PRIME = (1 << 61) - 1
_FOLD = 0x9E3779B97F4A7C15  # odd multiplier folding a band's values into one (mod 2**64)
_PLACEHOLDER = re.compile(r"\[[^\[\]]{1,20}\]")  # [订单x], [数字x], [链接x], pasted card fields
_URL = re.compile(r"https?://\S+|www\.\S+")
_DIGITS = re.compile(r"\d+")


def normalise_question(text: str) -> str:
    """The form two spellings of one question share; "" when nothing word-like is left."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _URL.sub("url", text)
    text = _PLACEHOLDER.sub("#", text)
    text = _DIGITS.sub("0", text)
    kept = "".join(ch for ch in text if ch == "#" or unicodedata.category(ch)[0] in "LN")
    return kept[:MAX_FORM_CHARS]


@dataclass(slots=True)  # one per distinct form, up to MAX_FORMS: no __dict__ each
class _Form:
    count: int = 0
    example: str = ""
    intents: Counter[str] = field(default_factory=Counter)
    variants: int = 1  # distinct forms merged into this one (see `QuestionCounter._prune`)

    def absorb(self, other: _Form) -> None:
        self.count += other.count
        self.variants += other.variants
        self.intents.update(other.intents)


@dataclass
class QuestionCluster:
    count: int  # messages in the cluster
    variants: int  # distinct normalised forms
    example: str  # original text of the most frequent form
    intent: str  # the intent most of its messages were given
    intent_share: float  # share of the cluster's messages with that intent


class QuestionCounter:
    """Streams texts in (`add`), clusters them at the end (`top`)."""

    def __init__(self, max_forms: int = MAX_FORMS):
        self.forms: dict[str, _Form] = {}
        self.max_forms = max_forms
        self.pruned = 0  # messages whose forms were dropped to keep memory bounded

    def add(self, text: str, intent: str) -> None:
        key = normalise_question(text)
        if not key:
            return
        form = self.forms.get(key)
        if form is None:
            if len(self.forms) >= self.max_forms:
                self._prune()
            form = self.forms[key] = _Form(example=cut(" ".join(text.split()), EXAMPLE_CHARS))
        form.count += 1
        form.intents[intent] += 1

    def top(self, n: int = 10) -> list[QuestionCluster]:
        # singletons stay in: fifty one-off spellings of one question are a hotspot too
        keys = sorted(self.forms, key=lambda key: -self.forms[key].count)
        groups = _group_near_duplicates(keys)
        clusters = []
        for members in groups:
            forms = [self.forms[keys[i]] for i in members]
            intents: Counter[str] = sum((form.intents for form in forms), Counter())
            total = sum(form.count for form in forms)
            intent, intent_count = intents.most_common(1)[0]
            best = max(forms, key=lambda form: form.count)
            variants = sum(form.variants for form in forms)
            clusters.append(
                QuestionCluster(total, variants, best.example, intent, intent_count / total)
            )
        clusters.sort(key=lambda cluster: (-cluster.count, cluster.example))
        return [cluster for cluster in clusters if cluster.count > 1][:n]

    def _prune(self) -> None:
        """Make room: near-duplicate forms are merged into their most frequent one first (so
        one-off spellings of one question keep counting as it), then forms still seen once
        are dropped; when more than half the room is still taken, the least frequent forms
        go too, so clustering runs again only after `max_forms // 2` new forms."""
        keys = sorted(self.forms, key=lambda key: -self.forms[key].count)
        merged = []
        for members in _group_near_duplicates(keys):
            head = self.forms[keys[members[0]]]  # the most frequent: keys are by count
            for i in members[1:]:
                head.absorb(self.forms[keys[i]])
            merged.append((keys[members[0]], head))
        merged.sort(key=lambda item: -item[1].count)
        kept = [item for item in merged[: self.max_forms // 2] if item[1].count > 1]
        self.pruned += sum(form.count for _, form in merged) - sum(f.count for _, f in kept)
        self.forms = dict(kept)


def bigrams(form: str) -> set[str]:
    return {form} if len(form) < 3 else {form[i : i + 2] for i in range(len(form) - 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _group_near_duplicates(keys: list[str]) -> list[list[int]]:
    """Index groups of `keys` joined by LSH collision plus a verified Jaccard >= JACCARD.

    Bigram sets are built per block for the signatures and again per colliding pair, never kept
    for all forms at once: 200,000 long forms held as sets took about 0.7 GB."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # a bucket's first form meets every later one: its bigrams are worth keeping a while
    grams_of = functools.lru_cache(maxsize=4096)(lambda i: bigrams(keys[i]))
    band_keys = _band_keys(keys)
    for band in range(BANDS):
        buckets: dict[int, int] = {}
        for i, band_key in enumerate(band_keys[:, band].tolist()):
            first = buckets.setdefault(band_key, i)
            if (
                first != i
                and root(first) != root(i)
                and jaccard(grams_of(first), grams_of(i)) >= JACCARD
            ):
                parent[root(i)] = root(first)
    groups: dict[int, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _band_keys(keys: list[str], block_bigrams: int = 16_384) -> np.ndarray:
    """(n, BANDS) uint64: each band's ROWS_PER_BAND MinHash values folded into one number, so
    two forms share a band's bucket when (up to a 2**-64 chance) they share its values; a
    chance collision costs one Jaccard check, never a wrong join. Stable across runs (crc32 +
    fixed seeds).

    Forms are hashed in blocks of about `block_bigrams` bigrams: the hashing holds a few
    (BANDS x ROWS_PER_BAND, bigrams) uint64 arrays, 8 MB each at that size, where blocks of a
    fixed number of forms grew with their length (1.8 GB for 4,096 forms of 300 characters)."""
    out = np.empty((len(keys), BANDS), dtype=np.uint64)
    start, part, size = 0, [], 0
    for key in keys:
        grams = bigrams(key)
        part.append(grams)
        size += len(grams)
        if size >= block_bigrams:
            out[start : start + len(part)] = _hash_block(part)
            start, part, size = start + len(part), [], 0
    if part:
        out[start:] = _hash_block(part)
    return out


def _hash_block(part: list[set[str]]) -> np.ndarray:
    """(len(part), BANDS) band keys of one block of bigram sets (see `_band_keys`)."""
    n_hashes = BANDS * ROWS_PER_BAND
    rng = np.random.default_rng(20240601)
    a = rng.integers(1, _PRIME, n_hashes, dtype=np.uint64)
    b = rng.integers(0, _PRIME, n_hashes, dtype=np.uint64)
    fold = np.array([pow(_FOLD, k, 1 << 64) for k in range(ROWS_PER_BAND)], dtype=np.uint64)
    hashes = np.array(
        [zlib.crc32(s.encode("utf-8")) for grams in part for s in grams], dtype=np.uint64
    )
    sizes = np.array([len(grams) for grams in part])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # (a*h + b) mod p with h < 2**32 and a, b < 2**61 would overflow; fold a to 29 bits
    mixed = (a[:, None] >> np.uint64(32)) * hashes[None, :]
    mixed += b[:, None]
    mixed %= np.uint64(_PRIME)
    signatures = np.minimum.reduceat(mixed, offsets, axis=1).T  # (len(part), n_hashes)
    bands = signatures.reshape(len(part), BANDS, ROWS_PER_BAND)
    return (bands * fold).sum(axis=2, dtype=np.uint64)
