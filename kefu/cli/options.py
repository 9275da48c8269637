"""Options several commands declare alike, declared once so their names, help and checks agree.

`BundleDir`, `Variant`, `PolicyFile`, `TextColumn` and `MaxRecordLines` are typer option types
(`text_col: TextColumn = "text"`). `LabelledFile` is the argument of `kefu data validate` and
`kefu data split`, and `LabelledFileOptions` the set they read it with, added to a command by
`@takes_labelled_file_options` and handed to it as one value.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from kefu.training.data.loader import LabelledData

DEFAULT_BUNDLE = Path("models/default")
BundleDir = Annotated[
    Path, typer.Option("--bundle", envvar="KEFU_BUNDLE", help="Bundle directory.")
]
Variant = Annotated[
    str | None, typer.Option("--variant", help="fp32 or int8 (default: the bundle's).")
]
PolicyFile = Annotated[
    Path | None, typer.Option("--policy", help="Routing policy YAML overriding the bundle's.")
]
TextColumn = Annotated[str, typer.Option(help="Column holding the message text.")]
MaxRecordLines = Annotated[
    int,
    typer.Option(min=1, help="Reject a CSV/TSV record over more physical lines (a broken quote)."),
]
LABEL_HELP = "Column holding the {head} label: an id or its Chinese name (no column: unlabelled)."
LabelledFile = Annotated[
    Path,
    typer.Argument(
        help="JSONL, CSV, TSV (optionally .gz or .zst), Parquet or xlsx file of labelled messages."
    ),
]


@dataclass(frozen=True)
class LabelledFileOptions:
    """Where a labelled file keeps each column, and how long a CSV/TSV record may run."""

    text_col: TextColumn = "text"
    intent_col: Annotated[str, typer.Option(help=LABEL_HELP.format(head="intent"))] = "intent"
    urgency_col: Annotated[str, typer.Option(help=LABEL_HELP.format(head="urgency"))] = "urgency"
    emotion_col: Annotated[str, typer.Option(help=LABEL_HELP.format(head="emotion"))] = "emotion"
    id_col: Annotated[
        str, typer.Option(help="Column holding the row id (without one: the line number).")
    ] = "id"
    max_record_lines: MaxRecordLines = 5

    def load(self, file: Path, encoding: str | None) -> LabelledData:
        from kefu.training.data.loader import load_labelled

        return load_labelled(file, encoding=encoding, **dataclasses.asdict(self))


def takes_labelled_file_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with LabelledFileOptions' fields as options of its own, after its other ones.

    typer builds a command's options from its signature and has no option groups, so the
    fields join the signature here and reach `command` as one `file_options` argument.
    """
    fields = dataclasses.fields(LabelledFileOptions)
    hints = typing.get_type_hints(LabelledFileOptions, include_extras=True)
    shared = [
        inspect.Parameter(
            item.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=item.default,
            annotation=hints[item.name],
        )
        for item in fields
    ]
    signature = inspect.signature(command, eval_str=True)
    own = [param for param in signature.parameters.values() if param.name != "file_options"]

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        file_options = LabelledFileOptions(**{item.name: values.pop(item.name) for item in fields})
        return command(**values, file_options=file_options)

    run.__signature__ = signature.replace(parameters=[*own, *shared])  # type: ignore[attr-defined]
    return run
