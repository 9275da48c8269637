"""TOP repeated questions: near-duplicate clusters of message texts.

Customers ask the same thing in many spellings ("我的快递怎么还没到" / "快递怎么还没到啊？？" /
"我的快递怎么还没到 订单123"), so exact counting splits one hotspot into many rows. Texts are
first normalised (NFKC, lower case, order numbers and digits folded, punctuation, spaces and
emoji dropped) and counted exactly; the distinct normalised forms are then grouped with MinHash
over character bigrams and LSH banding (20 bands x 3 rows: a pair at Jaccard 0.6 shares a band
with probability 0.99, at 0.7 with 0.9999), and a collision joins two forms only when their real
bigram Jaccard is at least 0.6 (`near_duplicates.py`). A cluster's count is the sum of its forms'
counts; its example is the shortest spelling of its most frequent form. Ties (of forms, of
spellings, of a cluster's intents) go to the first in code-point order, never to the first seen,
so the same messages in another row order make the same clusters (until room must be made: which
forms are in memory then depends on the order).

Memory: one entry per distinct normalised form, cut to `MAX_FORM_CHARS`. Past `MAX_FORMS` forms,
the forms are clustered as at the end and each cluster merged into its most frequent form; of
those, forms still seen once are dropped (a repeated question is by definition seen more than
once: fifty one-off spellings of one question merged are one form seen fifty times), and the
least frequent beyond half of `MAX_FORMS`. A cluster's count is then exact unless a spelling was
dropped while its cluster had no other member in memory; the page says how many messages were
dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from kefu.serving.preview import cut
from kefu.serving.report.near_duplicates import group_near_duplicates
from kefu.serving.report.ranking import ranked

MAX_FORMS = 200_000
EXAMPLE_CHARS = 120  # longest example shown, its "…" included (cut between whole characters)
# A repeated question is short; the head of a 20,000-character paste still tells its repeats,
# and memory (the form as a key, its bigrams in MinHash) stays bounded per form.
MAX_FORM_CHARS = 300
_PLACEHOLDER = re.compile(r"\[[^\[\]]{1,20}\]")  # [订单x], [数字x], [链接x], pasted card fields
_URL = re.compile(r"https?://\S+|www\.\S+")
_DIGITS = re.compile(r"\d+")
# all but letters (Unicode L*), numbers (N*) and "#": `\w` is exactly L*, N* and "_"
_NOT_KEPT = re.compile(r"[^\w#]+|_+")


def normalise_question(text: str) -> str:
    """The form two spellings of one question share; "" when nothing word-like is left."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _URL.sub("url", text)
    text = _PLACEHOLDER.sub("#", text)
    text = _DIGITS.sub("0", text)
    return _NOT_KEPT.sub("", text)[:MAX_FORM_CHARS]


@dataclass(slots=True)  # one per distinct form, up to MAX_FORMS: no __dict__ each
class _Form:
    count: int = 0
    example: str = ""
    intent: str = ""  # the intent of all its messages, while they have one
    mixed: Counter[str] | None = None  # its messages by intent, once they have several
    variants: int = 1  # distinct forms merged into this one (see `QuestionCounter._prune`)

    @property
    def intents(self) -> Counter[str]:
        """Messages by intent. Most forms hold one intent: a Counter each (200 bytes and 2 us
        to make) was 40 MB of 200,000 forms and a tenth of the time at a million texts."""
        return Counter({self.intent: self.count}) if self.mixed is None else self.mixed

    def add(self, intent: str) -> None:
        if self.mixed is None and self.count and intent != self.intent:
            self.mixed = self.intents
        if self.mixed is None:
            self.intent = intent
        else:
            self.mixed[intent] += 1
        self.count += 1

    def absorb(self, other: _Form) -> None:
        if self.mixed is None and (other.mixed is not None or other.intent != self.intent):
            self.mixed = self.intents
        if self.mixed is not None:
            self.mixed.update(other.intents)
        self.count += other.count
        self.variants += other.variants


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
        example = cut(" ".join(text.split()), EXAMPLE_CHARS)
        form = self.forms.get(key)
        if form is None:
            if len(self.forms) >= self.max_forms:
                self._prune()
            form = self.forms[key] = _Form(example=example)
        elif (len(example), example) < (len(form.example), form.example):
            form.example = example
        form.add(intent)

    def top(self, n: int = 10) -> list[QuestionCluster]:
        # singletons stay in: fifty one-off spellings of one question are a hotspot too
        keys = self._by_count()
        groups = group_near_duplicates(keys)
        clusters = []
        for members in groups:
            forms = [self.forms[keys[i]] for i in members]
            intents: Counter[str] = sum((form.intents for form in forms), Counter())
            total = sum(form.count for form in forms)
            intent, intent_count = ranked(intents)[0]
            best = forms[0]  # the most frequent: members ascend and keys are by count
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
        keys = self._by_count()
        merged = []
        for members in group_near_duplicates(keys):
            head = self.forms[keys[members[0]]]  # the most frequent: keys are by count
            for i in members[1:]:
                head.absorb(self.forms[keys[i]])
            merged.append((keys[members[0]], head))
        merged.sort(key=lambda item: (-item[1].count, item[0]))
        kept = [item for item in merged[: self.max_forms // 2] if item[1].count > 1]
        self.pruned += sum(form.count for _, form in merged) - sum(f.count for _, f in kept)
        self.forms = dict(kept)

    def _by_count(self) -> list[str]:
        """The forms, most frequent first, ties by form: the order clustering is given decides
        which pairs are compared and which form heads a group, so it must not be the order the
        forms were first seen in."""
        return sorted(self.forms, key=lambda key: (-self.forms[key].count, key))
