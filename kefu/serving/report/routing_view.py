"""The routing sections of the report: the action mix, priorities and queue x intent for every
scored file with actions, and a conversation view when it has session columns.

Tables: `actions`, `priorities`, `queue-intents`; with sessions `handover-turns` and
`handover-reasons`. Charts: `chart-actions`, `chart-handover-turn`.
"""

from __future__ import annotations

from html import escape
from typing import Protocol

from kefu.serving.report import charts
from kefu.serving.report.aggregate import ReportData
from kefu.serving.report.conversations import LAST_TURN_BUCKET
from kefu.serving.report.html import img, num, pct, table
from kefu.serving.report.ranking import ranked
from kefu.serving.taxonomy import PRIORITIES

ACTIONS = {"bot": "机器人答复", "clarify": "澄清追问", "human": "转人工"}
PRIORITY_NAMES = {"P0": "紧急", "P1": "高", "P2": "中", "P3": "低"}
# A policy names a handful of queues; a file whose queue column is free text (edited by hand,
# or scored by another tool) could name thousands, so the queue tables list the busiest only.
MAX_QUEUES = 12


class Names(Protocol):
    def name(self, head: str, label: str) -> str: ...


def routing_section(data: ReportData, labels: Names) -> str:
    parts = ["<h2>Routing 分流</h2>"]
    if data.actions:
        total = sum(data.actions.values())
        order = [a for a in ACTIONS if a in data.actions] + sorted(set(data.actions) - set(ACTIONS))
        parts.append(
            f"<p>The bot answers {pct(data.actions['bot'] / total)} of messages, asks the "
            f"customer to choose for {pct(data.actions['clarify'] / total)} and hands "
            f"{pct(data.actions['human'] / total)} to a person.</p>"
            + without_column(data.rows - total, "action")
        )
        chart = charts.bar_chart(order, [data.actions[a] for a in order], "Actions")
        parts.append(img("chart-actions", chart, "action mix"))
        rows = [
            [escape(a), ACTIONS.get(a, ""), num(data.actions[a]), pct(data.actions[a] / total)]
            for a in order
        ]
        parts.append(table("actions", ["action", "动作", "messages", "share"], rows, {2, 3}))
    if data.priorities:
        total = sum(data.priorities.values())
        # P0-P3 always, at zero too (no P0 is news); a file from another policy may hold other
        # levels: listed after them, never dropped
        order = list(PRIORITIES)
        order += sorted(p for p in data.priorities if p not in PRIORITIES)
        rows = [
            [
                escape(p),
                PRIORITY_NAMES.get(p, ""),
                num(data.priorities[p]),
                pct(data.priorities[p] / total),
            ]
            for p in order
        ]
        parts.append(table("priorities", ["priority", "优先级", "messages", "share"], rows, {2, 3}))
        parts.append(without_column(data.rows - total, "priority"))
    parts.append(_queue_intents(data, labels))
    return "".join(parts)


def without_column(missing: int, column: str, left_out: str = "are not in these shares") -> str:
    """A note for the messages a routing table leaves out: by default the shares above are of
    the rest; the queue table says instead that they are not listed (its shares are of all)."""
    if not missing:
        return ""
    return (
        f'<p class="note">{num(missing)} messages have no {column} (a file scored before '
        f"routing had one, or a blank cell) and {left_out}.</p>"
    )


def _queue_intents(data: ReportData, labels: Names) -> str:
    per_queue: dict[str, int] = {}
    for (queue, _), count in data.queue_intents.items():
        per_queue[queue] = per_queue.get(queue, 0) + count
    place = {queue: i for i, (queue, _) in enumerate(ranked(per_queue)[:MAX_QUEUES])}
    # the busiest queues first; a stable sort keeps each queue's intents as `ranked` put them
    rows_in_order = sorted(
        (item for item in ranked(data.queue_intents) if item[0][0] in place),
        key=lambda item: place[item[0][0]],
    )
    rows = [
        [
            escape(queue or "-"),
            escape(intent),
            escape(labels.name("intent", intent)),
            num(count),
            pct(count / per_queue[queue]),
            pct(data.human_queue_intents[(queue, intent)] / count),
        ]
        for (queue, intent), count in rows_in_order
    ]
    header = ["queue 队列", "intent", "名称", "messages", "share of queue", "to a person"]
    left_out = {queue: count for queue, count in per_queue.items() if queue not in place}
    return table("queue-intents", header, rows, {3, 4, 5}) + queues_not_shown(left_out)


def queues_not_shown(left_out: dict[str, int]) -> str:
    """The note under a queue table cut to the `MAX_QUEUES` busiest queues."""
    if not left_out:
        return ""
    return (
        f'<p class="note">{num(len(left_out))} quieter queues ({num(sum(left_out.values()))} '
        f"messages) are not listed: only the {MAX_QUEUES} busiest are.</p>"
    )


def conversation_section(data: ReportData) -> str:
    stats = data.conversations
    if not stats.count:
        return ""
    handed = stats.handed_over
    parts = [
        "<h2>Conversations 会话</h2>",
        f"<p>{num(stats.count)} conversations ({num(stats.messages)} messages): "
        f"{num(handed)} handed to a person ({pct(handed / stats.count)}); the bot asked "
        f"{num(stats.clarified)} to clarify ({pct(stats.clarified / stats.count)}), and "
        f"{num(stats.clarified_then_bot())} of them went on with the bot and needed no person "
        "afterwards.</p>",
    ]
    if stats.messages < data.rows:
        parts.append(
            f'<p class="note">{num(data.rows - stats.messages)} messages have no session id (a '
            "blank session cell, or a file scored without --session-col) and are not in this "
            "view.</p>"
        )
    turns = stats.handover_turns()
    order = [str(t) for t in range(1, LAST_TURN_BUCKET)] + [f"{LAST_TURN_BUCKET}+", "unknown"]
    order = [t for t in order if t in turns or t != "unknown"]
    if handed:
        chart = charts.bar_chart(
            [f"turn {t}" for t in order], [turns[t] for t in order], "Handover turn"
        )
        parts.append(img("chart-handover-turn", chart, "turn of the handover"))
    rows = [[t, num(turns[t]), pct(turns[t] / handed if handed else 0)] for t in order]
    parts.append(
        table("handover-turns", ["turn", "conversations", "share of handed over"], rows, {1, 2})
    )
    reasons = ranked(stats.handover_reasons())
    rows = [[escape(r), num(n), pct(n / handed if handed else 0)] for r, n in reasons]
    parts.append(
        '<p class="note">Why: the reasons of the message that handed each conversation over '
        "(a message may carry several; messages at that same turn count together).</p>"
        + table(
            "handover-reasons", ["reason", "conversations", "share of handed over"], rows, {1, 2}
        )
    )
    return "".join(parts)
