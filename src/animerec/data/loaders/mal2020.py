"""Loader for the "Anime Recommendation Database 2020" (MyAnimeList data by hernan4444).

The folder holds:

- `anime.csv` (required): one row per anime. Only `MAL_ID` and `Name` are required; any
  subset of the other original columns is accepted, and `Unknown` (or an empty field) means
  missing. Core catalogue columns come from `Name` (HTML entities decoded), `Genres`
  (comma-separated whole labels), `Type`, `Episodes`, `Score` (site-wide mean) and
  `Members`. Further columns become extra catalogue columns: `English name` and `Japanese
  name` → `english_title`, `japanese_title`; `Aired` → `aired_start` (ISO date of the first
  air date, as precise as the source: "1998-04-03", "1998-04" or "1998"); `Premiered`
  ("Spring 1998") → `premiere_season` and `premiere_year` (else the year of `aired_start`);
  `Studios`, `Producers`, `Licensors` → tuples of names; `Source`; `Duration`; `Rating` →
  `age_rating`; `Ranked`, `Popularity`, `Favorites` → nullable integers. A synopsis comes
  from a `synopsis` (or the original's misspelt `sypnopsis`) column of `anime.csv` or of an
  optional `anime_with_synopsis.csv` (`MAL_ID` plus that column).
- `animelist.csv` (optional): `user_id,anime_id,rating,watching_status[,watched_episodes]`.
  `rating` is 0–10 where 0 means not rated; `watching_status` is a code from
  `watching_status.csv` (1 watching, 2 completed, 3 on hold, 4 dropped, 6 plan to watch) and
  sets the row's watch weight (`animerec.data.watch_status.STATUS_WEIGHTS`: completed 1.0,
  watching 0.8, on hold 0.3, plan to watch 0.1, dropped −0.5).
- `rating_complete.csv` (optional): `user_id,anime_id,rating` with ratings 1–10 of completed
  anime; each row gets the completed weight 1.0.

At least one of the two interaction files must be present. When both are, their rows are
combined: for a pair in both, the later `animelist.csv` row wins when it has a rating,
otherwise the rated `rating_complete.csv` row stays. Unknown anime ids and duplicate pairs
follow the same policies as the other loaders and are counted in the `IngestReport`.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

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
from animerec.data.watch_status import STATUS_CODES, STATUS_WEIGHTS, WatchStatus
from animerec.errors import DataError

logger = logging.getLogger(__name__)

FORMAT = "mal-2020"
ANIME_FILE = "anime.csv"
ANIMELIST_FILE = "animelist.csv"
RATING_FILE = "rating_complete.csv"
SYNOPSIS_FILE = "anime_with_synopsis.csv"
REQUIRED_ANIME_COLUMNS = ("MAL_ID", "Name")
MISSING_TEXT = frozenset({"", "Unknown", "Not available", "None found, add some"})

_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_PREMIERED = re.compile(r"(Spring|Summer|Fall|Winter)\s+([0-9]{4})")
# Source formats of the first air date, most precise first, with the ISO precision kept.
_AIRED_FORMATS = (("%b %d, %Y", "%Y-%m-%d"), ("%b, %Y", "%Y-%m"), ("%b %Y", "%Y-%m"), ("%Y", "%Y"))

# Original column -> extra catalogue column for plain text and integer values.
_TEXT_COLUMNS = {
    "English name": "english_title",
    "Japanese name": "japanese_title",
    "Source": "source",
    "Duration": "duration",
    "Rating": "age_rating",
}
_LIST_COLUMNS = {"Studios": "studios", "Producers": "producers", "Licensors": "licensors"}
_COUNT_COLUMNS = {"Ranked": "ranked", "Popularity": "popularity", "Favorites": "favorites"}

ANIMELIST_COLUMNS = (
    IntColumn("user_id", "a non-negative integer user id", lambda v: v >= 0),
    IntColumn("anime_id", "a non-negative integer anime id", lambda v: v >= 0),
    IntColumn("rating", "an integer from 0 (not rated) to 10", lambda v: (v >= 0) & (v <= 10)),
    IntColumn(
        "watching_status",
        f"a status code {sorted(STATUS_CODES)}",
        lambda v: np.isin(v, list(STATUS_CODES)),
    ),
)
RATING_COLUMNS = (
    IntColumn("user_id", "a non-negative integer user id", lambda v: v >= 0),
    IntColumn("anime_id", "a non-negative integer anime id", lambda v: v >= 0),
    IntColumn("rating", "an integer from 1 to 10", lambda v: (v >= 1) & (v <= 10)),
)


def load_mal_2020(
    directory: Path,
    *,
    name: str | None = None,
    unknown_anime: str = "drop",
    progress: Callable[[str], None] | None = None,
) -> tuple[Dataset, IngestReport]:
    """Load the 2020 MyAnimeList dataset from `directory` (see the module docstring).

    `name` defaults to "mal-2020".
    """
    check_unknown_anime_policy(unknown_anime)
    directory = Path(directory)
    dataset_name = name or FORMAT
    anime_path = directory / ANIME_FILE
    interaction_paths = [p for p in (directory / RATING_FILE, directory / ANIMELIST_FILE) if p.exists()]
    check_file(anime_path, f"the 2020 MyAnimeList {ANIME_FILE} with at least MAL_ID,Name")
    if not interaction_paths:
        raise DataError(
            f"neither {ANIMELIST_FILE} nor {RATING_FILE} found; the mal-2020 format needs at "
            "least one of them beside anime.csv",
            path=str(directory),
        )
    report = IngestReport(
        format=FORMAT,
        dataset_name=dataset_name,
        source_files=[str(anime_path), *(str(p) for p in interaction_paths)],
    )

    _step(progress, f"reading {anime_path}")
    synopsis_path = directory / SYNOPSIS_FILE
    catalog = read_catalog(anime_path, report, synopsis_path if synopsis_path.exists() else None)

    parts = []
    for path in interaction_paths:
        _step(progress, f"reading {path}")
        parts.append(_read_interactions(path))
    user_ids = np.concatenate([p[0] for p in parts])
    anime_ids = np.concatenate([p[1] for p in parts])
    ratings = np.concatenate([p[2] for p in parts])
    weights = np.concatenate([p[3] for p in parts])
    report.rows_read = int(user_ids.size)
    row_sources = np.concatenate([np.full(p[0].size, i) for i, p in enumerate(parts)])

    _step(progress, "checking anime ids and duplicates")
    unknown = unknown_anime_rows(anime_ids, catalog.items)
    if unknown.any():
        first = int(np.argmax(unknown))
        if unknown_anime == "error":
            source = interaction_paths[int(row_sources[first])]
            offset = first - int(np.flatnonzero(row_sources == row_sources[first])[0])
            header = read_header(source, ("user_id", "anime_id", "rating"))
            raise DataError(
                f"anime_id {int(anime_ids[first])} is not in {ANIME_FILE} "
                f"({int(unknown.sum())} rows have such ids); add the anime to {ANIME_FILE} "
                "or ingest with the unknown-anime policy 'drop' to leave those rows out",
                path=str(source),
                line=line_of_record(source, header, offset),
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
        user_ids, anime_ids, ratings, weights = (
            user_ids[known], anime_ids[known], ratings[known], weights[known]
        )
        lost_users = int(all_users.size - np.unique(user_ids).size)
        if lost_users:
            report.add_problem(
                "users_without_rows", lost_users, "dropped", "users whose every row had an unknown anime_id"
            )

    if user_ids.size == 0:
        raise DataError(
            "no interaction row refers to an anime in anime.csv; check that the files belong together",
            path=str(directory),
        )

    kept, n_duplicates, examples = deduplicate(user_ids, anime_ids, ratings)
    if n_duplicates:
        report.add_problem(
            "duplicates",
            n_duplicates,
            "last rated row wins; an unrated row never replaces a rating",
            "rows that repeat a user–anime pair (within or across files)",
            examples,
        )
        user_ids, anime_ids, ratings, weights = (
            user_ids[kept], anime_ids[kept], ratings[kept], weights[kept]
        )

    _step(progress, "building the interaction matrices")
    interactions = Interactions.from_arrays(
        user_ids, anime_ids, ratings, weights, items=catalog.items
    )
    dataset = Dataset(
        name=dataset_name,
        catalog=catalog,
        interactions=interactions,
        format=FORMAT,
        metadata={
            "source": str(directory),
            "status_weights": {status.value: weight for status, weight in STATUS_WEIGHTS.items()},
        },
    )
    report.rows_used = interactions.nnz
    report.n_users = interactions.n_users
    report.n_items = interactions.n_items
    report.n_ratings = int(interactions.ratings.nnz)
    report.notes.append(
        "watch weights by status: "
        + ", ".join(f"{status.value} {weight:g}" for status, weight in STATUS_WEIGHTS.items())
    )
    logger.info(
        "loaded %s: %d anime, %d of %d rows used, %d users",
        dataset_name, len(catalog), report.rows_used, report.rows_read, report.n_users,
    )
    return dataset, report


def _read_interactions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (user_id, anime_id, rating with NaN for unrated, watch weight) of one file."""
    if path.name == ANIMELIST_FILE:
        columns = read_int_columns(
            path, ANIMELIST_COLUMNS, expected="rows of user_id,anime_id,rating,watching_status"
        )
        ratings = columns["rating"].astype(np.float32)
        ratings[columns["rating"] == 0] = np.nan
        weight_of_code = np.zeros(max(STATUS_CODES) + 1, dtype=np.float32)
        for code, status in STATUS_CODES.items():
            weight_of_code[code] = STATUS_WEIGHTS[status]
        weights = weight_of_code[columns["watching_status"]]
    else:
        columns = read_int_columns(path, RATING_COLUMNS, expected="rows of user_id,anime_id,rating")
        ratings = columns["rating"].astype(np.float32)
        weights = np.full(ratings.shape, STATUS_WEIGHTS[WatchStatus.COMPLETED], dtype=np.float32)
    return columns["user_id"], columns["anime_id"], ratings, weights


