"""How files are read: one frozen set of options, the same for every file of a command."""

from __future__ import annotations

from dataclasses import dataclass

from kefu.errors import ConfigError
from kefu.tabular.decoding import check_encoding

# A CSV record longer than this is suspicious: a quote that never closed swallows the lines
# after it. A record holds the text, at most the serving default of KEFU_MAX_TEXT_CHARS (the
# longest text the API accepts), and the other columns: a text the limit allows must never be
# refused for its record's length.
OTHER_COLUMNS_CHARS = 10_000
MAX_RECORD_CHARS = 20_000 + OTHER_COLUMNS_CHARS
# Messages with line breaks span a few physical lines; a record over more is a broken quote far
# more often than a message (raise it for data with long pasted order cards).
MAX_RECORD_LINES = 5


@dataclass(frozen=True)
class ReadOptions:
    # text encoding of CSV/TSV/JSONL files; None = per file: BOM, then UTF-8, then GB18030
    encoding: str | None = None
    # a CSV/TSV record over more physical lines than this is rejected (see textrows.py)
    max_record_lines: int = MAX_RECORD_LINES
    # ... and one longer than this many characters
    max_record_chars: int = MAX_RECORD_CHARS
    # what a header that does not decode tells the user to do; None: pass the other --encoding.
    # A reader whose command has no --encoding for the file says what the user can do instead.
    encoding_fix: str | None = None

    def __post_init__(self) -> None:
        if self.encoding:
            object.__setattr__(self, "encoding", check_encoding(self.encoding))
        for name in ("max_record_lines", "max_record_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}"
                )

    def fingerprint(self) -> dict[str, object]:
        """What changes how records are cut (part of a scoring run's resume fingerprint)."""
        return {
            "encoding": self.encoding,
            "max_record_lines": self.max_record_lines,
            "max_record_chars": self.max_record_chars,
        }


DEFAULT_OPTIONS = ReadOptions()
