"""CSV reading shared by the loaders: a fast path for large files and exact error locations.

Large interaction files (millions of rows) are parsed by pyarrow's multithreaded CSV reader
and checked with vectorised NumPy tests. pyarrow does not report line numbers, so when the
fast path fails or a check finds a bad value, a slow scan with the `csv` module reads the
file again only to find the first bad line and its value for the error message. Small files
(catalogues) are read with the `csv` module directly, which gives every record's line.

Line numbers are 1-based physical lines of the file, so the header is line 1. Blank lines
are skipped by both readers and still counted in line numbers. Files are UTF-8 (a leading
byte-order mark is allowed), with LF or CRLF line endings.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from animerec.errors import DataError

# pyarrow accepts surrounding spaces and a leading minus sign, but not "+5" or "5.0".
_INTEGER = re.compile(r"-?[0-9]+")
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
        first_line = handle.readline()
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
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise DataError(
                        f"expected {len(header)} fields ({','.join(header)}) but found {len(fields)}; "
                        "quote values that contain the delimiter",
                        path=str(path),
                        line=reader.line_num,
                        value=fields,
                    )
                yield reader.line_num, fields
        except csv.Error as err:
            raise DataError(f"malformed CSV: {err}", path=str(path), line=reader.line_num) from err


def line_of_record(path: Path, header: Sequence[str], record_index: int, *, delimiter: str = ",") -> int | None:
    """Return the line of the record at 0-based `record_index` (blank lines skipped)."""
    for index, (line, _fields) in enumerate(iter_records(path, header, delimiter=delimiter)):
        if index == record_index:
            return line
    return None


def parse_int(text: str) -> int | None:
    """Parse an integer field as the fast path does; None when it is not an int64."""
    stripped = text.strip()
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
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.int64() for name in names},
                include_columns=names,
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        _scan_int_columns(path, header, columns, delimiter=delimiter)
        raise DataError(
            f"could not parse the file ({err}); check that it is a {delimiter!r}-separated CSV file",
            path=str(path),
        ) from err

    if table.num_rows == 0:
        raise DataError(f"the file has a header but no rows; expected {expected}", path=str(path))

    arrays: dict[str, np.ndarray] = {}
    for column in columns:
        chunked = table.column(column.name)
        if chunked.null_count or not bool(np.all(column.is_valid(chunked.to_numpy()))):
            _scan_int_columns(path, header, columns, delimiter=delimiter)
            raise DataError(
                f"column {column.name} has a value that is missing or not {column.allowed}, "
                "but its line could not be found",
                path=str(path),
            )
        arrays[column.name] = np.ascontiguousarray(chunked.to_numpy(), dtype=np.int64)
    return arrays


def _scan_int_columns(
    path: Path, header: Sequence[str], columns: Sequence[IntColumn], *, delimiter: str
) -> None:
    """Raise `DataError` at the first record that breaks a column rule (the slow path)."""
    positions = [(column, header.index(column.name)) for column in columns]
    n_records = 0
    for line, fields in iter_records(path, header, delimiter=delimiter):
        n_records += 1
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
    if n_records == 0:
        raise DataError("the file has a header but no rows", path=str(path))
