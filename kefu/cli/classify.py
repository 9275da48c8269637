"""`kefu classify TEXT...`: triage a few messages from the shell, without a server.

Usage: kefu classify "我的快递三天没动了" "转人工"
       cat messages.txt | kefu classify - --table
       kefu classify "我的退款什么时候到" --turn 2 --previous-intent refund_return

Prints one JSON object per message, the `results[i]` the server would answer (id: the
message's position, 1-based: its argument or its line of standard input), or a table with
`--table`. A message kefu cannot read is printed as `{"id", "error": {"code", "message"}}`
in its place and the others go on; the exit code is then 1. For files, `kefu score`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import typer

from kefu.cli.options import DEFAULT_BUNDLE, BundleDir, PolicyFile, Variant
from kefu.errors import EXIT_FAILED, InputError
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS

if TYPE_CHECKING:
    from kefu.serving.deployment import Deployment
    from kefu.serving.routing import ConversationContext

BATCH = 64  # messages of standard input read and triaged together; output follows each batch
# what an unreadable message is told, by the code of the classifier's InputError
PROBLEMS = {
    "empty_text": "is empty or holds only white space, markup or invisible characters",
    "invalid_text": "is not UTF-8 text (convert the input to UTF-8, e.g. iconv -f gbk -t utf-8)",
}


def command(
    texts: list[str] = typer.Argument(
        None, help="Messages to classify; '-' (or none) reads one message per line of stdin."
    ),
    bundle: BundleDir = DEFAULT_BUNDLE,
    variant: Variant = None,
    policy: PolicyFile = None,
    turn: int = typer.Option(
        None, "--turn", min=1, help="Customer turn number of every message (1-based)."
    ),
    previous_intents: list[str] = typer.Option(
        None,
        "--previous-intent",
        help="Intent of an earlier turn, oldest first (repeat the option; 'none' for a turn "
        "whose intent abstained).",
    ),
    clarifications: int = typer.Option(
        0, "--clarifications", min=0, help="Clarifying questions the bot already asked."
    ),
    table: bool = typer.Option(False, "--table", help="A table for people instead of JSON lines."),
    max_text_chars: int = typer.Option(
        DEFAULT_MAX_TEXT_CHARS,
        "--max-text-chars",
        envvar="KEFU_MAX_TEXT_CHARS",
        min=1,
        help="Longer messages are refused (text_too_long), as the server refuses them.",
    ),
) -> None:
    """Intent, urgency, emotion and route of each message, as POST /v1/classify answers."""
    from kefu.serving.deployment import Deployment
    from kefu.serving.routing import ConversationContext

    previous = [None if intent.lower() == "none" else intent for intent in previous_intents or []]
    context = ConversationContext(turn, previous, clarifications)
    deployment = Deployment.load(
        bundle, variant=variant, policy_path=policy, threads=1, max_text_chars=max_text_chars
    )
    _check_intents(previous, sorted(deployment.policy.intent_groups))
    numbered = _numbered(texts or ["-"])
    printer = _TablePrinter() if table else _JsonPrinter()
    failed = False
    while batch := list(islice(numbered, BATCH)):
        results = _triaged(deployment, batch, context, max_text_chars)
        failed |= any("error" in result for result in results)
        printer.add(batch, results)
    printer.finish()
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _check_intents(previous: list[str | None], intents: list[str]) -> None:
    from kefu.close_words import close_words, did_you_mean

    for intent in previous:
        if intent is not None and intent not in intents:
            hint = did_you_mean(close_words(intent, intents))
            raise InputError(
                f"--previous-intent {intent!r} is not an intent id of the bundle; "
                f"{hint + ' ' if hint else ''}the ids are {', '.join(intents)} (or none)",
                "--previous-intent",
            )


def _numbered(texts: list[str]) -> Iterator[tuple[str, str]]:
    """(id, text) of each message: arguments by position, stdin by line (blank lines skipped)."""
    if texts != ["-"]:
        if "-" in texts:
            raise InputError("'-' reads standard input and takes no other messages", "texts")
        yield from ((str(number), text) for number, text in enumerate(texts, 1))
        return
    if sys.stdin.isatty():
        typer.echo("reading messages from standard input, one per line (Ctrl-D ends)", err=True)
    for number, raw in enumerate(sys.stdin.buffer, 1):
        if number == 1:
            _refuse_wide_encoding(raw)
        line = raw.rstrip(b"\r\n")
        if line:
            yield str(number), line.decode("utf-8", errors="surrogateescape")


def _refuse_wide_encoding(first_line: bytes) -> None:
    """Standard input in UTF-16 or UTF-32 (a Notepad "Unicode" file, Windows' type) is refused
    whole: read as UTF-8, its ASCII-looking bytes were answered as messages about nothing."""
    from kefu.tabular.decoding import WIDE_BOMS

    for mark, wide in WIDE_BOMS.items():
        if first_line.startswith(mark):
            raise InputError(
                f"standard input is {wide.upper()} (it starts with its byte-order mark); "
                f"convert it to UTF-8: iconv -f {wide} -t utf-8 FILE | kefu classify -",
                "texts",
            )


def _triaged(
    deployment: Deployment,
    batch: list[tuple[str, str]],
    context: ConversationContext,
    max_text_chars: int,
) -> list[dict[str, Any]]:
    """The result of each message, or its error in its place."""
    from kefu.serving.inputs import checked_texts
    from kefu.serving.result_json import result_payload

    results: list[dict[str, Any] | None] = [None] * len(batch)
    readable = []
    for index, (message_id, text) in enumerate(batch):
        try:
            checked_texts([text], max_text_chars)
            readable.append(index)
        except InputError as exc:
            results[index] = {"id": message_id, "error": _error(exc, text, max_text_chars)}
    texts = [batch[index][1] for index in readable]
    triaged = deployment.triage(texts, [context] * len(texts), check_texts=False)
    for index, triage in zip(readable, triaged, strict=True):
        results[index] = result_payload(batch[index][0], triage)
    return [result for result in results if result is not None]


def _error(exc: InputError, text: str, max_text_chars: int) -> dict[str, str]:
    if exc.code == "text_too_long":
        problem = (
            f"has {len(text):,} characters; the limit is {max_text_chars:,} (--max-text-chars)"
        )
    else:
        problem = PROBLEMS.get(exc.code, str(exc))
    return {"code": exc.code, "message": f"the message {problem}"}


class _JsonPrinter:
    """One JSON line per message, written as each batch is answered (a pipe sees them at once)."""

    def add(self, batch: list[tuple[str, str]], results: list[dict[str, Any]]) -> None:
        for result in results:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def finish(self) -> None:
        pass


class _TablePrinter:
    """Rows gathered, then one table: a terminal shows it at its width."""

    def __init__(self) -> None:
        from rich.table import Table

        self.table = Table("#", "message", "intent", "urgency", "emotion", "route", "reasons")

    def add(self, batch: list[tuple[str, str]], results: list[dict[str, Any]]) -> None:
        from rich.text import Text

        for (message_id, text), result in zip(batch, results, strict=True):
            # a Text, not a str, which rich reads as markup: "[/b]" failed the table and
            # "订单[order 123]" lost its bracket
            shown = Text(text if len(text) <= 40 else text[:39] + "…")
            if "error" in result:
                self.table.add_row(message_id, shown, f"error: {result['error']['code']}")
                continue
            route = result["route"]
            self.table.add_row(
                message_id,
                shown,
                _head(result["intent"]),
                _head(result["urgency"]),
                _head(result["emotion"]),
                f"{route['action']} {route['priority']} {route['queue']}",
                ", ".join(route["reasons"]),
            )

    def finish(self) -> None:
        from rich.console import Console

        Console().print(self.table)


def _head(head: dict[str, Any]) -> str:
    abstained = " (abstain)" if head["abstain"] else ""
    return f"{head['label']} {head['confidence']:.2f}{abstained}"
