"""Counts behind the report, accumulated batch by batch so any number of rows fits in memory.

Memory: a few counters per label and per day, plus the distinct normalised question forms
(bounded in `clusters.py`).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from kefu.serving.report.clusters import QuestionCounter
from kefu.serving.report.conversations import ConversationStats
from kefu.serving.report.load import ScoredBatch
from kefu.tabular import Reject

NEGATIVE_EMOTIONS = ("angry", "dissatisfied")
MAX_REJECT_EXAMPLES = 5
DAYS_SPAN = 60  # --period auto: days up to this many days between first and last, then weeks
WEEKS_SPAN = 731  # ... weeks up to two years, then months


@dataclass
class PeriodStats:
    messages: int = 0
    escalated: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    emotions: Counter[str] = field(default_factory=Counter)

    def merge(self, other: PeriodStats) -> None:
        self.messages += other.messages
        self.escalated += other.escalated
        self.intents.update(other.intents)
        self.emotions.update(other.emotions)

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.messages if self.messages else 0.0

    @property
    def negative_share(self) -> float:
        negative = sum(self.emotions[e] for e in NEGATIVE_EMOTIONS)
        return negative / self.messages if self.messages else 0.0


@dataclass
class ReportData:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    urgency: Counter[str] = field(default_factory=Counter)
    emotions: Counter[str] = field(default_factory=Counter)
    queues: Counter[str] = field(default_factory=Counter)
    escalated: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    escalated_by_intent: Counter[str] = field(default_factory=Counter)
    model_versions: Counter[str] = field(default_factory=Counter)
    days: dict[date, PeriodStats] = field(default_factory=dict)
    undated: int = 0  # rows whose time value could not be read (only with --time-col)
    questions: QuestionCounter = field(default_factory=QuestionCounter)
    rejected: int = 0  # records that could not be read or used, counted out (not in `rows`)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)  # `Reject.reason` codes
    reject_examples: list[Reject] = field(default_factory=list)  # the first few of them
    rejects_file: str = ""  # where every one of them is (OUTPUT.rejects.jsonl)
    actions: Counter[str] = field(default_factory=Counter)  # files scored with actions only
    priorities: Counter[str] = field(default_factory=Counter)
    queue_intents: Counter[tuple[str, str]] = field(default_factory=Counter)
    human_queue_intents: Counter[tuple[str, str]] = field(default_factory=Counter)
    conversations: ConversationStats = field(default_factory=ConversationStats)

    def add(self, batch: ScoredBatch) -> None:
        self.rejected += len(batch.rejects)
        self.rejected_by_reason.update(reject.reason for reject in batch.rejects)
        # the first few by file name and line, whatever order the files were given in
        self.reject_examples = heapq.nsmallest(
            MAX_REJECT_EXAMPLES,
            [*self.reject_examples, *batch.rejects[:MAX_REJECT_EXAMPLES]],
            key=lambda reject: (reject.file, reject.line),
        )
        self._add_routes(batch)
        self.rows += len(batch.intent)
        self.intents.update(batch.intent)
        self.urgency.update(batch.urgency)
        self.emotions.update(batch.emotion)
        self.queues.update(q for q in batch.queue if q)
        self.model_versions.update(v for v in batch.model_version if v)
        for i, intent in enumerate(batch.intent):
            if batch.escalate[i]:
                self.escalated += 1
                self.escalated_by_intent[intent] += 1
                self.reasons.update(batch.reasons[i])
            text = batch.text[i]
            if text:
                self.questions.add(text, intent)
            if batch.day is not None:
                day = batch.day[i]
                if day is None:
                    self.undated += 1
                    continue
                stats = self.days.get(day)
                if stats is None:
                    stats = self.days[day] = PeriodStats()
                stats.messages += 1
                stats.escalated += batch.escalate[i]
                stats.intents[intent] += 1
                stats.emotions[batch.emotion[i]] += 1

    def _add_routes(self, batch: ScoredBatch) -> None:
        """Actions, priorities, queue x intent and conversations, where the file has them."""
        self.actions.update(a for a in batch.action if a)
        self.priorities.update(p for p in batch.priority if p)
        for i, intent in enumerate(batch.intent):
            key = (batch.queue[i] or "", intent)
            self.queue_intents[key] += 1
            self.human_queue_intents[key] += batch.escalate[i]
            session = batch.session[i]
            if session is not None:
                self.conversations.add(
                    session, batch.session_turn[i], batch.action[i], batch.reasons[i]
                )

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.rows if self.rows else 0.0

    def periods(self, period: str) -> tuple[str, dict[date, PeriodStats]]:
        """("day" | "week" | "month", stats per period start), every period from the first to
        the last, empty ones included, so a quiet day shows as zero. "auto" picks weeks past
        `DAYS_SPAN` days and months past `WEEKS_SPAN`: a few stray dates years away (an epoch 0,
        a typo) would otherwise make thousands of periods."""
        if not self.days:
            return "day", {}
        first, last = min(self.days), max(self.days)
        if period == "auto":
            span = (last - first).days
            period = "day" if span <= DAYS_SPAN else "week" if span <= WEEKS_SPAN else "month"
        starts = {day: period_start(day, period) for day in self.days}
        periods = {}
        start = period_start(first, period)
        while start <= last:
            periods[start] = PeriodStats()
            start = next_period(start, period)
        for day, stats in self.days.items():
            periods[starts[day]].merge(stats)
        return period, periods


def period_start(day: date, period: str) -> date:
    """The first day of the period holding `day`; weeks start on Monday."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, period: str) -> date:
    if period == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=7 if period == "week" else 1)
