"""What `kefu score --engine ray` raises for an error that came through Ray: the local engine's rule.

The CLI's rule (kefu/cli/errors.py) holds for both engines: an error the user can act on (kefu's
own, a read or write the system refused: `OSError`) is one line; anything else is a bug in kefu
and keeps its traceback, with a note of what to do when it was raised in another process (the
local engine's `worker_pools.ROUTER_FAILED`). Through Ray that takes some unwrapping:

- A task's exception reaches the driver as `RayTaskError(<its type>)`: an instance of the
  original type whose text is the remote traceback, and whose `cause` is the original. kefu's
  own error is taken out and raised as its one line. Ray Data appends its retry advice to the
  original's message ("Failed to ... after 1/1 attempts ... if you believe this to be
  transient."): advice about Ray's retries, not about the input, so it is cut off again.
- Ray Data wraps what a map function raises (the scoring actors') in a `UserCodeException`
  holding only the traceback's text, kefu's own errors included; the engine sets
  `raise_original_map_exception` (`keep_task_errors`) so the original arrives as from any task.
- A bug in a task is raised as Ray raised it, its text the task's traceback (where it happened,
  on which node), with `RAY_TASK_FAILED` as a note.
- Ray's own failures (a worker or actor that died, an object lost, a node gone) are not kefu's
  bugs: one line, `the Ray run failed: <Type>: <message>`, as the local engine's "a scoring
  worker process died".
- A bug raised in the driver itself keeps its traceback, as the local engine's main process does.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from kefu.errors import KefuError, one_line

RAY_TASK_FAILED = (
    "(raised in a Ray task of `kefu score --engine ray`, its traceback above: a bug in kefu; "
    "a Ray run keeps nothing: once fixed, rerun the same command, or run it with --engine local)"
)
# What Ray Data appends to the message of an exception a task raised, after its last attempt
Raised = TypeVar("Raised", bound=BaseException)
_RETRY_ADVICE = re.compile(r"\nFailed to .+ after \d+/\d+ attempts \(total backoff .*", re.DOTALL)


def keep_task_errors(context: Any) -> None:
    """Set Ray Data's `context` to raise what a map function raised, not a `UserCodeException`
    with its text only. An older Ray without the option wraps it still: then a kefu error in a
    scoring actor is reported as a bug, traceback and all, never lost."""
    context.raise_original_map_exception = True


def reported(exc: Exception) -> Exception:
    """What `run_ray` raises for `exc`, raised by the run: kefu's error or a one-line
    `KefuError` for what the user can act on, or `exc` itself for a bug (see above)."""
    from ray.exceptions import RayError, RayTaskError, UserCodeException

    seen: set[int] = set()
    current: BaseException | None = exc
    in_task = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RayTaskError):
            in_task = True
            current = current.cause
            continue
        if isinstance(current, KefuError):
            return _without_retry_advice(current)
        if isinstance(current, OSError):
            return ray_run_failed(_without_retry_advice(current))
        if isinstance(current, RayError) and not isinstance(current, UserCodeException):
            return KefuError(f"the Ray run failed: {one_line(current)}")
        if in_task:  # a bug (or what Ray Data wrapped) in the task
            break
        current = current.__cause__
    if in_task:
        exc.add_note(RAY_TASK_FAILED)
    return exc


def ray_run_failed(error: OSError) -> KefuError:
    """The one line of a read or write the system refused (its type, message and file).

    A scoring actor raises it in place of the OSError itself: Ray Data writes its retry advice
    into the arguments of an exception a map function raised, which for an OSError takes the
    place of the file's name once it is pickled to the driver."""
    return KefuError(f"the Ray run failed: {one_line(error)}")


def _without_retry_advice(error: Raised) -> Raised:
    if error.args and isinstance(error.args[0], str):
        error.args = (_RETRY_ADVICE.sub("", error.args[0]), *error.args[1:])
    return error
