"""The fields every corpus kefu builds writes per message (seed and real alike)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CorpusRow:
    id: str
    text: str
    intent: str
    urgency: str
    emotion: str
    source: str  # how the text came to be: "written"/"augmented" (seed) or the real corpus name
