"""`ReportData` -> one self-contained HTML page: inline CSS, charts as data: URIs, no scripts.

Every table has an id (`top-intents`, `urgency`, `emotion`, `escalation-reasons`, `queues`,
the routing tables of `routing_view.py`, `repeated-questions`, `trends`) and every chart an
`img` with id `chart-*`, so tests and scrapers can find them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from kefu.serving.report import charts
from kefu.serving.report.aggregate import NEGATIVE_EMOTIONS, ReportData
from kefu.serving.report.clusters import QuestionCluster
from kefu.serving.report.html import img as _img
from kefu.serving.report.html import isolated as _isolated
from kefu.serving.report.html import num as _num
from kefu.serving.report.html import pct as _pct
from kefu.serving.report.html import table as _table
from kefu.serving.report.ranking import ranked
from kefu.serving.report.routing_view import (
    MAX_QUEUES,
    conversation_section,
    queues_not_shown,
    routing_section,
    without_column,
)
from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.tabular import REASONS

CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","PingFang SC","Microsoft YaHei",sans-serif;
margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #2f6db5;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#666;font-size:.9rem}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{background:#f3f6fb;border-radius:8px;padding:.8rem 1.2rem;min-width:10rem}
.card b{display:block;font-size:1.6rem}table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:left;vertical-align:top}
td,.meta{overflow-wrap:anywhere}td.n{white-space:nowrap}
th{background:#f3f6fb}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.6rem 0}.note{color:#666;font-size:.85rem}
"""


MAX_TREND_ROWS = 120  # past this many periods, the trends table lists only those with messages


class Labels:
    """Display text of label ids: "名称 id" in charts when a CJK font exists, the id otherwise."""

    def __init__(self, taxonomy: Taxonomy | None, cjk: bool):
        self.names = {head: taxonomy.names(head) for head in HEADS} if taxonomy else {}
        self.cjk = cjk

    def name(self, head: str, label: str) -> str:
        return self.names.get(head, {}).get(label, "")

    def chart(self, head: str, label: str) -> str:
        name = self.name(head, label)
        return f"{name} {label}" if self.cjk and name else label


def render(
    data: ReportData,
    *,
    title: str,
    top_n: int,
    period: str,
    labels: Labels,
    top_questions: int = 10,
) -> str:
    sections = [
        _header(data, title),
        _intents(data, top_n, labels),
        _head_section(data.urgency, "urgency", "Urgency 紧急度", data.rows, labels),
        _head_section(data.emotions, "emotion", "Emotion 情绪", data.rows, labels),
        _escalation(data),
        routing_section(data, labels),
        conversation_section(data),
        _questions(data.questions.top(top_questions), data, labels),
    ]
    if data.days or data.undated:
        sections.append(_trends(data, period, labels))
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _header(data: ReportData, title: str) -> str:
    versions = (
        ", ".join(f"{_isolated(v)} ({n:,})" for v, n in ranked(data.model_versions)) or "unknown"
    )
    negative = sum(data.emotions[e] for e in NEGATIVE_EMOTIONS)
    top_intent = ranked(data.intents)[0][0] if data.intents else "-"
    cards = [
        ("messages", f"{data.rows:,}"),
        ("escalation rate", _pct(data.escalation_rate)),
        ("top intent", escape(top_intent)),
        ("angry or dissatisfied", _pct(negative / data.rows if data.rows else 0.0)),
    ]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    left_out = (
        f'<p class="meta"><b>{data.rejected:,} record(s) left out</b> (not in any number '
        f"below): {escape(left_out_reasons(data))}; e.g. "
        + "; ".join(_isolated(reject.describe()) for reject in data.reject_examples[:3])
        + "</p>"
        if data.rejected
        else ""
    )
    mixed = (  # files scored before and after a retraining, given together
        f'<p class="meta"><b>{len(data.model_versions)} model versions</b>: every number below '
        "counts their scores together; to compare them, report each version's files apart.</p>"
        if len(data.model_versions) > 1
        else ""
    )
    return (
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">generated {generated} from {len(data.files)} file(s): '
        f"{', '.join(map(_isolated, data.files))}; model version {versions}</p>"
        + mixed
        + left_out
        + '<div class="cards">'
        + "".join(f'<div class="card"><b>{value}</b>{escape(name)}</div>' for name, value in cards)
        + "</div>"
    )


def left_out_reasons(data: ReportData) -> str:
    """ "invalid_json 2 (the JSONL line is not valid JSON), ...": how many of each reason."""
    return ", ".join(
        f"{reason} {count:,} ({REASONS.get(reason, reason)})"
        for reason, count in ranked(data.rejected_by_reason)
    )


def _intents(data: ReportData, top_n: int, labels: Labels) -> str:
    ranked_intents = ranked(data.intents)
    chart = charts.bar_chart(
        [labels.chart("intent", k) for k, _ in ranked_intents],
        [v for _, v in ranked_intents],
        "Intent distribution",
    )
    rows = [
        [
            str(rank),
            escape(intent),
            escape(labels.name("intent", intent)),
            _num(count),
            _pct(count / data.rows),
            _pct(data.escalated_by_intent[intent] / count),
        ]
        for rank, (intent, count) in enumerate(ranked_intents[:top_n], start=1)
    ]
    table = _table(
        "top-intents",
        ["#", "intent", "名称", "messages", "share", "escalated"],
        rows,
        numeric={0, 3, 4, 5},
    )
    return f"<h2>Intents 意图 (TOP {top_n})</h2>{_img('chart-intent', chart, 'intent distribution')}{table}"


