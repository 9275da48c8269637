"""Fake public dev-set files with the real files' column layouts (evaluation tests)."""

from __future__ import annotations

import csv
import json

JD_ROWS = [
    ("sheet", "row", "label_chitchat", "text"),
    ("train", "0", "0", "咨询订单号：<num> 我已经申请退货了 怎么不处理一下"),
    ("train", "1", "1", "您好 人工客服"),
    ("train", "2", "1", "在吗"),
    ("train", "3", "0", "在吗"),  # duplicate text: dropped
    ("test", "0", "0", "发票开了没"),
    ("test", "1", "1", "转人工"),
    ("Sheet2", "0", "0", "只在 Sheet2 里的一行"),  # Sheet2 re-labels train: ignored
]
REVIEW_ROWS = [
    ("label", "review"),
    ("1", "很快，好吃，味道足"),
    ("0", '送餐太慢了,"凉了"'),
    ("0", ""),
    ("1", "不错"),
]
SMP_RECORDS = [
    {"id": 1, "content": "气死我了", "label": "angry"},
    {"id": 2, "content": "好担心啊", "label": "fear"},
    {"id": 3, "content": "今天真开心", "label": "happy"},
    {"id": 4, "content": "会议在三点", "label": "neutral"},
    {"id": 5, "content": "有点难过", "label": "sad"},
    {"id": 6, "content": "居然是这样", "label": "surprise"},
]


def write_fake_public_dev(folder):
    """The four public files with the real files' column layouts and a few rows each."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "jd_chat_vs_business.tsv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows(JD_ROWS)
    for name in ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv"):
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(REVIEW_ROWS)
    (folder / "smp2020_ewect_usual_test.json").write_text(
        json.dumps(SMP_RECORDS, ensure_ascii=False), "utf-8"
    )
    (folder / "README.md").write_text("fake public dev sets for tests\n", "utf-8")
    return folder
