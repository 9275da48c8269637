"""How files are read: one frozen set of options, the same for every file of a command."""

from __future__ import annotations

from dataclasses import dataclass

from kefu.tabular.decoding import check_encoding


@dataclass(frozen=True)
class ReadOptions:
    # text encoding of CSV/TSV/JSONL files; None = per file: BOM, then UTF-8, then GB18030
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.encoding:
            object.__setattr__(self, "encoding", check_encoding(self.encoding))

    def fingerprint(self) -> dict[str, object]:
        """What changes how records are cut (part of a scoring run's resume fingerprint)."""
        return {"encoding": self.encoding}


DEFAULT_OPTIONS = ReadOptions()
