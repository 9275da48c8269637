"""Typed errors shared by every part of kefu.

Each message says what was expected, what was found and how to fix it, so the CLI can print it
as is and the HTTP layer can map it to a 4xx body without inventing words of its own.
"""

from __future__ import annotations


class KefuError(Exception):
    """Base class: an error the user can act on (never a bug)."""

    code = "error"


class BundleError(KefuError):
    """A model bundle is missing, incomplete, corrupt or of an unknown schema version."""

    code = "bundle_invalid"


class InputError(KefuError):
    """A request or an input row is not acceptable; `field` names where (e.g. messages[2].text)."""

    code = "invalid_input"

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.field = field
        if code:
            self.code = code


class DataError(KefuError):
    """A labelled-data file cannot be used; names the file, line and column when known."""

    code = "data_invalid"

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ):
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"line {line}" if line is not None else "",
                f"column {column!r}" if column else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.line, self.column = file, line, column


class OutputError(KefuError):
    """An output file could not be written (disk full, permissions); names the path."""

    code = "output_failed"


class PolicyError(KefuError):
    """The routing policy file is invalid; raised at start-up, never per request."""

    code = "policy_invalid"


class ConfigError(KefuError):
    """A configuration key or value is unknown or out of range."""

    code = "config_invalid"