# --- catalogue ----------------------------------------------------------------------------


def read_catalog(path: Path, report: IngestReport | None = None, synopsis_path: Path | None = None) -> Catalog:
    """Read and validate the 2020 `anime.csv` (any subset of the original columns)."""
    header = read_header(path, REQUIRED_ANIME_COLUMNS)
    position = {column: index for index, column in enumerate(header)}

    def field(fields: list[str], column: str) -> str:
        index = position.get(column)
        return fields[index].strip() if index is not None else ""

    anime_ids: list[int] = []
    titles: list[str] = []
    genres: list[tuple[str, ...]] = []
    types: list[str | None] = []
    episodes: list[int | None] = []
    scores: list[float] = []
    members: list[int | None] = []
    extra: dict[str, list] = {}
    first_line: dict[int, int] = {}
    untitled: list[str] = []
    synopsis_column = next((c for c in ("synopsis", "sypnopsis") if c in position), None)

    for line, fields in iter_records(path, header):
        anime_id = _required_id(field(fields, "MAL_ID"), path, line)
        if anime_id in first_line:
            raise DataError(
                f"duplicate MAL_ID {anime_id} (first at line {first_line[anime_id]}); keep one row per anime",
                path=str(path),
                line=line,
                value=anime_id,
            )
        first_line[anime_id] = line
        title = html.unescape(field(fields, "Name"))
        if not title:
            title = f"anime {anime_id}"
            untitled.append(f"MAL_ID {anime_id} at line {line}")

        anime_ids.append(anime_id)
        titles.append(title)
        genres.append(_split_list(field(fields, "Genres")))
        type_text = field(fields, "Type")
        types.append(None if type_text in MISSING_TEXT else type_text)
        episodes.append(_optional_count(field(fields, "Episodes"), "Episodes", path, line))
        scores.append(_optional_score(field(fields, "Score"), path, line))
        members.append(_optional_count(field(fields, "Members"), "Members", path, line))

        row: dict[str, object] = {}
        for source, target in _TEXT_COLUMNS.items():
            if source in position:
                text = html.unescape(field(fields, source))
                row[target] = None if text in MISSING_TEXT else text
        for source, target in _LIST_COLUMNS.items():
            if source in position:
                row[target] = _split_list(field(fields, source))
        for source, target in _COUNT_COLUMNS.items():
            if source in position:
                row[target] = _optional_count(field(fields, source), source, path, line)
        aired = _aired_start(field(fields, "Aired")) if "Aired" in position else None
        if "Aired" in position:
            row["aired_start"] = aired
        season, year = _premiered(field(fields, "Premiered")) if "Premiered" in position else (None, None)
        if "Premiered" in position:
            row["premiere_season"] = season
        if "Premiered" in position or "Aired" in position:
            if year is None and aired:
                year = int(aired[:4])
            row["premiere_year"] = year
        if synopsis_column is not None:
            text = field(fields, synopsis_column)
            row["synopsis"] = None if text in MISSING_TEXT else text
        for key, value in row.items():
            extra.setdefault(key, []).append(value)

    if not anime_ids:
        raise DataError("the file has a header but no anime rows", path=str(path))
    if synopsis_path is not None and synopsis_column is None:
        extra["synopsis"] = _read_synopses(synopsis_path, anime_ids)
    if report is not None:
        report.catalog_rows = len(anime_ids)
        report.add_problem(
            "missing_title", len(untitled), "titled 'anime <anime_id>'", "anime without a name", untitled
        )

    integer_columns = {"premiere_year", *_COUNT_COLUMNS.values()}
    extra_columns = {
        column: pd.Series(pd.array(values, dtype="Int64")) if column in integer_columns else values
        for column, values in extra.items()
    }
    frame = catalog_frame(
        anime_ids, titles, genres, types, episodes, scores, members, extra=extra_columns
    )
    return Catalog(frame)


