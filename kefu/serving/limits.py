"""Limits shared by the HTTP server, batch scoring and the Python API, so one text is treated
alike by all three.

A text longer than `max_text_chars` characters is rejected, not truncated, everywhere: the
server answers 422 `text_too_long` (`KEFU_MAX_TEXT_CHARS`), `kefu score` writes a reject with
reason `text_too_long` (`--max-text-chars`, same environment variable). The Python API
(`Classifier`, `Deployment`) raises `InputError` `text_too_long` over the same default, which
its `max_text_chars` argument moves; it reads no environment variable. Texts within the limit
but longer than the model window are still scored, head+tail truncated, and flagged
`truncated`. A limit, rather than silent truncation, because a 30,000-character "message" is
almost always a paste or a broken record, and its label would describe a fragment of it.
"""

from __future__ import annotations

DEFAULT_MAX_TEXT_CHARS = 20_000
MAX_TEXT_CHARS_ENV = "KEFU_MAX_TEXT_CHARS"
