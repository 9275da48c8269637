"""How an error becomes an HTTP status or an exit code: typed errors that carry both.

Each message says what was expected, what was found and how to fix it, so the CLI prints it as
is (`kefu <command>: <message>`, exit `exit_code`) and the server answers
`{"error": {"code", "message", "field"}}` with `http_status`: one exception handler
(`kefu/serving/server/error_responses.py`) and one CLI wrapper (`kefu/cli/errors.py`) read
these attributes, nothing else decides a status.

Exit codes: 1 = the run failed on its data or its model (the input was understood);
2 = the command was asked something it cannot do (bad argument, bundle, policy or setting);
130 = interrupted. A 5xx never comes from a `KefuError`: 503 means "retry later".
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class KefuError(Exception):
    """Base class: an error the user can act on (never a bug)."""

    code = "error"
    http_status = 400
    exit_code = EXIT_FAILED
    field: str | None = None  # JSON path or option of the offending value, when there is one

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        if field is not None:
            self.field = field
        if code is not None:
            self.code = code


class BundleError(KefuError):
    """A model bundle is missing, incomplete, corrupt or of an unknown schema version."""

    code = "bundle_invalid"
    http_status = 422  # only reachable through POST /v1/admin/reload
    exit_code = EXIT_USAGE
    field = "bundle"


class NotThere(BundleError):
    """What was named to serve is not there: no bundle at the path, or no model of the variant
    in the bundle. The fix is to name another, and how depends on where it was named: by an
    option or a setting, the message ends with the command line's `advice`; by a reload
    request's field, the server gives its own after the same `found` (`model_holder.py`)."""

    advice = ""

    def __init__(self, found: str):
        super().__init__(f"{found}; {self.advice}")
        self.found = found


class BundleNotFound(NotThere):
    """No bundle at the path: nothing there, a file, or a directory without a manifest."""

    advice = (
        "pass --bundle DIR (or KEFU_BUNDLE), or build one (`make model` in a checkout, or "
        "`kefu train`)"
    )


class VariantNotFound(NotThere):
    """The bundle has no model file of the variant asked for."""

    field = "variant"
    advice = "pass --variant with one it has"


class InputError(KefuError):
    """A request or an argument is not acceptable; `field` names where (e.g. messages[2].text)."""

    code = "invalid_input"
    http_status = 422
    exit_code = EXIT_USAGE

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message, field=field, code=code)


class PayloadTooLarge(InputError):
    """More messages than max_batch, or a body over max_body_bytes."""

    http_status = 413


class UnsupportedMediaType(KefuError):
    """A body kefu cannot read as sent: not JSON, or compressed (Content-Encoding)."""

    code = "unsupported_media_type"
    http_status = 415


class Unauthorized(KefuError):
    """Missing or wrong X-API-Key or X-Admin-Token."""

    code = "unauthorized"
    http_status = 401


class RequestTimeout(KefuError):
    """The request body (or, code `head_timeout`, its head) did not arrive within its time limit:
    a slow or stalled client."""

    code = "body_timeout"
    http_status = 408


class HeadTooLarge(KefuError):
    """A request head (request line and header fields) over the size the server reads."""

    code = "head_too_large"
    http_status = 431


class Forbidden(KefuError):
    """The endpoint is disabled by configuration."""

    code = "forbidden"
    http_status = 403


class Conflict(KefuError):
    """The request cannot be carried out in the server's current configuration."""

    code = "conflict"
    http_status = 409


class Unavailable(KefuError):
    """The server cannot take the work now; the client should retry after `Retry-After`."""

    code = "unavailable"
    http_status = 503


class Overloaded(Unavailable):
    """The queue is full."""

    code = "overloaded"


class NotReady(Unavailable):
    """No model is serving (start-up, shutdown)."""

    code = "not_ready"


class DataError(KefuError):
    """A labelled-data file cannot be used; names the file, line and column when known (`unit`:
    "element" when `line` numbers a JSON array's elements, as `Record.unit` says)."""

    code = "data_invalid"
    http_status = 422

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ):
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"{unit} {line}" if line is not None else "",
                f"column {column!r}" if column else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.line, self.column = file, line, column


class OutputError(KefuError):
    """An output file could not be written (disk full, permissions); names the path."""

    code = "output_failed"
    http_status = 422


class RunFailed(KefuError):
    """A run finished and wrote its outputs but failed a check (e.g. too many rows rejected)."""

    code = "run_failed"
    http_status = 422


class TrainingDiverged(KefuError):
    """The training loss stopped being a number; nothing is written."""

    code = "training_diverged"
    http_status = 422


class Interrupted(KefuError):
    """Ctrl-C or SIGINT stopped a command; the message says what was kept. CLI only."""

    code = "interrupted"
    http_status = 503  # never served: a request is not interrupted this way
    exit_code = EXIT_INTERRUPTED

    def __init__(self, kept: str | None = None):
        super().__init__(f"interrupted: {kept}" if kept else "interrupted")


class PolicyError(KefuError):
    """The routing policy file is invalid; raised at start-up, never per request."""

    code = "policy_invalid"
    http_status = 422
    exit_code = EXIT_USAGE
    field = "policy"


class ConfigError(KefuError):
    """A configuration key or value is unknown or out of range."""

    code = "config_invalid"
    http_status = 422
    exit_code = EXIT_USAGE


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line; of a message holding a traceback, its last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[-1] if "Traceback (most recent call last)" in str(exc) else lines[0]
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