def _read_synopses(path: Path, anime_ids: Sequence[int]) -> list[str | None]:
    """Return the synopsis of each anime id from `anime_with_synopsis.csv` (None when absent)."""
    header = read_header(path, ("MAL_ID",))
    column = next((c for c in ("synopsis", "sypnopsis") if c in header), None)
    if column is None:
        raise DataError(
            f"{SYNOPSIS_FILE} has no synopsis column (expected 'synopsis' or 'sypnopsis')",
            path=str(path),
            line=1,
        )
    id_position, text_position = header.index("MAL_ID"), header.index(column)
    texts: dict[int, str] = {}
    for line, fields in iter_records(path, header):
        anime_id = _required_id(fields[id_position].strip(), path, line)
        text = fields[text_position].strip()
        if text not in MISSING_TEXT:
            texts[anime_id] = text
    return [texts.get(anime_id) for anime_id in anime_ids]


def _split_list(text: str) -> tuple[str, ...]:
    if text in MISSING_TEXT:
        return ()
    labels = (html.unescape(part.strip()) for part in text.split(","))
    return tuple(label for label in labels if label and label not in MISSING_TEXT)


def _aired_start(text: str) -> str | None:
    """Return the ISO start date of an `Aired` value ("Apr 3, 1998 to Apr 24, 1999")."""
    start = text.split(" to ", 1)[0].strip()
    if start in MISSING_TEXT or start == "?":
        return None
    for source_format, iso_format in _AIRED_FORMATS:
        try:
            return datetime.strptime(start, source_format).strftime(iso_format)
        except ValueError:
            continue
    return None


