"""Reading an uploaded CSV for a lead import: its encoding, its delimiter, its rows, and each row's lead fields.

Pure: the import worker hands in the file's bytes and gets rows numbered as a spreadsheet shows them, so a
rejection can say "row 17" and mean the row the user sees in Excel.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from services.leads.mapping import MappingError, apply_mapping

ENCODINGS = ("auto", "utf-8", "cp1251")
DELIMITERS = (",", ";", "\t")
# Enough records to see whether a delimiter splits every row alike, few enough to stay quick on a big file.
_SNIFF_RECORDS = 50

_ENCODING_NAMES = {
    "auto": "auto",
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "cp1251": "cp1251",
    "windows-1251": "cp1251",
    "win-1251": "cp1251",
}


def decode(content: bytes, encoding: str = "auto") -> tuple[str, str]:
    """The file's text and the encoding read ("utf-8", "cp1251" or "utf-16"); raises ValueError.

    "auto" reads UTF-8 when the bytes are valid UTF-8 (with or without a byte order mark), UTF-16 when they
    start with its byte order mark and hold NUL bytes (Excel's "Unicode text"), else Windows-1251, what a
    Russian Excel writes.
    """
    name = _ENCODING_NAMES.get(encoding.strip().lower().replace("_", "-"))
    if name is None:
        raise ValueError(f"The encoding '{encoding}' is not supported. Use one of: {', '.join(ENCODINGS)}.")
    if name == "auto":
        # The BOM bytes are also "яю" in cp1251; UTF-16 text has NUL bytes (the high byte of every ASCII
        # delimiter and line break), a cp1251 CSV has none.
        if content.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in content:
            try:
                return content.decode("utf-16"), "utf-16"
            except UnicodeDecodeError:
                pass
        try:
            return content.decode("utf-8-sig"), "utf-8"
        except UnicodeDecodeError:
            name = "cp1251"
    try:
        return content.decode("utf-8-sig" if name == "utf-8" else name), name
    except UnicodeDecodeError as exc:
        readable = {"utf-8": "UTF-8", "cp1251": "Windows-1251 (cp1251)"}[name]
        raise ValueError(
            f"The file is not {readable} text (a byte at position {exc.start} cannot be read). "
            "Save it as CSV UTF-8, or choose the encoding it was saved in."
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter among "," ";" and tab that splits the header into the most columns and the first rows
    into as many; "," when none splits the header. Quoted cells are read as cells, so a comma inside
    "Acme, Inc" does not count."""
    best: tuple[float, int, int] | None = None
    chosen = ","
    for preference, delimiter in enumerate(DELIMITERS):
        counts = _cell_counts(text, delimiter)
        if len(counts) == 0 or counts[0] < 2:
            continue
        header, rows = counts[0], counts[1:]
        consistency = sum(1 for n in rows if n == header) / len(rows) if rows else 1.0
        score = (consistency, header, -preference)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _cell_counts(text: str, delimiter: str) -> list[int]:
    counts: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            counts.append(len(record))
            if len(counts) >= _SNIFF_RECORDS:
                break
    except csv.Error:
        pass  # a cell beyond the size limit: judge by the records before it
    return counts


def read_rows(text: str, delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header (cells stripped) and the data rows as (row number, cells), fully empty rows skipped.

    Row numbers count records, as a spreadsheet numbers its rows: the header of a file that starts with it
    is row 1 and a cell spanning three lines (a quoted cell with line breaks) is still one row. Blank lines
    are rows too (a spreadsheet shows them as empty rows), so the numbers stay those the user sees.
    Cells are returned as written. A broken record (a cell over the csv module's size limit) raises
    ValueError naming its row when the iterator reaches it.
    """
    if delimiter not in DELIMITERS:
        raise ValueError(f"The delimiter must be one of: comma, semicolon, tab (got {delimiter!r}).")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = enumerate(_records(reader), start=1)
    header: list[str] = []
    for _, record in records:
        if any(cell.strip() for cell in record):
            header = [cell.replace("\ufeff", "").strip() for cell in record]
            break

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, record in records:
            if any(cell.strip() for cell in record):
                yield number, record

    return header, rows()


def _records(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    number = 0
    while True:
        number += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"Row {number} cannot be read: {exc}.") from None
        yield record


def row_to_raw(header: Sequence[str], row: Sequence[str], mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The raw lead fields of one row; raises MappingError (field "row", code "cell_count" for a row whose cells
    do not line up with the header's columns).

    `mapping` is lead field -> column header (or a list of headers), matched exactly, else ignoring case;
    columns it leaves out are read by common names, Russian ones included (Имя, Телефон, Почта...); columns
    without a header are not read. Extra empty cells at the end of a row (a trailing delimiter) are ignored;
    extra cells with text, or missing cells, mean the row was split wrongly (an unquoted delimiter in a cell)
    and the row is refused rather than imported with values in the wrong fields.
    """
    # Columns after the last named one are padding (a header written with trailing delimiters).
    width = max((i + 1 for i, column in enumerate(header) if column), default=0)
    if len(row) < width or any(cell.strip() for cell in row[len(header) :]):
        written = len(row) - sum(1 for _ in _trailing_empty(row)) if len(row) > len(header) else len(row)
        raise MappingError(
            [
                {
                    "field": "row",
                    "code": "cell_count",
                    "message": (
                        f"This row has {written} cells but the header has {width} columns. "
                        "A cell that contains the delimiter must be in double quotes."
                    ),
                }
            ]
        )
    payload: dict[str, Any] = {}
    for column, cell in zip(header, row, strict=False):
        if not column:
            continue  # a column without a header cannot be mapped or recognized
        if column not in payload:
            payload[column] = cell
        elif isinstance(payload[column], list):
            payload[column].append(cell)
        else:
            payload[column] = [payload[column], cell]
    return apply_mapping(payload, mapping, flat=True)


def _trailing_empty(row: Sequence[str]) -> Iterator[str]:
    for cell in reversed(row):
        if cell.strip():
            return
        yield cell


def csv_line(cells: Sequence[str], delimiter: str) -> str:
    """One row as CSV text in the file's delimiter, quoted where needed, without the line break."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerow(cells)
    return out.getvalue().removesuffix("\r\n")
