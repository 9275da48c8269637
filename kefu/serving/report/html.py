"""The HTML pieces every report section is built from: tables with ids, embedded images,
numbers and shares."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def table(
    table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def img(img_id: str, png_base64: str, alt: str) -> str:
    return f'<img id="{img_id}" alt="{escape(alt)}" src="data:image/png;base64,{png_base64}">'


def isolated(value: str) -> str:
    """A value from the data inside running text, escaped and bidi-isolated: a right-to-left
    override (U+202E) in a file name or cell would otherwise reverse the rest of its line, so
    a model version or a count would read backwards. A table cell isolates its own."""
    return f"<bdi>{escape(value)}</bdi>"


def num(value: int) -> str:
    return f"{value:,}"


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"