def _premiered(text: str) -> tuple[str | None, int | None]:
    match = _PREMIERED.fullmatch(text)
    if match is None:
        return None, None
    return match.group(1), int(match.group(2))


def _step(progress: Callable[[str], None] | None, message: str) -> None:
    logger.debug(message)
    if progress is not None:
        progress(message)


def _required_id(text: str, path: Path, line: int) -> int:
    value = parse_int(text)
    if value is None or value < 0:
        kind = "missing" if not text else f"{text!r} is not a non-negative integer"
        raise DataError(
            f"MAL_ID {kind}; every row needs a non-negative integer MAL_ID",
            path=str(path),
            line=line,
            value=text,
        )
    return value


def _optional_count(text: str, column: str, path: Path, line: int) -> int | None:
    """Parse a count; the original writes some counts as whole decimals (Ranked "28.0")."""
    if text in MISSING_TEXT:
        return None
    value = parse_int(text)
    if value is None and _DECIMAL.fullmatch(text) and float(text).is_integer():
        value = int(float(text))
    if value is None or value < 0:
        raise DataError(
            f"{column} {text!r} is not a non-negative integer; expected a count or 'Unknown'",
            path=str(path),
            line=line,
            value=text,
        )
    return value


def _optional_score(text: str, path: Path, line: int) -> float:
    if text in MISSING_TEXT:
        return float("nan")
    if not _DECIMAL.fullmatch(text) or not 0.0 <= float(text) <= 10.0:
        raise DataError(
            f"Score {text!r} is not a mean score from 0 to 10; expected a number or 'Unknown'",
            path=str(path),
            line=line,
            value=text,
        )
    return float(text)
