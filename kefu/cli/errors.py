"""The one CLI wrapper: a `KefuError` becomes one line on stderr and its exit code.

`kefu <command>: <message>` and `exit_code` come from the error itself (`kefu/errors.py`), so
every command reports the same way; Ctrl-C is `Interrupted` (exit 130) unless the command
raised its own, which says what was kept; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from kefu.errors import Interrupted, KefuError

Command = TypeVar("Command", bound=Callable[..., Any])


def reports_errors(name: str) -> Callable[[Command], Command]:
    """Decorate a typer command so its `KefuError`s print as `kefu NAME: message`."""

    def wrap(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                try:
                    return command(*args, **kwargs)
                except KeyboardInterrupt:
                    raise Interrupted() from None
            except KefuError as exc:
                typer.echo(f"kefu {name}: {exc}", err=True)
                raise typer.Exit(exc.exit_code) from None

        return run  # type: ignore[return-value]

    return wrap
