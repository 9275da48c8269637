"""Near-duplicate groups of question forms: MinHash over character bigrams, LSH bands and the
exact bigram Jaccard of every colliding pair, computed on arrays rather than per form in Python.

A form's bigrams are integer codes (two code points of 21 bits each; a one-character form is
its one character), so a pair's Jaccard is that of the sets of bigram strings. A bigram's
MinHash input is the CRC-32 of its UTF-8 bytes (`zlib.crc32`, computed here on arrays) and the
hash seeds are fixed: the same forms group the same way on every run.

Forms come most frequent first. In each of `BANDS` bands, a form whose band key an earlier form
shares is a candidate pair with the earliest form of that bucket, and a candidate pair is
joined when its Jaccard is at least `JACCARD`; groups are the connected components. Components
do not depend on the order pairs are checked in, so each band's buckets come from one stable
sort of its keys and each distinct pair is checked once, in blocks. 200,000 distinct forms of
about 24 characters (870,000 distinct candidate pairs): 2.1 s, where a loop over bands x forms
building a `set` of bigram strings per checked form took 28 s.

Memory: the band keys (160 bytes a form), then the candidate pairs and each form's distinct
bigram codes (8 bytes a bigram), never all at once; hashing and checking work on blocks of
bounded size. Those 200,000 forms peak at 64 MB (tracemalloc), the loop at 66 MB.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

JACCARD = 0.6
BANDS, ROWS_PER_BAND = 20, 3
_PRIME = (1 << 61) - 1
_FOLD = 0x9E3779B97F4A7C15  # odd multiplier folding a band's values into one (mod 2**64)
_CHAR_BITS = 21  # any code point; a bigram's code is (first << 21) | second
_CODE_BITS = 2 * _CHAR_BITS  # a block-local index goes above the code in a 64-bit sort key
_CODE_MASK = (1 << _CODE_BITS) - 1
_SEEDS = np.random.default_rng(20240601)
_HASH_A = _SEEDS.integers(1, _PRIME, BANDS * ROWS_PER_BAND, dtype=np.uint64)
_HASH_B = _SEEDS.integers(0, _PRIME, BANDS * ROWS_PER_BAND, dtype=np.uint64)
_FOLD_POWERS = np.array([pow(_FOLD, k, 1 << 64) for k in range(ROWS_PER_BAND)], dtype=np.uint64)


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.int64)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ 0xEDB88320, table >> 1)
    return table


_CRC_TABLE = _crc_table()  # CRC-32 (zlib's polynomial), one byte at a time
_UTF8_LEAD = np.array([0, 0x00, 0xC0, 0xE0, 0xF0])  # by a character's UTF-8 length


def group_near_duplicates(keys: list[str]) -> list[list[int]]:
    """Index groups of `keys` (most frequent first), each ascending, ordered by first member.

    The bigrams are built twice, for the band keys and then for the checks, and each array is
    let go once used: band keys, codes and groups are never held at once."""
    if not keys:
        return []
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    first, later = _candidate_pairs(_band_keys(keys, lengths))
    joined = _similar(first, later, *_form_bigrams(keys, lengths))
    first, later = first[joined], later[joined]
    return _components(len(keys), first, later)


def _blocks(lengths: np.ndarray, block_chars: int) -> Iterator[tuple[int, int]]:
    """(lo, hi): consecutive runs of forms of at most `block_chars` characters (or one form)."""
    ends = np.cumsum(lengths)
    lo = 0
    while lo < len(lengths):
        limit = ends[lo] - lengths[lo] + block_chars
        hi = max(lo + 1, int(np.searchsorted(ends, limit, "right")))
        yield lo, hi
        lo = hi


def _form_bigrams(
    keys: list[str], lengths: np.ndarray, block_chars: int = 1 << 16
) -> tuple[np.ndarray, np.ndarray]:
    """(starts, codes): form i's distinct bigram codes, ascending, are
    `codes[starts[i] : starts[i + 1]]`, in one array as long as all forms' characters (a form
    has no more bigrams than characters)."""
    starts = np.zeros(len(keys) + 1, dtype=np.int64)
    codes = np.empty(int(lengths.sum()), dtype=np.int64)
    for lo, hi in _blocks(lengths, block_chars):
        counts, block_codes = _block_bigrams(keys[lo:hi], lengths[lo:hi])
        starts[lo + 1 : hi + 1] = starts[lo] + np.cumsum(counts)
        codes[starts[lo] : starts[hi]] = block_codes
    return starts, codes[: starts[-1]]


def _block_bigrams(forms: list[str], lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(how many distinct bigrams each form has, their codes form after form, ascending)."""
    points = np.frombuffer("".join(forms).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    form_of = np.repeat(np.arange(len(forms)), lengths)
    single = lengths[form_of] == 1
    following = np.append(points[1:], 0)
    codes = np.where(single, points, (points << _CHAR_BITS) | following)
    last = np.zeros(len(points), dtype=bool)
    last[np.cumsum(lengths) - 1] = True
    kept = ~last | single  # a bigram starts at every character but a form's last
    distinct = _distinct((form_of[kept] << _CODE_BITS) | codes[kept])
    return np.bincount(distinct >> _CODE_BITS, minlength=len(forms)), distinct & _CODE_MASK


def _band_keys(keys: list[str], lengths: np.ndarray, block_chars: int = 16_384) -> np.ndarray:
    """(n, BANDS) uint64: each band's ROWS_PER_BAND MinHash values folded into one number, so
    two forms share a band's bucket when (up to a 2**-64 chance) they share its values; a
    chance collision costs one Jaccard check, never a wrong join.

    Forms are hashed in blocks of at most `block_chars` characters, so of as many bigrams: the
    hashing holds a few (BANDS x ROWS_PER_BAND, bigrams) uint64 arrays, 8 MB each."""
    out = np.empty((len(keys), BANDS), dtype=np.uint64)
    for lo, hi in _blocks(lengths, block_chars):
        counts, codes = _block_bigrams(keys[lo:hi], lengths[lo:hi])
        out[lo:hi] = _hash_block(codes, np.cumsum(counts) - counts)
    return out


def _hash_block(codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(len(offsets), BANDS) band keys of the forms whose bigrams start at `offsets`."""
    hashes = _crc32(codes).astype(np.uint64)
    # (a*h + b) mod p with h < 2**32 and a, b < 2**61 would overflow; fold a to 29 bits
    mixed = (_HASH_A[:, None] >> np.uint64(32)) * hashes[None, :]
    mixed += _HASH_B[:, None]
    mixed %= np.uint64(_PRIME)
    signatures = np.minimum.reduceat(mixed, offsets, axis=1).T  # (forms, hashes)
    bands = signatures.reshape(len(offsets), BANDS, ROWS_PER_BAND)
    return (bands * _FOLD_POWERS).sum(axis=2, dtype=np.uint64)


def _crc32(codes: np.ndarray) -> np.ndarray:
    """`zlib.crc32` of each bigram's UTF-8 bytes (one character's when the code is one)."""
    crc = np.full(len(codes), 0xFFFFFFFF, dtype=np.int64)
    paired = codes >> _CHAR_BITS > 0
    crc = np.where(paired, _crc_feed(crc, codes >> _CHAR_BITS), crc)
    return _crc_feed(crc, codes & ((1 << _CHAR_BITS) - 1)) ^ 0xFFFFFFFF


def _crc_feed(crc: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each CRC-32 state once fed the UTF-8 bytes (one to four) of its code point."""
    size = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    for k in range(4):
        shift = 6 * np.maximum(size - 1 - k, 0)
        byte = (points >> shift) & 0x3F | 0x80 if k else _UTF8_LEAD[size] | points >> shift
        fed = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        crc = np.where(k < size, fed, crc)
    return crc


def _candidate_pairs(band_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, later): each distinct pair of a bucket's earliest form and a later one, over
    all bands, ordered by first. Merged band by band: 200,000 forms have about 2.8 million such
    pairs over 20 bands, 870,000 distinct."""
    n = len(band_keys)
    distinct = np.empty(0, dtype=np.int64)
    for band in band_keys.T:
        order = np.argsort(band, kind="stable")  # a bucket's members stay in index order
        ordered = band[order]
        opens = np.concatenate([[True], ordered[1:] != ordered[:-1]])
        first = order[np.flatnonzero(opens)[np.cumsum(opens) - 1]]
        distinct = _distinct(np.concatenate([distinct, first[~opens] * n + order[~opens]]))
    return distinct // n, distinct % n


def _similar(
    first: np.ndarray,
    later: np.ndarray,
    starts: np.ndarray,
    codes: np.ndarray,
    block_pairs: int = 8_192,
) -> np.ndarray:
    """Whether each pair's bigram Jaccard is at least JACCARD, `block_pairs` pairs at a time."""
    sizes = np.diff(starts)
    joined = np.empty(len(first), dtype=bool)
    for lo in range(0, len(first), block_pairs):
        a, b = first[lo : lo + block_pairs], later[lo : lo + block_pairs]
        shared = _shared_bigrams(a, b, starts, sizes, codes)
        joined[lo : lo + block_pairs] = shared / (sizes[a] + sizes[b] - shared) >= JACCARD
    return joined


def _shared_bigrams(
    a: np.ndarray, b: np.ndarray, starts: np.ndarray, sizes: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """How many bigrams forms a[k] and b[k] share: b's bigrams looked up among a's, each keyed
    by its pair so one sorted array holds every pair's a side."""
    pair_a = np.repeat(np.arange(len(a)), sizes[a])
    grams_a = (pair_a << _CODE_BITS) | codes[_ranges(starts[a], sizes[a])]
    pair_b = np.repeat(np.arange(len(b)), sizes[b])
    grams_b = (pair_b << _CODE_BITS) | codes[_ranges(starts[b], sizes[b])]
    at = np.minimum(np.searchsorted(grams_a, grams_b), len(grams_a) - 1)
    return np.bincount(pair_b[grams_a[at] == grams_b], minlength=len(a))


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The indexes of ranges [start, start + size), one after another."""
    ends = np.cumsum(sizes)
    return np.arange(ends[-1]) + np.repeat(starts - (ends - sizes), sizes)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values: a sort in place, where `np.unique` hashes first (4x slower)."""
    values.sort()
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return values[first]


def _components(n: int, first: np.ndarray, later: np.ndarray) -> list[list[int]]:
    """Connected components of the joined pairs, each labelled by its smallest index: every
    pair hooks the larger label onto the smaller, then labels jump to their roots, until no
    pair joins two labels."""
    labels = np.arange(n)
    while len(first):
        ends = labels[first], labels[later]
        low, high = np.minimum(*ends), np.maximum(*ends)
        apart = low != high
        if not apart.any():
            break
        np.minimum.at(labels, high[apart], low[apart])
        while not np.array_equal(roots := labels[labels], labels):
            labels = roots
    order = np.argsort(labels, kind="stable")  # by smallest index, members ascending
    bounds = [0, *(np.flatnonzero(np.diff(labels[order])) + 1).tolist(), n]
    members = order.tolist()
    return [members[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
