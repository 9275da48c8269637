"""Hotspot report over scored files: `kefu report SCORED... -o report.html`.

Usage: `data = build_report(["scored.parquet"], Path("report.html"), time_col="created_at")`.

Reads what `kefu score` wrote (any of its formats), streams it through counters
(`aggregate.py`) and near-duplicate question clustering (`clusters.py`), and writes one HTML
file whose charts are embedded PNGs (`charts.py`, `render.py`): it opens offline, can be mailed
and archived, and needs no server.
"""

from __future__ import annotations

from pathlib import Path

from kefu.errors import ConfigError, DataError, KefuError
from kefu.serving.report.aggregate import ReportData
from kefu.serving.report.charts import cjk_font
from kefu.serving.report.load import read_scored, scored_files
from kefu.serving.report.render import Labels, render
from kefu.serving.taxonomy import load_taxonomy
from kefu.tabular import ReadOptions, rejects_file
from kefu.tabular.output import check_writable, replacing

PERIODS = ("auto", "day", "week", "month")
# kefu score writes a text's line breaks as they came (a JSONL or Parquet input holds messages
# of any number of lines), so a record of its CSV output may span far more lines than the
# inputs' broken-quote guard allows; the quote of kefu's own output always closes.
SCORED_RECORD_LINES = 1_000


def build_report(
    inputs: list[str],
    output: Path,
    *,
    text_col: str = "text",
    time_col: str | None = None,
    top_n: int = 10,
    period: str = "auto",
    title: str = "kefu hotspot report 客服热点报告",
    encoding: str | None = None,
    max_record_lines: int = SCORED_RECORD_LINES,
) -> ReportData:
    if period not in PERIODS:
        raise ConfigError(f"--period must be one of {PERIODS}, got {period!r}")
    if top_n < 1:
        raise ConfigError(f"--top-n must be >= 1, got {top_n}")
    if output.suffix.lower() not in (".html", ".htm") and not output.is_dir():
        raise DataError("the report is HTML; name the output *.html", file=str(output))
    options = ReadOptions(encoding=encoding, max_record_lines=max_record_lines)
    files = scored_files(inputs, text_col, time_col, options)
    check_writable(output, "report.html")  # a folder for -o, found before any row is read
    data = ReportData(files=[source.display_name for source in files])
    # every row left out is in OUTPUT.rejects.jsonl, as with kefu score (empty when none is)
    rejects_path = rejects_file(output)
    with replacing(rejects_path) as tmp, tmp.open("w", encoding="utf-8") as rejects:
        for source in files:
            for batch in read_scored(source, text_col, time_col, options):
                data.add(batch)
                rejects.writelines(reject.to_line() for reject in batch.rejects)
    data.rejects_file = str(rejects_path)
    try:
        taxonomy = load_taxonomy()
    except KefuError:
        taxonomy = None  # label names are a nicety; ids still tell the story
    page = render(
        data,
        title=title,
        top_n=top_n,
        period=period,
        labels=Labels(taxonomy, cjk_font() is not None),
    )
    with replacing(output) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return data


__all__ = ["ReportData", "build_report"]
