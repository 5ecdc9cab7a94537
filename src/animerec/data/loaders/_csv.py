"""CSV reading shared by the loaders: a fast path for large files and exact error locations.

Large interaction files (millions of rows) are parsed by pyarrow's multithreaded CSV reader
and checked with vectorised NumPy tests. pyarrow does not report line numbers. So when the
fast path fails or a check finds a bad value, the file is read again only to find the first
bad line and its value for the error message. Small files (catalogues) are read with the
`csv` module directly, which gives every record's line.

Line numbers are 1-based physical lines of the file, so the header is line 1, and a record
whose quoted value spans lines is reported at its first line. Blank lines are skipped by
both readers and still counted in line numbers. Files are UTF-8 (a leading byte-order mark
is allowed), with LF, CRLF or CR line endings.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from animerec.errors import DataError

# pyarrow accepts surrounding spaces and a leading minus sign, but not "+5" or "5.0".
_INTEGER = re.compile(r"-?[0-9]+")
# Characters that int() accepts in an integer field but the fast path does not.
_NOT_PLAIN_INTEGER = re.compile(r"[^0-9 \t-]")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class IntColumn:
    """An integer column of a large file and the rule its values must follow.

    `is_valid` is vectorised: it takes an int64 array and returns a bool array that is True
    where the value is allowed. `allowed` describes the rule for error messages.
    """

    name: str
    allowed: str
    is_valid: Callable[[np.ndarray], np.ndarray]


def check_file(path: Path, expected: str) -> None:
    """Raise `DataError` when `path` is missing, not a file or empty."""
    if not path.exists():
        raise DataError(f"file not found; expected {expected}", path=str(path))
    if not path.is_file():
        raise DataError(f"not a file; expected {expected}", path=str(path))
    if path.stat().st_size == 0:
        raise DataError(f"file is empty; expected {expected}", path=str(path))


def invalid_utf8_error(path: Path, data: bytes | None = None) -> DataError | None:
    """Return a `DataError` naming the first line with bytes that are not UTF-8, or None."""
    if data is None:
        data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        start = data.rfind(b"\n", 0, err.start) + 1
        end = data.find(b"\n", err.start)
        text = data[start : end if end >= 0 else len(data)].decode("utf-8", errors="replace").rstrip("\r")
        return DataError(
            f"invalid UTF-8 byte 0x{data[err.start]:02x} at column {err.start - start + 1} "
            f"in {text!r}; save the file as UTF-8 and ingest again",
            path=str(path),
            line=line,
            value=data[err.start : err.start + 1],
        )
    return None


def read_header(path: Path, required: Sequence[str], *, delimiter: str = ",") -> list[str]:
    """Read the header line and raise `DataError` when a required column is missing."""
    with path.open("rb") as handle:
        # Cutting at the first carriage return also finds the header of a file with old
        # Mac line endings (CR only), which readline() would return whole.
        first_line = handle.readline().split(b"\r", 1)[0]
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError:
        error = invalid_utf8_error(path, first_line)
        assert error is not None
        raise error from None
    header = [name.strip() for name in next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter), [])]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} in the header "
            f"{','.join(header)!r}; the file must have the columns {','.join(required)}",
            path=str(path),
            line=1,
            value=missing,
        )
    duplicated = sorted({name for name in header if header.count(name) > 1 and name in required})
    if duplicated:
        raise DataError(
            f"column {duplicated[0]} appears more than once in the header; keep one",
            path=str(path),
            line=1,
            value=duplicated[0],
        )
    return header


def iter_records(path: Path, header: Sequence[str], *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Yield (line, fields) for every non-blank record after the header.

    Raise `DataError` for bytes that are not UTF-8 and for a record whose field count differs
    from the header's.
    """
    error = invalid_utf8_error(path)
    if error is not None:
        raise error
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            next(reader)
            last_line = reader.line_num
            for fields in reader:
                # A quoted value may span lines, so a record starts after the previous one ends.
                line = last_line + 1
                last_line = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise DataError(
                        f"expected {len(header)} fields ({','.join(header)}) but found {len(fields)}; "
                        "quote values that contain the delimiter",
                        path=str(path),
                        line=line,
                        value=fields,
                    )
                yield line, fields
        except csv.Error as err:
            raise DataError(f"malformed CSV: {err}", path=str(path), line=reader.line_num) from err


def line_of_record(path: Path, header: Sequence[str], record_index: int, *, delimiter: str = ",") -> int | None:
    """Return the line of the record at 0-based `record_index` (blank lines skipped).

    Files without quotes are mapped by counting line breaks, which is fast on millions of
    rows. Other files may have quoted line breaks, so the `csv` module reads them.
    """
    data = path.read_bytes()
    if b'"' not in data:
        lines, _starts, _ends = _record_spans(data)
        return int(lines[record_index]) if 0 <= record_index < lines.size else None
    for index, (line, _fields) in enumerate(iter_records(path, header, delimiter=delimiter)):
        if index == record_index:
            return line
    return None


