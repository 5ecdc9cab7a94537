"""Loader for generic rating files: `user_id,item_id,rating[,timestamp]` rows in a CSV file.

The folder contains a ratings file (default `ratings.csv`) and, optionally, an items file
(default `items.csv`, used when present) with an id column, a `title` column and an optional
`genres` column of labels separated by `|`. Column names and the delimiter are options, so
most rating exports load without editing:

    load_csv(folder, user_column="userId", item_column="movieId", delimiter=";")

Rules (each violation raises `DataError` naming the file, line and value):

- user and item ids are non-negative integers; a rating is a finite number; a timestamp, when
  its column is given, is a non-negative integer (Unix seconds).
- `rating_scale=(low, high)` rejects ratings outside it; without it the scale is the lowest
  and highest rating observed.
- `rating_column=None` reads implicit data: every row is a watched pair without a rating.

Policies, counted in the `IngestReport`: item ids missing from the items file are dropped
(`unknown_anime="drop"`) or raise (`"error"`); duplicate user–item pairs keep the last row.
Without an items file the catalogue is every item id in the ratings, titled "item <id>".
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.data.interactions import Dataset, Interactions
from animerec.data.loaders._common import (
    check_unknown_anime_policy,
    deduplicate,
    describe_unknown_anime,
    unknown_anime_rows,
)
from animerec.data.loaders._csv import check_file, iter_records, parse_int, read_header
from animerec.data.report import IngestReport
from animerec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

FORMAT = "csv"
RATINGS_FILE = "ratings.csv"
ITEMS_FILE = "items.csv"
GENRE_SEPARATOR = "|"


@dataclass(frozen=True)
class RatingColumns:
    """Names of the columns of a rating file; `rating` and `timestamp` may be absent (None)."""

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = "rating"
    timestamp: str | None = None

    def required(self) -> list[str]:
        return [name for name in (self.user, self.item, self.rating, self.timestamp) if name]


@dataclass(frozen=True)
class RatingRows:
    """Rows of a rating file as arrays: ids int64, ratings float32 (NaN when not rated),
    timestamps int64 or None."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None


