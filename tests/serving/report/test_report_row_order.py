"""The report page is a function of the rows, not of their order: every table ranked by count
breaks ties by name, and the examples and top labels it picks do not go to the first seen."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from support.html_tables import Tables

from kefu.serving.report import build_report

SPELLINGS = ("发票怎么开?", "发票怎么开!", "我的快递怎么还没到啊", "我的快递怎么还没到")


def tied_rows() -> list[dict]:
    """16 scored rows where every count the page ranks ties: 8 invoice and 8 order_status
    messages (4 and 4 on each day, in each queue and in each question cluster), 4 spellings
    of 4 messages each (two of one form, of equal length; two forms of one cluster), two
    emotions the taxonomy does not name, two escalation reasons, two model versions and the
    two reasons of 4 conversations handed over."""
    rows = []
    for i in range(16):
        escalate = i % 4 in (1, 2)
        rows.append(
            {
                "msg_id": f"m{i}",
                "text": SPELLINGS[i % 4],
                "created_at": f"2024-03-0{1 + i // 8} 10:00:00",
                "intent": ("order_status", "invoice")[i // 4 % 2],
                "urgency": "high" if escalate else "low",
                "emotion": ("unnamed_b", "unnamed_a", "neutral", "angry")[i % 4],
                "escalate": escalate,
                "reasons": (["low_confidence"] if i % 4 == 1 else ["complaint"]) * escalate,
                "queue": ("售后组", "售前组")[i // 8],
                "priority": "P1" if escalate else "P3",
                "action": "human" if escalate else "bot",
                "session_id": f"s{i // 2}",
                "session_turn": 1 + i % 2,
                "model_version": ("v2", "v1")[i % 2],
            }
        )
    return rows


def report_page(folder: Path, lines: list[str], monkeypatch) -> str:
    """The page built from `lines` as `scored.jsonl` in `folder`, named alike in every folder,
    without the two things the row order may rightly change: the time it was generated and the
    line numbers of the rejects it cites."""
    folder.mkdir()
    (folder / "scored.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(folder)
    build_report(["scored.jsonl"], Path("report.html"), time_col="created_at")
    page = Path("report.html").read_text(encoding="utf-8")
    page = re.sub(r"generated [^<]*? from", "generated from", page)
    return re.sub(r"; e\.g\. .*?</p>", "</p>", page)


def test_the_same_rows_in_another_order_make_the_same_page(tmp_path, monkeypatch):
    blank_intent = {**tied_rows()[0], "msg_id": "blank", "intent": ""}
    lines = [json.dumps(row, ensure_ascii=False) for row in [*tied_rows(), blank_intent]]
    lines.append('{"msg_id": "broken"')  # ties with the blank intent among the reasons left out
    shuffled = lines.copy()  # as written, every tie's later name comes first; here not all do
    random.Random(7).shuffle(shuffled)
    page = report_page(tmp_path / "as_written", lines, monkeypatch)
    assert report_page(tmp_path / "shuffled", shuffled, monkeypatch) == page
    tables = Tables(page).tables
    assert [row[1] for row in tables["top-intents"][1:]] == ["invoice", "order_status"]
    assert [row[0] for row in tables["escalation-reasons"][1:]] == ["complaint", "low_confidence"]
    assert [row[0] for row in tables["queues"][1:]] == ["售前组", "售后组"]
    assert [row[0] for row in tables["handover-reasons"][1:]] == ["complaint", "low_confidence"]
    assert [row[0] for row in tables["emotion"][1:]][-2:] == ["unnamed_a", "unnamed_b"]
    assert [row[:2] for row in tables["queue-intents"][1:]] == [
        ["售前组", "invoice"],
        ["售前组", "order_status"],
        ["售后组", "invoice"],
        ["售后组", "order_status"],
    ]
    assert [row[4] for row in tables["trends"][1:]] == ["invoice", "invoice"]
    assert [row[4:] for row in tables["repeated-questions"][1:]] == [
        ["发票怎么开!", "invoice 发票 (50.0%)"],
        ["我的快递怎么还没到", "invoice 发票 (50.0%)"],
    ]
    assert (
        "model version <bdi>v1</bdi> (8), <bdi>v2</bdi> (8)" in page
        and "<b>invoice</b>top intent" in page
    )
    assert "left out</b> (not in any number below): invalid_json 1 (" in page


def test_the_rejects_cited_are_the_first_by_file_name_whatever_order_the_files_come_in(tmp_path):
    scored = json.dumps(tied_rows()[0], ensure_ascii=False)
    for name in ("a", "b"):
        lines = f'{scored}\n{{"msg_id": "broken"\n'
        (tmp_path / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    files = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    cited = [
        [reject.file for reject in build_report(order, tmp_path / "r.html").reject_examples]
        for order in (files, files[::-1])
    ]
    assert cited == [files, files]