def parse_int(text: str) -> int | None:
    """Parse an integer field as the fast path does; None when it is not an int64."""
    stripped = text.strip(" \t")
    if not _INTEGER.fullmatch(stripped):
        return None
    value = int(stripped)
    if value < _INT64_MIN or value > _INT64_MAX:
        return None
    return value


def read_int_columns(
    path: Path,
    columns: Sequence[IntColumn],
    *,
    delimiter: str = ",",
    expected: str,
) -> dict[str, np.ndarray]:
    """Read integer columns of a large CSV file into int64 arrays, validated.

    Every value must be present, an integer and allowed by its column's rule, and every
    record must have as many fields as the header. The first violation raises `DataError`
    with the file, line, value and rule. Other columns are parsed but not converted.
    """
    check_file(path, expected)
    names = [column.name for column in columns]
    header = read_header(path, names, delimiter=delimiter)

    try:
        table = pacsv.read_csv(
            path,
            # The header's names come from read_header, stripped of spaces, so " rating" works.
            read_options=pacsv.ReadOptions(use_threads=True, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.int64() for name in names},
                include_columns=names,
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        _raise_parse_error(path, header, columns, delimiter=delimiter)
        raise DataError(
            f"could not parse the file ({err}); check that it is a {delimiter!r}-separated CSV file",
            path=str(path),
        ) from err

    if table.num_rows == 0:
        raise DataError(f"the file has a header but no rows; expected {expected}", path=str(path))

    arrays: dict[str, np.ndarray] = {}
    first_bad = table.num_rows
    for column in columns:
        chunked = table.column(column.name)
        values = chunked.fill_null(0).to_numpy() if chunked.null_count else chunked.to_numpy()
        bad = ~column.is_valid(values)
        if chunked.null_count:
            bad |= chunked.is_null().to_numpy(zero_copy_only=False)
        if bad.any():
            first_bad = min(first_bad, int(np.argmax(bad)))
        else:
            arrays[column.name] = np.ascontiguousarray(values, dtype=np.int64)
    if first_bad < table.num_rows:
        _raise_at_record(path, header, columns, first_bad, table.num_rows, delimiter=delimiter)
    return arrays


def _raise_at_record(
    path: Path,
    header: Sequence[str],
    columns: Sequence[IntColumn],
    record_index: int,
    n_records: int,
    *,
    delimiter: str,
) -> None:
    """Raise the `DataError` of the record at `record_index`, which the fast path found bad."""
    data = path.read_bytes()
    lines, starts, ends = _record_spans(data)
    # The fast path splits records at every line break, so both count the same records unless
    # a line ends in a lone carriage return. The slow scan handles that case.
    if lines.size == n_records:
        line = int(lines[record_index])
        text = data[starts[record_index] : ends[record_index]].decode("utf-8", errors="replace")
        fields = next(csv.reader([text], delimiter=delimiter), [])
        if len(fields) == len(header):
            positions = [(column, header.index(column.name)) for column in columns]
            _check_fields(path, line, fields, positions)
    _scan_int_columns(path, header, columns, delimiter=delimiter)
    raise DataError(
        f"record {record_index + 1} has a value that breaks a column rule, but its line could not be found",
        path=str(path),
    )


def _raise_parse_error(path: Path, header: Sequence[str], columns: Sequence[IntColumn], *, delimiter: str) -> None:
    """Raise the `DataError` of the first record the fast path could not parse.

    The file is read again as text columns, single-threaded so that pyarrow numbers the rows
    with a wrong field count, and the columns are checked with vectorised string functions.
    The slow scan remains the fallback whenever the two readers' row numbers disagree.
    """
    data = path.read_bytes()
    utf8_error = invalid_utf8_error(path, data)
    if utf8_error is not None:
        raise utf8_error
    names = [column.name for column in columns]
    wrong_width: list[int | None] = []

    def remember(row: "pacsv.InvalidRow") -> str:
        wrong_width.append(row.number)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=False, invalid_row_handler=remember
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                include_columns=names,
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        _scan_int_columns(path, header, columns, delimiter=delimiter)
        return

    lines, starts, ends = _record_spans(data)
    if table.num_rows + len(wrong_width) != lines.size or None in wrong_width:
        _scan_int_columns(path, header, columns, delimiter=delimiter)
        return

    # pyarrow numbers rows from 1 at the header and skips blank lines, so row n is record n - 2.
    first_bad = table.num_rows
    for column in columns:
        text = pc.utf8_trim_whitespace(table.column(column.name))
        # Up to 18 digits always fit in int64; longer values are checked one by one.
        short_integer = pc.and_(
            pc.match_substring_regex(text, r"^-?[0-9]+$"), pc.less_equal(pc.utf8_length(text), 18)
        )
        values = pc.cast(pc.if_else(short_integer, text, "0"), pa.int64()).to_numpy()
        good = short_integer.to_numpy(zero_copy_only=False) & column.is_valid(values)
        for index in np.flatnonzero(~good):
            value = parse_int(text[int(index)].as_py())
            if value is None or not bool(column.is_valid(np.asarray([value], dtype=np.int64))[0]):
                first_bad = min(first_bad, int(index))
                break
    if wrong_width and wrong_width[0] - 2 <= first_bad:
        first_bad = wrong_width[0] - 2
    if first_bad >= lines.size:
        _scan_int_columns(path, header, columns, delimiter=delimiter)
        return

    line = int(lines[first_bad])
    fields = next(csv.reader([data[starts[first_bad] : ends[first_bad]].decode("utf-8")], delimiter=delimiter), [])
    if len(fields) != len(header):
        raise DataError(
            f"expected {len(header)} fields ({','.join(header)}) but found {len(fields)}; "
            "quote values that contain the delimiter",
            path=str(path),
            line=line,
            value=fields,
        )
    positions = [(column, header.index(column.name)) for column in columns]
    _check_fields(path, line, fields, positions)
    _scan_int_columns(path, header, columns, delimiter=delimiter)


def _record_spans(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the 1-based line, start and end byte offsets of every non-blank line after the
    header; ends exclude the line break."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(buffer == 0x0A)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [buffer.size]])
    ends_in_cr = (ends > starts) & (buffer[np.maximum(ends - 1, 0)] == 0x0D)
    ends = ends - ends_in_cr
    records = np.flatnonzero(ends > starts)
    records = records[records > 0]
    return records + 1, starts[records], ends[records]


def _check_fields(
    path: Path, line: int, fields: Sequence[str], positions: Sequence[tuple[IntColumn, int]]
) -> list[int]:
    """Return the integer values of one record, or raise `DataError` at its first bad field."""
    values = []
    for column, position in positions:
        text = fields[position]
        if not text.strip():
            raise DataError(
                f"missing {column.name}; every row needs {column.allowed}",
                path=str(path),
                line=line,
                value=text,
            )
        value = parse_int(text)
        if value is None:
            raise DataError(
                f"{column.name} {text!r} is not an integer; expected {column.allowed}",
                path=str(path),
                line=line,
                value=text,
            )
        if not bool(column.is_valid(np.asarray([value], dtype=np.int64))[0]):
            raise DataError(
                f"{column.name} {value} is not allowed; expected {column.allowed}",
                path=str(path),
                line=line,
                value=value,
            )
        values.append(value)
    return values


# Records checked together by the slow scan, so the vectorised column rules run per batch.
_SCAN_BATCH = 65_536


def _scan_int_columns(
    path: Path, header: Sequence[str], columns: Sequence[IntColumn], *, delimiter: str
) -> None:
    """Raise `DataError` at the first record that breaks a column rule (the slow path).

    Fields are parsed with plain `int()` and re-checked one by one only in a batch where
    something failed, which keeps the scan to a few seconds per million rows.
    """
    positions = [(column, header.index(column.name)) for column in columns]
    batch_lines: list[int] = []
    batch_fields: list[list[str]] = []
    batch_values: list[list[int]] = [[] for _ in columns]
    n_records = 0

    def check_batch() -> None:
        for column_number, (column, _position) in enumerate(positions):
            allowed = column.is_valid(np.asarray(batch_values[column_number], dtype=np.int64))
            if not bool(np.all(allowed)):
                first = int(np.argmin(allowed))
                _check_fields(path, batch_lines[first], batch_fields[first], positions)

    for line, fields in iter_records(path, header, delimiter=delimiter):
        n_records += 1
        try:
            parsed = [int(fields[position]) for _column, position in positions]
        except ValueError:
            parsed = []
        # int() also accepts "+5", "1_000", line breaks and non-ASCII digits, which the fast
        # path rejects, so such fields get the full check.
        if len(parsed) != len(positions) or not all(
            _NOT_PLAIN_INTEGER.search(fields[position]) is None and _INT64_MIN <= value <= _INT64_MAX
            for (_column, position), value in zip(positions, parsed)
        ):
            check_batch()  # an earlier record of this batch may break a rule first
            _check_fields(path, line, fields, positions)
        batch_lines.append(line)
        batch_fields.append(fields)
        for column_number, value in enumerate(parsed):
            batch_values[column_number].append(value)
        if len(batch_lines) >= _SCAN_BATCH:
            check_batch()
            batch_lines.clear()
            batch_fields.clear()
            for values in batch_values:
                values.clear()
    if batch_lines:
        check_batch()
    if n_records == 0:
        raise DataError("the file has a header but no rows", path=str(path))
