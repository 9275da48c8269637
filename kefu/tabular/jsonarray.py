"""A `.json` file that holds one JSON array, read one element at a time as records.

Exports often write a table as one array of objects (`[{...}, {...}]`, pretty-printed or all on
one line, as pandas `to_json(orient="records")` does), so a `.json` whose first character is
`[` is read element by element. Elements that lie whole in a piece of the file are read by one
C `raw_decode` call each (the fast path); where that fails (an element cut by the piece's end,
or broken), a scanner that knows only strings, brackets and commas finds where the element
ends, and `json.loads` reads it. Memory holds one element (at most `CHARS_PER_RECORD_CHAR` x
the record length limit; a longer one is rejected without being kept) and one piece of the
file (`decoding.PIECE_BYTES`), however long its lines.

Records are numbered by element from 1 (`Record.line`, as Parquet rows are), and the file is
accounted in elements (`lines`): a one-line array holds many rows on one physical line. Its
records say so (`Record.unit`), so messages name them "element N"; a line in a reject's detail
or in an error is a physical line. An element that is not JSON is a reject
(`invalid_json`), a value that is no object too (`not_an_object`); the elements after it are
read on. A string that runs into a line break (a JSON string never holds one) ends its element
there, and the next line is read as a new one, so a quote that never closes costs its element
(its remaining lines are a reject of their own), not the rest of the file. A file that ends
before the array closes gives one `invalid_json` reject for the unfinished element; anything
but white space after the closing `]` stops the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kefu.errors import DataError
from kefu.tabular.textrows import Record, not_an_object

OUTSIDE = re.compile(r'[\[\]{}",\n]')  # what matters between strings
INSIDE = re.compile(r'["\\\n]')  # what matters inside a string
NOT_SPACE = re.compile(r"\S")
DECODER = json.JSONDecoder()
# A character written as a \u escape takes 6 characters (12 for one outside the BMP), so an
# element of up to 12 x the record limit is kept: a record the limit allows is never refused
# for how its export escaped it.
CHARS_PER_RECORD_CHAR = 12
ELEMENT = "element"  # what a record's number counts (`Record.unit`)


def starts_with_array(pieces: Iterator[str]) -> bool:
    """Whether the first character that is not white space opens an array."""
    for piece in pieces:
        if found := NOT_SPACE.search(piece):
            return found.group() == "["
    return False


@dataclass
class _Element:
    text: str | None  # None when longer than the limit (not kept)
    text_line: int  # physical line its text (after the comma) starts on
    line: int  # physical line of its first character that is not white space
    end_line: int
    has_value: bool  # False: nothing between two commas, or between a comma and `]`
    broken_string_line: int | None  # where a string ran into a line break
    unfinished: bool = False  # the file ended inside it
    value: Any = None  # what it holds, when the fast path has read it already
    parsed: bool = False


class JsonArrayRows:
    """The elements of the array, one `Record` each (see the module docstring)."""

    def __init__(self, pieces: Iterator[str], file: str, max_record_chars: int):
        self.pieces, self.file = pieces, file
        self.max_chars = CHARS_PER_RECORD_CHAR * max_record_chars
        self.lines = 0  # elements read: the unit a JSON array is accounted in

    def __iter__(self) -> Iterator[Record]:
        scanner = _Scanner(self.file, self.max_chars)
        for piece in self.pieces:
            for element in scanner.feed(piece):
                yield self._record(element)
        if (unfinished := scanner.finish()) is not None:
            yield self._record(unfinished)

    def _record(self, element: _Element) -> Record:
        self.lines += 1
        number = self.lines
        problem = None if element.parsed else self._problem(element)
        if problem is not None:
            return _element(number, None, problem)
        value = element.value
        if not element.parsed:
            assert element.text is not None  # _problem refuses an element not kept
            try:
                value = json.loads(element.text)
            except json.JSONDecodeError as exc:
                line = element.text_line + exc.lineno - 1
                return _element(number, None, ("invalid_json", f"{exc.msg} on line {line}"))
        if not isinstance(value, dict):
            return _element(number, None, not_an_object(value))
        return _element(number, value)

    def _problem(self, element: _Element) -> tuple[str, str] | None:
        lines = (
            f"line {element.line}"
            if element.line == element.end_line
            else f"lines {element.line}-{element.end_line}"
        )
        if element.unfinished:
            return (
                "invalid_json",
                f"the file ends before the array closes with ']' (element on {lines}; "
                "a cut-off file?)",
            )
        if not element.has_value:
            return "invalid_json", f"no value between a ',' and the next ',' or ']' on {lines}"
        if element.text is None:
            return (
                "record_too_long",
                f"the element on {lines} holds more than {self.max_chars} characters",
            )
        if element.broken_string_line is not None:
            return (
                "invalid_json",
                f"a string is not closed before the end of line {element.broken_string_line}",
            )
        return None


def _element(
    number: int, values: dict[str, Any] | None, problem: tuple[str, str] | None = None
) -> Record:
    return Record(number, number, values, problem, unit=ELEMENT)


class _Scanner:
    """Finds where elements end, piece by piece; keeps the current element's text only."""

    def __init__(self, file: str, max_chars: int):
        self.file, self.max_chars = file, max_chars
        self.line = 1
        self.opened = self.closed = False
        self.depth, self.in_string, self.escaped = 0, False, False
        self.elements = 0
        self._reset()

    def _reset(self) -> None:
        self.parts: list[str] = []
        self.size, self.kept = 0, True
        self.text_line = self.line
        self.first_line: int | None = None
        self.last_line = self.line
        self.broken_string_line: int | None = None

    def feed(self, piece: str) -> list[_Element]:
        found: list[_Element] = []
        i, end = 0, len(piece)
        if self.closed:
            self._check_rest(piece, 0)
            return found
        if not self.opened:  # starts_with_array saw that the first character is "["
            first = NOT_SPACE.search(piece)
            if first is None:
                self.line += piece.count("\n")
                return found
            self.line += piece.count("\n", 0, first.start())
            self.opened, i = True, first.end()
            self.text_line = self.line
        if self._at_element_start():
            i = self._whole_elements(piece, i, found)
            if self.closed:
                self._check_rest(piece, i)
                return found
        start = i  # where the current element's text starts in this piece
        if self.escaped and i < end and piece[i] != "\n":
            i += 1  # the character a backslash at the end of the last piece escapes
        self.escaped = False
        while i < end:
            if self.in_string:
                i, broken_at = self._in_string(piece, i)
                if broken_at is not None:  # the element ends with its line; the next line is new
                    found.append(self._take(piece[start:broken_at]))
                    start, self.depth = i, 0
                    self.text_line = self.line
                continue
            match = OUTSIDE.search(piece, i)
            stop = match.start() if match else end
            if stop > i and not piece[i:stop].isspace():
                self._mark_value()
            if match is None:
                break
            char, i = match.group(), match.end()
            if char == "\n":
                self.line += 1
            elif char == "," and self.depth == 0:
                found.append(self._take(piece[start:stop]))
                i = start = self._whole_elements(piece, i, found)
                if self.closed:
                    self._check_rest(piece, i)
                    return found
            elif char == "]" and self.depth == 0:
                element = self._take(piece[start:stop])
                if element.has_value or self.elements > 1:
                    found.append(element)  # else `[]`: no element at all
                self.closed = True
                self._check_rest(piece, i)
                return found
            elif char != ",":
                self._mark_value()
                if char == '"':
                    self.in_string = True
                elif char in "[{":
                    self.depth += 1
                elif self.depth:  # a stray "}" at depth 0 stays in the text: json.loads refuses it
                    self.depth -= 1
        self._keep(piece[start:])
        return found

    def _at_element_start(self) -> bool:
        """Nothing but white space read of the current element."""
        return not self.in_string and self.depth == 0 and self.first_line is None

    def _whole_elements(self, piece: str, i: int, found: list[_Element]) -> int:
        """The fast path: elements that lie whole in this piece, each followed by its ',' or
        ']', are read by the C decoder in one call; returns where the scanner goes on (at the
        first element that is cut by the piece's end, too long or not JSON)."""
        while first := NOT_SPACE.search(piece, i):
            try:
                value, stop = DECODER.raw_decode(piece, first.start())
            except json.JSONDecodeError:
                return i
            after = NOT_SPACE.search(piece, stop)
            if after is None or after.group() not in ",]" or after.start() - i > self.max_chars:
                return i
            line = self.line + piece.count("\n", i, first.start())
            end_line = line + piece.count("\n", first.start(), stop)
            self.elements += 1
            found.append(_Element(None, line, line, end_line, True, None, value=value, parsed=True))
            self.line = end_line + piece.count("\n", stop, after.start())
            self._reset()
            i = after.end()
            if after.group() == "]":
                self.closed = True
                return i
        return i

    def finish(self) -> _Element | None:
        """The unfinished element when the file ends before the array closes."""
        if self.closed or not self.opened:
            return None
        element = self._take("")
        element.unfinished = True
        return element

    def _in_string(self, piece: str, i: int) -> tuple[int, int | None]:
        """Where scanning goes on, and where a line break cut the string (None: it did not)."""
        match = INSIDE.search(piece, i)
        if match is None:
            return len(piece), None
        char, i = match.group(), match.end()
        if char == "\\":
            if i == len(piece):
                self.escaped = True
            elif piece[i] != "\n":
                i += 1
        elif char == '"':
            self.in_string = False
        else:  # a line break: the string's quote never closed
            self.in_string = False
            self.broken_string_line = self.line
            self.line += 1
            return i, match.start()
        return i, None

    def _mark_value(self) -> None:
        """The element has a character that is not white space on the current line."""
        if self.first_line is None:
            self.first_line = self.line
        self.last_line = self.line

    def _keep(self, text: str) -> None:
        if not self.kept:
            return
        if self.size + len(text) > self.max_chars:
            self.parts, self.kept = [], False  # too long: scanned to its end, never held
            return
        self.parts.append(text)
        self.size += len(text)

    def _take(self, last: str) -> _Element:
        self._keep(last)
        self.elements += 1
        element = _Element(
            "".join(self.parts) if self.kept else None,
            self.text_line,
            self.first_line or self.line,
            self.last_line if self.first_line else self.line,
            self.first_line is not None,
            self.broken_string_line,
        )
        self._reset()
        return element

    def _check_rest(self, piece: str, i: int) -> None:
        if found := NOT_SPACE.search(piece, i):
            raise DataError(
                "expected nothing after the JSON array's closing ']', found "
                f"{piece[found.start() : found.start() + 20]!r}; a .json file holds one array, "
                "or one JSON object per line",
                file=self.file,
                line=self.line + piece.count("\n", i, found.start()),
            )
        self.line += piece.count("\n", i)
