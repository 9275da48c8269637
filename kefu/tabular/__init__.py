"""One reader for tabular files (CSV, TSV, JSONL or a JSON array, Parquet, xlsx) for every command.

Usage:
    files = resolve_files(["logs/*.csv"])             # or table_file("train.jsonl")
    columns = read_columns(files[0])
    for block in read_blocks(files[0], 2048): ...      # streaming, deterministic cuts
    for record in read_records(files[0]): ...          # Record(line, end_line, values, problem)

One decoding policy (`decoding.py`), one reject shape (`Reject`: file, line, end_line, id,
column, reason, detail), one set of message-text checks (`text_problem`), CSV records that
survive broken quoting (`csvrows.py`), and `output.replacing` for writing a file whole or not
at all. Light on purpose: stdlib, pyarrow, openpyxl and zstandard only, so serving and
training can both import it.
"""

from kefu.tabular.files import FORMATS, TableFile, format_of, resolve_files, table_file
from kefu.tabular.options import DEFAULT_OPTIONS, ReadOptions
from kefu.tabular.reader import Block, estimate_records, read_blocks, read_columns, read_records
from kefu.tabular.rejects import REASONS, REJECTS_SUFFIX, Reject, rejects_file, write_rejects
from kefu.tabular.textrows import Record
from kefu.tabular.values import as_text, json_safe, repair, text_problem

__all__ = [
    "DEFAULT_OPTIONS",
    "FORMATS",
    "ReadOptions",
    "REASONS",
    "REJECTS_SUFFIX",
    "Block",
    "Record",
    "Reject",
    "TableFile",
    "as_text",
    "estimate_records",
    "format_of",
    "json_safe",
    "read_blocks",
    "read_columns",
    "read_records",
    "rejects_file",
    "repair",
    "resolve_files",
    "table_file",
    "text_problem",
    "write_rejects",
]
