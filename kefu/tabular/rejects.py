"""The one shape of a row that could not be used, whoever read it (score, train, validate, report).

A reject names where the row is (`file`, `line` .. `end_line`), which row it is (`id`, when the
id column could be read), what is wrong (`column`, `reason` code) and what was found
(`detail`, in words). It never holds the row's text: rejects files travel further than the
data (tickets, chat), and the line number finds the row in the file. What that number counts
comes from the record (`unit`: "element" for a JSON array), so messages say "element 3" where
a rejects file keeps its one schema (`line`, whatever the format).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kefu.tabular.output import replacing
from kefu.tabular.textrows import Record

# kefu score and kefu report write the rows they leave out beside their output, OUTPUT + this
REJECTS_SUFFIX = ".rejects.jsonl"


def rejects_file(output: Path) -> Path:
    return Path(f"{output}{REJECTS_SUFFIX}")


REASONS = {
    # the record itself
    "invalid_json": "the JSONL line is not valid JSON",
    "not_an_object": "the JSONL line is not a JSON object",
    "malformed_row": "the CSV/TSV record has a different number of fields than the header",
    "unclosed_quote": "a quoted CSV field does not close properly; the lines after are re-read",
    "record_too_long": "the record spans more lines or characters than the limits allow",
    "repeated_header": "a CSV/TSV record repeats the header, as where files were joined into one",
    "reserved_column": "a JSONL record has a key starting with _kefu_, which kefu score reserves",
    # the message text
    "missing_text": "the text field is absent or null",
    "not_text": "the text field holds a number, boolean, list or object, not a string",
    "empty_text": "the text is empty or holds only white space, markup or invisible characters",
    "text_too_long": "the text is longer than kefu score's --max-text-chars (the server's limit)",
    "undecodable_text": "the text holds bytes that are not valid in the file's encoding",
    # labelled data (kefu data validate, train, evaluate)
    "unknown_label": "a label is not in the taxonomy",
    "no_label": "the row has no label for any head",
    "duplicate_id": "the id was already used by an earlier row",
    # scored files (kefu report)
    "missing_score": (
        "a score cell (intent, urgency, emotion, escalate) is blank or unreadable, "
        "or reasons is unreadable"
    ),
}


@dataclass(frozen=True)
class Reject:
    file: str
    line: int  # 1-based: physical line (CSV, TSV, JSONL), row (Parquet) or JSON array element
    end_line: int  # the record's last line; > line when a quoted field spans lines
    id: Any  # the row's id (str, int or None), when the id column could be read
    column: str | None  # the column at fault; None when the whole record is
    reason: str  # a key of REASONS
    detail: str  # what was expected and found
    unit: str = "line"  # how messages name `line` (`Record.unit`); not in rejects files

    @classmethod
    def of(
        cls, file: str, record: Record, id: Any, column: str | None, reason: str, detail: str
    ) -> Reject:
        """The reject of `record`, where it is and in its file's unit."""
        return cls(file, record.line, record.end_line, id, column, reason, detail, record.unit)

    def describe(self) -> str:
        lines = (
            f"{self.unit} {self.line}"
            if self.end_line == self.line
            else f"{self.unit}s {self.line}-{self.end_line}"
        )
        column = f", column {self.column!r}" if self.column else ""
        return f"{self.file}, {lines}{column}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """The rejects file's fields, the same for every format (`line` of an array: element)."""
        fields = asdict(self)
        del fields["unit"]
        return fields

    def to_line(self) -> str:
        """One line of a rejects file (JSON Lines, newline included)."""
        return json.dumps(self.to_dict(), ensure_ascii=False) + "\n"


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> int:
    """Write rejects as JSON Lines (`Reject.to_dict()`, in order); returns how many."""
    count = 0
    with replacing(Path(path)) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(reject.to_line())
            count += 1
    return count