def parse_rating_scale(value: object) -> tuple[float, float] | None:
    """Parse a rating scale given as (low, high), "low,high" or None; raise `ConfigError`
    unless both are finite numbers with low < high."""
    if value is None:
        return None
    parts: Sequence[object]
    if isinstance(value, str):
        parts = [part for part in value.replace(" ", "").split(",") if part]
    else:
        parts = list(value)  # type: ignore[call-overload]
    try:
        low, high = (float(part) for part in parts)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(
            f"rating scale must be two numbers 'low,high' such as '1,10', got {value!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"rating scale needs finite numbers with low < high, got {value!r}")
    return (low, high)


def read_rating_rows(
    path: Path,
    columns: RatingColumns,
    *,
    delimiter: str = ",",
    rating_scale: tuple[float, float] | None = None,
    expected: str | None = None,
) -> RatingRows:
    """Read and validate the rating rows of a delimited file with a header.

    pyarrow parses the file. When that fails or a value breaks a rule, the `csv` module scans
    the file again to raise `DataError` at the first bad line.
    """
    expected = expected or f"a {delimiter!r}-separated file with the columns {','.join(columns.required())}"
    check_file(path, expected)
    header = read_header(path, columns.required(), delimiter=delimiter)
    integer_names = [name for name in (columns.user, columns.item, columns.timestamp) if name]
    types = {name: pa.int64() for name in integer_names}
    if columns.rating:
        types[columns.rating] = pa.float64()
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(types),
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        _scan_rating_rows(path, header, columns, delimiter, rating_scale)
        raise DataError(
            f"could not parse the file ({err}); check that it is a {delimiter!r}-separated file",
            path=str(path),
        ) from err
    if table.num_rows == 0:
        raise DataError(f"the file has a header but no rows; expected {expected}", path=str(path))

    arrays = {}
    valid = True
    for name in types:
        column = table.column(name)
        if column.null_count:
            valid = False
            break
        arrays[name] = column.to_numpy()
    if valid:
        valid = bool(np.all(arrays[columns.user] >= 0) and np.all(arrays[columns.item] >= 0))
    if valid and columns.timestamp:
        valid = bool(np.all(arrays[columns.timestamp] >= 0))
    if valid and columns.rating:
        ratings = arrays[columns.rating]
        valid = bool(np.all(np.isfinite(ratings)))
        if valid and rating_scale is not None:
            valid = bool(np.all((ratings >= rating_scale[0]) & (ratings <= rating_scale[1])))
    if not valid:
        _scan_rating_rows(path, header, columns, delimiter, rating_scale)
        raise DataError("a value breaks the file's rules, but its line could not be found", path=str(path))

    n_rows = table.num_rows
    ratings = (
        arrays[columns.rating].astype(np.float32)
        if columns.rating
        else np.full(n_rows, np.nan, dtype=np.float32)
    )
    return RatingRows(
        user_ids=np.ascontiguousarray(arrays[columns.user], dtype=np.int64),
        item_ids=np.ascontiguousarray(arrays[columns.item], dtype=np.int64),
        ratings=ratings,
        timestamps=(
            np.ascontiguousarray(arrays[columns.timestamp], dtype=np.int64)
            if columns.timestamp
            else None
        ),
    )


def parse_rating(text: str) -> float | None:
    """Parse a rating field; None when it is not a finite number."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _scan_rating_rows(
    path: Path,
    header: Sequence[str],
    columns: RatingColumns,
    delimiter: str,
    rating_scale: tuple[float, float] | None,
) -> None:
    """Raise `DataError` at the first record that breaks a rule (the slow path)."""
    integer_rules = [(columns.user, "a non-negative integer user id"), (columns.item, "a non-negative integer item id")]
    if columns.timestamp:
        integer_rules.append((columns.timestamp, "a non-negative integer Unix timestamp"))
    positions = {name: header.index(name) for name in columns.required()}
    n_records = 0
    for line, fields in iter_records(path, header, delimiter=delimiter):
        n_records += 1
        for name, allowed in integer_rules:
            text = fields[positions[name]]
            value = parse_int(text)
            if value is None or value < 0:
                problem = "is missing" if not text.strip() else f"{text!r} is not {allowed}"
                raise DataError(f"{name} {problem}; expected {allowed}", path=str(path), line=line, value=text)
        if columns.rating:
            text = fields[positions[columns.rating]]
            rating = parse_rating(text)
            if rating is None:
                problem = "is missing" if not text.strip() else f"{text!r} is not a number"
                raise DataError(
                    f"rating {problem}; every row needs a numeric rating",
                    path=str(path),
                    line=line,
                    value=text,
                )
            if rating_scale is not None and not rating_scale[0] <= rating <= rating_scale[1]:
                raise DataError(
                    f"rating {text.strip()} is outside the rating scale {rating_scale[0]:g} to "
                    f"{rating_scale[1]:g}; fix the row or give the right scale",
                    path=str(path),
                    line=line,
                    value=rating,
                )
    if n_records == 0:
        raise DataError("the file has a header but no rows", path=str(path))


def observed_scale(ratings: np.ndarray, path: Path) -> tuple[float, float]:
    """Return (min, max) of the real ratings; raise `DataError` when they are all one value.

    Implicit data (no ratings at all) gets the `Interactions` default (1, 10), which no
    implicit model reads.
    """
    rated = ratings[~np.isnan(ratings)]
    if rated.size == 0:
        return (1.0, 10.0)
    low, high = float(rated.min()), float(rated.max())
    if not low < high:
        raise DataError(
            f"every rating is {low:g}, so no rating scale can be inferred; "
            "give the scale explicitly (for example rating_scale='1,5')",
            path=str(path),
            value=low,
        )
    return (low, high)


def build_dataset(
    rows: RatingRows,
    catalog: Catalog,
    report: IngestReport,
    *,
    ratings_path: Path,
    items_file_name: str,
    unknown_anime: str,
    rating_scale: tuple[float, float],
    dataset_name: str,
    format_name: str,
    metadata: dict,
    user_features: object = None,
    find_line: Callable[[int], int | None] | None = None,
) -> Dataset:
    """Apply the unknown-item and duplicate policies to rows and build the `Dataset`."""
    user_ids, item_ids, ratings = rows.user_ids, rows.item_ids, rows.ratings
    timestamps = rows.timestamps
    report.rows_read = int(user_ids.size)

    unknown = unknown_anime_rows(item_ids, catalog.items)
    if unknown.any():
        first = int(np.argmax(unknown))
        if unknown_anime == "error":
            raise DataError(
                f"item id {int(item_ids[first])} is not in {items_file_name} "
                f"({int(unknown.sum())} rows have such ids); add it to {items_file_name} or "
                "ingest with the unknown-anime policy 'drop' to leave those rows out",
                path=str(ratings_path),
                line=find_line(first) if find_line is not None else None,
                value=int(item_ids[first]),
            )
        report.add_problem(
            "unknown_anime",
            int(unknown.sum()),
            "dropped",
            f"rows whose item id is not in {items_file_name}",
            describe_unknown_anime(item_ids, unknown),
        )
        known = ~unknown
        user_ids, item_ids, ratings = user_ids[known], item_ids[known], ratings[known]
        timestamps = timestamps[known] if timestamps is not None else None
        if user_ids.size == 0:
            raise DataError(
                f"no row has an item id that is in {items_file_name}; check the id columns",
                path=str(ratings_path),
            )

    kept, n_duplicates, examples = deduplicate(user_ids, item_ids, ratings)
    if n_duplicates:
        report.add_problem(
            "duplicates",
            n_duplicates,
            "last row wins; a row without a rating never replaces a rating",
            "rows that repeat a user–item pair",
            examples,
        )
        user_ids, item_ids, ratings = user_ids[kept], item_ids[kept], ratings[kept]
        timestamps = timestamps[kept] if timestamps is not None else None

    interactions = Interactions.from_arrays(
        user_ids,
        item_ids,
        ratings,
        items=catalog.items,
        rating_scale=rating_scale,
        timestamps=timestamps,
    )
    dataset = Dataset(
        name=dataset_name,
        catalog=catalog,
        interactions=interactions,
        format=format_name,
        user_features=user_features,
        metadata=metadata,
    )
    report.rows_used = interactions.nnz
    report.n_users = interactions.n_users
    report.n_items = interactions.n_items
    report.n_ratings = int(interactions.ratings.nnz)
    return dataset


def bare_catalog(item_ids: np.ndarray) -> Catalog:
    """Build a catalogue of bare ids titled "item <id>", with no other metadata."""
    ids = np.unique(item_ids)
    count = ids.size
    return Catalog(
        catalog_frame(
            ids,
            [f"item {int(item)}" for item in ids],
            [()] * count,
            [None] * count,
            [None] * count,
            np.full(count, np.nan),
            [None] * count,
        )
    )


def read_items_file(
    path: Path, *, id_column: str, delimiter: str = ",", report: IngestReport | None = None
) -> Catalog:
    """Read an items file with `id_column`, `title` and optional `genres` (labels separated
    by `|`) into a `Catalog`. A duplicate or invalid id raises `DataError` with its line."""
    header = read_header(path, [id_column, "title"], delimiter=delimiter)
    id_position = header.index(id_column)
    title_position = header.index("title")
    genre_position = header.index("genres") if "genres" in header else None
    ids: list[int] = []
    titles: list[str] = []
    genres: list[tuple[str, ...]] = []
    first_line: dict[int, int] = {}
    for line, fields in iter_records(path, header, delimiter=delimiter):
        text = fields[id_position]
        item_id = parse_int(text)
        if item_id is None or item_id < 0:
            raise DataError(
                f"{id_column} {text!r} is not a non-negative integer item id",
                path=str(path),
                line=line,
                value=text,
            )
        if item_id in first_line:
            raise DataError(
                f"duplicate {id_column} {item_id} (first at line {first_line[item_id]}); keep one row per item",
                path=str(path),
                line=line,
                value=item_id,
            )
        first_line[item_id] = line
        ids.append(item_id)
        titles.append(fields[title_position].strip() or f"item {item_id}")
        genres.append(split_genres(fields[genre_position]) if genre_position is not None else ())
    if not ids:
        raise DataError("the file has a header but no item rows", path=str(path))
    if report is not None:
        report.catalog_rows = len(ids)
    count = len(ids)
    frame = catalog_frame(ids, titles, genres, [None] * count, [None] * count, np.full(count, np.nan), [None] * count)
    return Catalog(frame)


def split_genres(text: str) -> tuple[str, ...]:
    """Split `|`-separated genre labels; "(no genres listed)" and empty parts are dropped."""
    return tuple(
        label
        for label in (part.strip() for part in text.split(GENRE_SEPARATOR))
        if label and label != "(no genres listed)"
    )


def load_csv(
    directory: Path,
    *,
    name: str | None = None,
    unknown_anime: str = "drop",
    progress: Callable[[str], None] | None = None,
    ratings_file: str = RATINGS_FILE,
    items_file: str | None = ITEMS_FILE,
    user_column: str = "user_id",
    item_column: str = "item_id",
    rating_column: str | None = "rating",
    timestamp_column: str | None = None,
    delimiter: str = ",",
    rating_scale: object = None,
) -> tuple[Dataset, IngestReport]:
    """Load a generic rating file (and an optional items file) from `directory`.

    `items_file` is used only when it exists in `directory`; its id column has the name
    `item_column`. `timestamp_column` defaults to "timestamp" when the header has it. See the
    module docstring for the rules and policies.
    """
    check_unknown_anime_policy(unknown_anime)
    if len(delimiter) != 1:
        raise ConfigError(f"delimiter must be one character, got {delimiter!r}")
    scale = parse_rating_scale(rating_scale)
    directory = Path(directory)
    ratings_path = directory / ratings_file
    dataset_name = name or FORMAT
    check_file(ratings_path, f"a rating file with the columns {user_column},{item_column},{rating_column or ''}")
    if timestamp_column is None:
        header = read_header(ratings_path, [user_column, item_column], delimiter=delimiter)
        timestamp_column = "timestamp" if "timestamp" in header else None
    columns = RatingColumns(user_column, item_column, rating_column, timestamp_column)

    items_path = directory / items_file if items_file else None
    use_items = items_path is not None and items_path.is_file()
    report = IngestReport(
        format=FORMAT,
        dataset_name=dataset_name,
        source_files=[str(ratings_path)] + ([str(items_path)] if use_items else []),
    )

    _step(progress, f"reading {ratings_path}")
    rows = read_rating_rows(ratings_path, columns, delimiter=delimiter, rating_scale=scale)
    if use_items:
        assert items_path is not None
        _step(progress, f"reading {items_path}")
        catalog = read_items_file(items_path, id_column=item_column, delimiter=delimiter, report=report)
    else:
        catalog = bare_catalog(rows.item_ids)
        report.catalog_rows = len(catalog)
        report.notes.append("no items file: the catalogue is the item ids of the ratings, without titles")
    final_scale = scale or observed_scale(rows.ratings, ratings_path)

    header = read_header(ratings_path, columns.required(), delimiter=delimiter)
    dataset = build_dataset(
        rows,
        catalog,
        report,
        ratings_path=ratings_path,
        items_file_name=items_file or ITEMS_FILE,
        unknown_anime=unknown_anime,
        rating_scale=final_scale,
        dataset_name=dataset_name,
        format_name=FORMAT,
        metadata={"source": str(directory), "columns": columns.required(), "rating_scale": list(final_scale)},
        find_line=lambda index: _line_of_row(ratings_path, header, index, delimiter),
    )
    logger.info("loaded %s: %d rows used of %d", dataset_name, report.rows_used, report.rows_read)
    return dataset, report


def _line_of_row(path: Path, header: Sequence[str], index: int, delimiter: str) -> int | None:
    for position, (line, _fields) in enumerate(iter_records(path, header, delimiter=delimiter)):
        if position == index:
            return line
    return None


def _step(progress: Callable[[str], None] | None, message: str) -> None:
    logger.debug(message)
    if progress is not None:
        progress(message)
