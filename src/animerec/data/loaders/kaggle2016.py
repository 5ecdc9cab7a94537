"""Loader for the Kaggle 2016 "Anime Recommendations Database" (CooperUnion, CC0).

The folder contains two files:

- `anime.csv` with `anime_id,name,genre,type,episodes,rating,members`: one row per anime.
  `name` has HTML entities (`&#039;`), which are decoded into `title`. `genre` is a
  comma-separated list of whole labels ("Slice of Life"), kept as a tuple; a missing genre
  becomes an empty tuple. `type` is TV, OVA, Movie, Special, ONA or Music, or None when
  missing. `episodes` is a nullable integer ("Unknown" is missing). `rating` is the site-wide
  mean score, kept as `score` (float, NaN when missing); `members` is a nullable integer.
- `rating.csv` with `user_id,anime_id,rating`: `rating` is 1–10, or -1 when the user watched
  the anime without scoring it. A -1 row becomes a watched pair with no rating (NaN), so no
  model reads -1 as a number. Every row gets the watch weight 1.0.

Policies for rows that cannot be used as they are (each one counted in the `IngestReport`):

- Anime ids in `rating.csv` that `anime.csv` lacks: with `unknown_anime="drop"` (default)
  their rows are left out and counted, with examples; with `unknown_anime="error"` the first
  one raises `DataError` naming its line.
- Duplicate user–anime pairs: the last row in file order wins, except that a -1 never
  replaces a real rating. The removed rows are counted.
- An anime without a name gets the title "anime <anime_id>" and is counted.

Anything else that is invalid (a missing column, a value of the wrong type, a rating outside
-1 and 1–10, a duplicate anime_id in `anime.csv`, an empty file, bytes that are not UTF-8)
raises `DataError` naming the file, line and value. The item map is every anime in
`anime.csv`, watched or not.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Callable

import numpy as np

from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.data.interactions import Dataset, Interactions
from animerec.data.loaders._common import (
    check_unknown_anime_policy,
    deduplicate,
    describe_unknown_anime,
    unknown_anime_rows,
)
from animerec.data.loaders._csv import (
    IntColumn,
    check_file,
    iter_records,
    line_of_record,
    parse_int,
    read_header,
    read_int_columns,
)
from animerec.data.report import IngestReport
from animerec.errors import DataError

logger = logging.getLogger(__name__)

FORMAT = "kaggle-2016"
ANIME_FILE = "anime.csv"
RATING_FILE = "rating.csv"
ANIME_COLUMNS = ("anime_id", "name", "genre", "type", "episodes", "rating", "members")
RATING_COLUMNS = ("user_id", "anime_id", "rating")
MISSING_TEXT = frozenset({"", "Unknown"})
UNRATED = -1

_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _is_rating(values: np.ndarray) -> np.ndarray:
    return (values == UNRATED) | ((values >= 1) & (values <= 10))


RATING_FILE_COLUMNS = (
    IntColumn("user_id", "a non-negative integer user id", lambda values: values >= 0),
    IntColumn("anime_id", "a non-negative integer anime id", lambda values: values >= 0),
    IntColumn("rating", "-1 (watched, not rated) or an integer from 1 to 10", _is_rating),
)


def load_kaggle_2016(
    directory: Path,
    *,
    name: str | None = None,
    unknown_anime: str = "drop",
    progress: Callable[[str], None] | None = None,
) -> tuple[Dataset, IngestReport]:
    """Load `anime.csv` and `rating.csv` from `directory` into a `Dataset`.

    `name` defaults to "kaggle-2016". See the module docstring for the policies.
    """
    check_unknown_anime_policy(unknown_anime)
    directory = Path(directory)
    dataset_name = name or FORMAT
    anime_path = directory / ANIME_FILE
    rating_path = directory / RATING_FILE
    report = IngestReport(
        format=FORMAT, dataset_name=dataset_name, source_files=[str(anime_path), str(rating_path)]
    )
    # Check both files up front, so a missing rating.csv fails before the catalogue is parsed.
    check_file(anime_path, f"the Kaggle 2016 {ANIME_FILE} with columns {','.join(ANIME_COLUMNS)}")
    check_file(rating_path, f"the Kaggle 2016 {RATING_FILE} with columns {','.join(RATING_COLUMNS)}")

    _step(progress, f"reading {anime_path}")
    catalog = read_catalog(anime_path, report)

    _step(progress, f"reading {rating_path}")
    columns = read_int_columns(
        rating_path,
        RATING_FILE_COLUMNS,
        expected=f"rows of {','.join(RATING_COLUMNS)}",
    )
    user_ids = columns["user_id"]
    anime_ids = columns["anime_id"]
    ratings = columns["rating"].astype(np.float32)
    ratings[columns["rating"] == UNRATED] = np.nan
    report.rows_read = int(user_ids.size)

    _step(progress, "checking anime ids and duplicates")
    unknown = unknown_anime_rows(anime_ids, catalog.items)
    if unknown.any():
        first = int(np.argmax(unknown))
        if unknown_anime == "error":
            line = line_of_record(rating_path, RATING_COLUMNS, first)
            raise DataError(
                f"anime_id {int(anime_ids[first])} is not in {ANIME_FILE} "
                f"({int(unknown.sum())} rows have such ids); add the anime to {ANIME_FILE} "
                "or ingest with the unknown-anime policy 'drop' to leave those rows out",
                path=str(rating_path),
                line=line,
                value=int(anime_ids[first]),
            )
        report.add_problem(
            "unknown_anime",
            int(unknown.sum()),
            "dropped",
            f"rows whose anime_id is not in {ANIME_FILE}",
            describe_unknown_anime(anime_ids, unknown),
        )
        known = ~unknown
        all_users = np.unique(user_ids)
        user_ids, anime_ids, ratings = user_ids[known], anime_ids[known], ratings[known]
        lost_users = int(all_users.size - np.unique(user_ids).size)
        if lost_users:
            report.add_problem(
                "users_without_rows",
                lost_users,
                "dropped",
                "users whose every row had an unknown anime_id",
            )

    kept, n_duplicates, examples = deduplicate(user_ids, anime_ids, ratings)
    if n_duplicates:
        report.add_problem(
            "duplicates",
            n_duplicates,
            "last row wins; -1 never replaces a rating",
            "rows that repeat a user–anime pair",
            examples,
        )
        user_ids, anime_ids, ratings = user_ids[kept], anime_ids[kept], ratings[kept]

    _step(progress, "building the interaction matrices")
    interactions = Interactions.from_arrays(user_ids, anime_ids, ratings, items=catalog.items)
    dataset = Dataset(
        name=dataset_name,
        catalog=catalog,
        interactions=interactions,
        format=FORMAT,
        metadata={"source": str(directory)},
    )

    report.rows_used = interactions.nnz
    report.n_users = interactions.n_users
    report.n_items = interactions.n_items
    report.n_ratings = int(interactions.ratings.nnz)
    logger.info(
        "loaded %s: %d anime, %d of %d rows used, %d users",
        dataset_name,
        len(catalog),
        report.rows_used,
        report.rows_read,
        report.n_users,
    )
    return dataset, report


def read_catalog(path: Path, report: IngestReport | None = None) -> Catalog:
    """Read and validate `anime.csv` into a `Catalog` (see the module docstring)."""
    header = read_header(path, ANIME_COLUMNS)
    position = {column: header.index(column) for column in ANIME_COLUMNS}

    anime_ids: list[int] = []
    titles: list[str] = []
    genres: list[tuple[str, ...]] = []
    types: list[str | None] = []
    episodes: list[int | None] = []
    scores: list[float] = []
    members: list[int | None] = []
    first_line: dict[int, int] = {}
    untitled: list[str] = []

    for line, fields in iter_records(path, header):
        anime_id = _required_int(fields[position["anime_id"]], "anime_id", path, line)
        if anime_id in first_line:
            raise DataError(
                f"duplicate anime_id {anime_id} (first at line {first_line[anime_id]}); "
                "keep one row per anime",
                path=str(path),
                line=line,
                value=anime_id,
            )
        first_line[anime_id] = line

        title = html.unescape(fields[position["name"]]).strip()
        if not title:
            title = f"anime {anime_id}"
            untitled.append(f"anime_id {anime_id} at line {line}")

        anime_ids.append(anime_id)
        titles.append(title)
        genres.append(_split_genres(fields[position["genre"]]))
        type_text = fields[position["type"]].strip()
        types.append(None if type_text in MISSING_TEXT else type_text)
        episodes.append(_optional_count(fields[position["episodes"]], "episodes", path, line))
        scores.append(_optional_score(fields[position["rating"]], path, line))
        members.append(_optional_count(fields[position["members"]], "members", path, line))

    if not anime_ids:
        raise DataError("the file has a header but no anime rows", path=str(path))
    if report is not None:
        report.catalog_rows = len(anime_ids)
        report.add_problem(
            "missing_title", len(untitled), "titled 'anime <anime_id>'", "anime without a name", untitled
        )

    frame = catalog_frame(anime_ids, titles, genres, types, episodes, scores, members)
    return Catalog(frame)


def _step(progress: Callable[[str], None] | None, message: str) -> None:
    logger.debug(message)
    if progress is not None:
        progress(message)


def _split_genres(text: str) -> tuple[str, ...]:
    return tuple(label for label in (part.strip() for part in text.split(",")) if label)


def _required_int(text: str, column: str, path: Path, line: int) -> int:
    value = parse_int(text)
    if value is None or value < 0:
        kind = "missing" if not text.strip() else f"{text!r} is not a non-negative integer"
        raise DataError(
            f"{column} {kind}; every row needs a non-negative integer {column}",
            path=str(path),
            line=line,
            value=text,
        )
    return value


def _optional_count(text: str, column: str, path: Path, line: int) -> int | None:
    if text.strip() in MISSING_TEXT:
        return None
    value = parse_int(text)
    if value is None or value < 0:
        raise DataError(
            f"{column} {text!r} is not a non-negative integer; expected a count, "
            "'Unknown' or an empty field",
            path=str(path),
            line=line,
            value=text,
        )
    return value


def _optional_score(text: str, path: Path, line: int) -> float:
    stripped = text.strip()
    if stripped in MISSING_TEXT:
        return float("nan")
    if not _DECIMAL.fullmatch(stripped) or not 0.0 <= float(stripped) <= 10.0:
        raise DataError(
            f"rating {text!r} is not a mean score from 0 to 10; expected a number or an empty field",
            path=str(path),
            line=line,
            value=text,
        )
    return float(stripped)