def _head_section(counts: Counter[str], head: str, heading: str, total: int, labels: Labels) -> str:
    # the taxonomy's order (when it loads), then labels it does not name, as `ranked` orders
    order = list(labels.names.get(head, {}))
    order += [k for k, _ in ranked(counts) if k not in order]
    title = f"{head.capitalize()} distribution"  # ASCII: the chart may have no CJK font
    chart = charts.bar_chart(
        [labels.chart(head, k) for k in order], [counts[k] for k in order], title
    )
    rows = [
        [
            escape(k),
            escape(labels.name(head, k)),
            _num(counts[k]),
            _pct(counts[k] / total if total else 0),
        ]
        for k in order
    ]
    table = _table(head, [head, "名称", "messages", "share"], rows, numeric={2, 3})
    return (
        f"<h2>{escape(heading)}</h2>{_img(f'chart-{head}', chart, f'{head} distribution')}{table}"
    )


def _escalation(data: ReportData) -> str:
    reasons = ranked(data.reasons)
    parts = [
        "<h2>Escalation 转人工/升级</h2>",
        f"<p>{_num(data.escalated)} of {_num(data.rows)} messages escalate ({_pct(data.escalation_rate)}). "
        "A message may carry several reasons.</p>",
    ]
    if reasons:
        chart = charts.bar_chart(
            [k for k, _ in reasons], [v for _, v in reasons], "Escalation reasons"
        )
        parts.append(_img("chart-reasons", chart, "escalation reasons"))
    rows = [
        [escape(k), _num(v), _pct(v / data.escalated if data.escalated else 0)] for k, v in reasons
    ]
    parts.append(
        _table(
            "escalation-reasons", ["reason", "messages", "share of escalated"], rows, numeric={1, 2}
        )
    )
    busiest = ranked(data.queues)
    queues = [[escape(k), _num(v), _pct(v / data.rows)] for k, v in busiest[:MAX_QUEUES]]
    parts.append(_table("queues", ["queue 队列", "messages", "share"], queues, numeric={1, 2}))
    parts.append(queues_not_shown(dict(busiest[MAX_QUEUES:])))
    unqueued = data.rows - sum(data.queues.values())
    parts.append(without_column(unqueued, "queue", "are not listed (the shares are of all)"))
    return "".join(parts)


def _questions(clusters: Sequence[QuestionCluster], data: ReportData, labels: Labels) -> str:
    rows = [
        [
            str(rank),
            _num(cluster.count),
            _pct(cluster.count / data.rows if data.rows else 0),
            _num(cluster.variants),
            escape(cluster.example),
            f"{escape(cluster.intent)} {escape(labels.name('intent', cluster.intent))} ({_pct(cluster.intent_share)})",
        ]
        for rank, cluster in enumerate(clusters, start=1)
    ]
    table = _table(
        "repeated-questions",
        ["#", "messages", "share", "variants", "example", "main intent"],
        rows,
        numeric={0, 1, 2, 3},
    )
    note = (
        '<p class="note">Near-duplicate clusters: texts normalised (digits, order placeholders, '
        "punctuation folded), grouped by character-bigram MinHash with Jaccard &ge; 0.6."
    )
    if data.questions.pruned:
        note += (
            f" {data.questions.pruned:,} messages whose text matched no other one in memory "
            "were dropped to bound memory (not in these counts)."
        )
    if not clusters:  # all texts differ (or there are none): "TOP 0" would read as a fault
        note += " No question was asked more than once."
    heading = f"TOP {len(clusters)} repeated questions" if clusters else "Repeated questions"
    return f"<h2>{heading} 高频重复问题</h2>{note}</p>{table}"


def _trends(data: ReportData, period: str, labels: Labels) -> str:
    unit, periods = data.periods(period)
    parts = [f"<h2>Trends by {unit} 趋势</h2>"]
    if data.undated:
        parts.append(
            f'<p class="note">{data.undated:,} messages have no readable time and are left out.</p>'
        )
    if not periods:
        return "".join(parts)
    starts = list(periods)
    top = [intent for intent, _ in ranked(data.intents)[:5]]
    volume = {"all messages": [s.messages for s in periods.values()]}
    volume |= {labels.chart("intent", i): [s.intents[i] for s in periods.values()] for i in top}
    emotions = list(labels.names.get("emotion", {})) or sorted(data.emotions)
    shares = {
        labels.chart("emotion", e): [
            s.emotions[e] / s.messages if s.messages else 0 for s in periods.values()
        ]
        for e in emotions
    }
    rates = {"escalation rate": [s.escalation_rate for s in periods.values()]}
    parts.append(
        _img(
            "chart-trend-volume",
            charts.line_chart(starts, volume, f"Messages per {unit}", "messages"),
            "volume",
        )
    )
    parts.append(
        _img(
            "chart-trend-emotion",
            charts.line_chart(starts, shares, f"Emotion share per {unit}", "share", True),
            "emotion",
        )
    )
    parts.append(
        _img(
            "chart-trend-escalation",
            charts.line_chart(starts, rates, f"Escalation rate per {unit}", "rate", True),
            "escalation",
        )
    )
    listed = periods
    if len(periods) > MAX_TREND_ROWS:  # a long span: the charts show the quiet periods
        listed = {start: s for start, s in periods.items() if s.messages}
        parts.append(
            f'<p class="note">{len(periods) - len(listed):,} of {len(periods):,} periods have no '
            "messages and are not listed below (the charts show them as zero).</p>"
        )
    rows = [
        [
            start.isoformat(),
            _num(s.messages),
            _pct(s.escalation_rate),
            _pct(s.negative_share),
            escape(ranked(s.intents)[0][0]) if s.intents else "-",
        ]
        for start, s in listed.items()
    ]
    parts.append(
        _table(
            "trends",
            [unit, "messages", "escalated", "angry or dissatisfied", "top intent"],
            rows,
            numeric={1, 2, 3},
        )
    )
    return "".join(parts)
