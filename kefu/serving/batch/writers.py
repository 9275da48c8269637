"""The final merge: committed parts, in order, into one Parquet, CSV, JSONL or xlsx output file.

`merge_scored` is the merge both engines end with (the local engine's committed parts, the Ray
engine's staged chunks): with session options, the rows are routed with their conversations'
context on the way (`session_routing.SessionRouter`), then written by `write_output`.

Parts are read one at a time, so the merge holds at most `ROW_GROUP_ROWS` rows. Inputs may
disagree on columns (a later file adds one) or on types (a JSONL column that is 1 in one chunk
and 1.5 in another): the output schema is the union of the input columns in order of first
appearance, types promoted when Arrow can (int -> float) and text otherwise, then the score
columns. CSV cells are text: `reasons` and `candidates` are joined with ";" and nested values
become JSON; `excel_csv` starts the file with a UTF-8 byte-order mark, without which Excel on
Chinese Windows reads UTF-8 as GBK. xlsx cells follow `kefu.tabular.xlsx.xlsx_cell`.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kefu.serving.batch.scoring import SCORE_COLUMNS, SCORE_SCHEMA
from kefu.serving.batch.sessions import without_internal
from kefu.tabular.output import replacing
from kefu.tabular.xlsx import write_xlsx

if TYPE_CHECKING:
    from kefu.serving.batch.plan import RunPlan
    from kefu.serving.batch.session_routing import SessionRouter

ROW_GROUP_ROWS = 65_536  # rows per Parquet row group: small groups make readers slow
CSV_LIST_SEPARATOR = ";"  # reason codes and intent ids never contain it


def unified_schema(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """Input columns (union, first-seen order, promoted types) followed by the score columns."""
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            if field.name in SCORE_COLUMNS:
                continue
            seen = types.setdefault(field.name, [])
            if field.type not in seen and not pa.types.is_null(field.type):
                seen.append(field.type)
    fields = [pa.field(name, _promote(name, found)) for name, found in types.items()]
    return pa.schema(fields + list(SCORE_SCHEMA))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly the columns of `schema`: missing ones null, types cast."""
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        columns.append(column if column.type == field.type else _cast(column, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def merge_scored(
    parts: Callable[[], Iterable[pa.Table]],
    schemas: Iterable[pa.Schema],
    scored: int,
    plan: RunPlan,
    output: Path,
    router: SessionRouter | None = None,
    hint: str = "",
) -> None:
    """Write the scored parts of a run to `output`, each row routed with its conversation's
    context first when `router` is given.

    `parts()` yields the parts in input order, scored rows only, with the columns kefu carries
    in flight (`_kefu_*`, dropped here); it is called twice with a router, which partitions the
    rows before it routes them. `schemas` are the parts' schemas; `scored` counts their rows,
    and a merge that writes another number is a bug, raised.
    """
    schema = unified_schema(without_internal(found) for found in schemas)
    routed = router.routed(parts, scored) if router is not None else parts()
    rows = write_output(
        routed, schema, output, plan.output_format, excel_csv=plan.excel_csv, hint=hint
    )
    if rows != scored:
        raise RuntimeError(f"merge wrote {rows} rows but {scored} were scored")


def write_output(
    parts: Iterable[pa.Table],
    schema: pa.Schema,
    path: Path,
    fmt: str,
    excel_csv: bool = False,
    hint: str = "",
) -> int:
    """Write the parts to `path` (via a temp name, renamed at the end); returns rows written.

    A failed write (disk full) removes the temp file and raises `OutputError` naming `path`,
    followed by `hint` (what to run next).
    """
    with replacing(path, hint) as tmp:
        return _write(parts, schema, tmp, fmt, excel_csv)


def _write(
    parts: Iterable[pa.Table], schema: pa.Schema, tmp: Path, fmt: str, excel_csv: bool
) -> int:
    rows = 0
    tables = (conform(part, schema) for part in parts)
    if fmt == "parquet":
        with pq.ParquetWriter(tmp, schema) as writer:
            for group in _regroup(tables, ROW_GROUP_ROWS):
                writer.write_table(group)
                rows += group.num_rows
    elif fmt == "csv":
        csv_schema = pa.schema([pa.field(f.name, _csv_type(f.type)) for f in schema])
        with pa.OSFile(str(tmp), "wb") as sink:
            if excel_csv:
                sink.write(codecs.BOM_UTF8)
            with pacsv.CSVWriter(sink, csv_schema) as writer:
                for table in tables:
                    writer.write_table(_for_csv(table, csv_schema))
                    rows += table.num_rows
    elif fmt == "xlsx":
        records = (list(row.values()) for table in tables for row in table.to_pylist())
        rows = write_xlsx(schema.names, records, tmp, sheet="scored")
    else:
        with tmp.open("w", encoding="utf-8") as handle:
            for table in tables:
                for record in table.to_pylist():
                    handle.write(
                        json.dumps(_finite(record), ensure_ascii=False, default=str) + "\n"
                    )
                rows += table.num_rows
    return rows


def concat_lines(files: Iterable[Path], path: Path, hint: str = "") -> None:
    with replacing(path, hint) as tmp, tmp.open("wb") as out:
        for file in files:
            with file.open("rb") as handle:
                while block := handle.read(1 << 20):
                    out.write(block)


def _promote(name: str, found: list[pa.DataType]) -> pa.DataType:
    if not found:
        return pa.null()
    if len(found) == 1:
        return found[0]
    try:
        schemas = [pa.schema([(name, t)]) for t in found]
        return pa.unify_schemas(schemas, promote_options="permissive").field(name).type
    except (pa.ArrowException, TypeError):
        return pa.string()


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    try:
        return column.cast(target)
    except (pa.ArrowException, TypeError):
        if not pa.types.is_string(target):
            raise
        values = [
            None
            if v is None
            else v
            if isinstance(v, str)
            else json.dumps(v, ensure_ascii=False, default=str)
            for v in column.to_pylist()
        ]
        return pa.chunked_array([pa.array(values, pa.string())])


def _csv_type(kind: pa.DataType) -> pa.DataType:
    nested = pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    return pa.string() if nested or pa.types.is_null(kind) else kind


def _for_csv(table: pa.Table, csv_schema: pa.Schema) -> pa.Table:
    columns = []
    for field in csv_schema:
        column = table.column(field.name)
        if column.type == field.type:
            columns.append(column)
        elif field.name in ("reasons", "candidates"):
            joined = [None if v is None else CSV_LIST_SEPARATOR.join(v) for v in column.to_pylist()]
            columns.append(pa.chunked_array([pa.array(joined, pa.string())]))
        else:
            columns.append(
                pa.chunked_array([pa.array([_cell(v) for v in column.to_pylist()], pa.string())])
            )
    return pa.Table.from_arrays(columns, schema=csv_schema)


def _cell(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, ensure_ascii=False, default=str)


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or Infinity: such floats become null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }


def _regroup(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        if count >= rows:
            yield pa.concat_tables(pending)
            pending, count = [], 0
    if pending:
        yield pa.concat_tables(pending)
