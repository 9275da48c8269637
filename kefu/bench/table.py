"""One table of a run, for the terminal (rich) and for markdown (benchmarks/README.md).

The rows come from `rows.table_rows`; this module only lays them out.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from kefu.bench.cells import COLUMNS
from kefu.bench.rows import table_rows


def rich_table(results: dict[str, Any]) -> Table:
    bundle = results.get("bundle", {})
    machine = results.get("machine", {})
    title = (
        f"kefu bench {results.get('date', '')}{' (quick)' if results.get('quick') else ''}: "
        f"{bundle.get('model_version', '?')} on {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
    )
    table = Table(title=title, show_lines=False)
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("part", "measure") else "right")
    for section in table_rows(results):
        for row in section:
            table.add_row(*row.cells())
        table.add_section()
    return table


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 2 + "---:|" * 3]
    for section in table_rows(results):
        for index, row in enumerate(section):
            cells = row.cells()
            cells[0] = f"**{cells[0]}**" if index == 0 else ""
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
