"""Loaders for MovieLens (GroupLens) rating data, the standard rating-prediction benchmark.

Two layouts are supported; in both, movies take the place of anime (`anime_id` is the
movie id) and every row has a rating and a timestamp.

"movielens-100k" (`load_movielens_100k`), the files of the MovieLens 100K archive:

- `u.data`: tab-separated `user id, item id, rating, timestamp` rows, no header.
- `u.item`: `|`-separated `movie id|title|release date|video release date|IMDb URL|` and 19
  genre flags (0 or 1) in the order of `u.genre`. The file is Latin-1 encoded. The flags
  become the `genres` tuple (the flag "unknown" means no genre and is left out), and the
  year of the release date (`01-Jan-1995`) becomes the `year` column.
- `u.user` (optional): `user id|age|gender|occupation|zip code`, kept as
  `Dataset.user_features`, a DataFrame indexed by `user_id`.
- `u1.base`/`u1.test` … `u5.base`/`u5.test` (optional): the official five folds. Their
  test pairs are stored in `Dataset.metadata["folds"]` as
  `[{"name": "u1", "test": {"user_id": [...], "anime_id": [...]}}, ...]`, the layout that
  `animerec.evaluation.splits.predefined_rating_folds` reads; each fold trains on every
  other rating, which is exactly its `.base` file (checked, otherwise a `train` entry is
  stored too). `ua`/`ub` (ten test ratings per user) go to `metadata["folds_ab"]` in the
  same layout. `movielens_folds(directory)` reads the same folds without loading the rest.

"movielens-latest" (`load_movielens_latest`), the layout of ml-latest, ml-25m and ml-32m:
`ratings.csv` (`userId,movieId,rating,timestamp`, ratings in half stars) and `movies.csv`
(`movieId,title,genres`, genres separated by `|`; the year is read from the title's
trailing "(1995)").

The rating scale is the lowest and highest rating in the data (1–5 for 100K, 0.5–5 for
the half-star files). A row that cannot be read raises `DataError` naming the file, line
and value; movie ids missing from the movie file and duplicate pairs follow the policies
of the other loaders and are counted in the `IngestReport`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.data.interactions import Dataset
from animerec.data.loaders._common import check_unknown_anime_policy
from animerec.data.loaders._csv import check_file, parse_int
from animerec.data.loaders.csv import (
    RatingColumns,
    RatingRows,
    build_dataset,
    observed_scale,
    read_items_file,
    read_rating_rows,
)
from animerec.data.report import IngestReport
from animerec.errors import DataError

logger = logging.getLogger(__name__)

FORMAT_100K = "movielens-100k"
FORMAT_LATEST = "movielens-latest"
DATA_FILE = "u.data"
ITEM_FILE = "u.item"
USER_FILE = "u.user"
GENRE_FILE = "u.genre"
FOLD_NAMES = ("u1", "u2", "u3", "u4", "u5")
AB_FOLD_NAMES = ("ua", "ub")
# The genre flags of u.item, in file order, as listed by u.genre of the 100K archive.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
ITEM_FIXED_FIELDS = 5
MOVIE_TYPE = "Movie"

_YEAR_IN_DATE = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$")
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


# --- MovieLens 100K -------------------------------------------------------------------


def load_movielens_100k(
    directory: Path,
    *,
    name: str | None = None,
    unknown_anime: str = "drop",
    progress: Callable[[str], None] | None = None,
) -> tuple[Dataset, IngestReport]:
    """Load the MovieLens 100K files in `directory` (see the module docstring)."""
    check_unknown_anime_policy(unknown_anime)
    directory = Path(directory)
    dataset_name = name or FORMAT_100K
    data_path = directory / DATA_FILE
    item_path = directory / ITEM_FILE
    user_path = directory / USER_FILE
    check_file(data_path, "the MovieLens 100K u.data (user id, item id, rating, timestamp; tab-separated)")
    check_file(item_path, "the MovieLens 100K u.item (movie id|title|release date|...|19 genre flags)")
    report = IngestReport(
        format=FORMAT_100K,
        dataset_name=dataset_name,
        source_files=[str(data_path), str(item_path)] + ([str(user_path)] if user_path.is_file() else []),
    )

    _step(progress, f"reading {item_path}")
    catalog = read_item_file(item_path, read_genre_names(directory / GENRE_FILE))
    report.catalog_rows = len(catalog)

    _step(progress, f"reading {data_path}")
    rows = read_data_file(data_path)
    scale = observed_scale(rows.ratings, data_path)

    user_features = None
    if user_path.is_file():
        _step(progress, f"reading {user_path}")
        user_features = read_user_file(user_path)

    _step(progress, "reading the predefined folds")
    folds = movielens_folds(directory, FOLD_NAMES, data=rows)
    ab_folds = movielens_folds(directory, AB_FOLD_NAMES, data=rows)
    if folds:
        report.notes.append(f"predefined folds: {', '.join(fold['name'] for fold in folds)}")

    metadata: dict = {"source": str(directory), "rating_scale": list(scale)}
    if folds:
        metadata["folds"] = folds
    if ab_folds:
        metadata["folds_ab"] = ab_folds
    dataset = build_dataset(
        rows,
        catalog,
        report,
        ratings_path=data_path,
        items_file_name=ITEM_FILE,
        unknown_anime=unknown_anime,
        rating_scale=scale,
        dataset_name=dataset_name,
        format_name=FORMAT_100K,
        metadata=metadata,
        user_features=user_features,
        find_line=lambda index: index + 1,  # u.data has no header and no blank lines
    )
    logger.info(
        "loaded %s: %d movies, %d ratings, %d users",
        dataset_name, len(catalog), report.rows_used, report.n_users,
    )
    return dataset, report


def iter_fields(
    path: Path, delimiter: str, n_fields: int, *, encoding: str = "utf-8", what: str
) -> Iterator[tuple[int, list[str]]]:
    """Yield (line, fields) of a delimited file without header; blank lines are skipped.

    A line with another number of fields, or bytes the encoding cannot read, raises
    `DataError` naming the line.
    """
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"bytes that are not {encoding} at column {err.start + 1}; save the file as {encoding}",
                    path=str(path),
                    line=line_number,
                    value=raw[err.start : err.start + 1],
                ) from None
            if not text.strip():
                continue
            fields = text.split(delimiter)
            if len(fields) != n_fields:
                raise DataError(
                    f"expected {n_fields} {delimiter!r}-separated fields ({what}) but found {len(fields)}",
                    path=str(path),
                    line=line_number,
                    value=text,
                )
            yield line_number, fields


def read_data_file(path: Path) -> RatingRows:
    """Read `u.data` (or a `.base`/`.test` file): ids and timestamps are non-negative
    integers and the rating a positive integer.

    pyarrow parses the file; when that fails or a value breaks a rule, a line-by-line scan
    raises `DataError` at the first bad line.
    """
    names = ["user", "item", "rating", "time"]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(column_types={name: pa.int64() for name in names}),
        )
        columns = {name: table.column(name) for name in names}
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        columns = None
    if columns is not None and table.num_rows and not any(c.null_count for c in columns.values()):
        values = {name: column.to_numpy() for name, column in columns.items()}
        if bool(
            (values["user"] >= 0).all()
            and (values["item"] >= 0).all()
            and (values["time"] >= 0).all()
            and (values["rating"] >= 1).all()
        ):
            return RatingRows(
                user_ids=np.ascontiguousarray(values["user"], dtype=np.int64),
                item_ids=np.ascontiguousarray(values["item"], dtype=np.int64),
                ratings=values["rating"].astype(np.float32),
                timestamps=np.ascontiguousarray(values["time"], dtype=np.int64),
            )
    return _scan_data_file(path)


def _scan_data_file(path: Path) -> RatingRows:
    users: list[int] = []
    items: list[int] = []
    ratings: list[int] = []
    times: list[int] = []
    for line, fields in iter_fields(path, "\t", 4, what="user id, item id, rating, timestamp"):
        users.append(_non_negative(fields[0], "user id", path, line))
        items.append(_non_negative(fields[1], "item id", path, line))
        rating = parse_int(fields[2])
        if rating is None or rating < 1:
            raise DataError(
                f"rating {fields[2]!r} is not a positive integer; MovieLens 100K ratings are 1 to 5",
                path=str(path),
                line=line,
                value=fields[2],
            )
        ratings.append(rating)
        times.append(_non_negative(fields[3], "timestamp", path, line))
    if not users:
        raise DataError("the file has no rating rows", path=str(path))
    return RatingRows(
        user_ids=np.asarray(users, dtype=np.int64),
        item_ids=np.asarray(items, dtype=np.int64),
        ratings=np.asarray(ratings, dtype=np.float32),
        timestamps=np.asarray(times, dtype=np.int64),
    )


def read_genre_names(path: Path) -> tuple[str, ...]:
    """Read `u.genre` (`name|index` lines) into names by index; the built-in list of the
    100K archive when the file is absent."""
    if not path.is_file():
        return GENRES_100K
    names: dict[int, str] = {}
    for line, fields in iter_fields(path, "|", 2, encoding="latin-1", what="genre|index"):
        index = _non_negative(fields[1], "genre index", path, line)
        names[index] = fields[0].strip()
    if sorted(names) != list(range(len(names))):
        raise DataError(
            f"genre indexes must be 0..{len(names) - 1} without gaps, got {sorted(names)}",
            path=str(path),
        )
    return tuple(names[index] for index in range(len(names)))


def read_item_file(path: Path, genre_names: tuple[str, ...] = GENRES_100K) -> Catalog:
    """Read `u.item` into a `Catalog` with a nullable `year` column."""
    n_fields = ITEM_FIXED_FIELDS + len(genre_names)
    ids: list[int] = []
    titles: list[str] = []
    genres: list[tuple[str, ...]] = []
    years: list[int | None] = []
    first_line: dict[int, int] = {}
    what = f"movie id|title|release date|video release date|IMDb URL|{len(genre_names)} genre flags"
    for line, fields in iter_fields(path, "|", n_fields, encoding="latin-1", what=what):
        movie_id = _non_negative(fields[0], "movie id", path, line)
        if movie_id in first_line:
            raise DataError(
                f"duplicate movie id {movie_id} (first at line {first_line[movie_id]}); keep one row per movie",
                path=str(path),
                line=line,
                value=movie_id,
            )
        first_line[movie_id] = line
        labels = []
        for name, flag in zip(genre_names, fields[ITEM_FIXED_FIELDS:]):
            if flag.strip() not in ("0", "1"):
                raise DataError(
                    f"genre flag {name!r} is {flag!r}; flags must be 0 or 1",
                    path=str(path),
                    line=line,
                    value=flag,
                )
            if flag.strip() == "1" and name != "unknown":
                labels.append(name)
        ids.append(movie_id)
        titles.append(fields[1].strip() or f"movie {movie_id}")
        genres.append(tuple(labels))
        years.append(year_from_date(fields[2]))
    if not ids:
        raise DataError("the file has no movie rows", path=str(path))
    return _movie_catalog(ids, titles, genres, years)


def read_user_file(path: Path) -> pd.DataFrame:
    """Read `u.user` into a DataFrame indexed by `user_id` with age (int), gender,
    occupation and zip (strings; zip codes are not all numeric)."""
    records = []
    for line, fields in iter_fields(path, "|", 5, encoding="latin-1", what="user id|age|gender|occupation|zip code"):
        user_id = _non_negative(fields[0], "user id", path, line)
        age = _non_negative(fields[1], "age", path, line)
        records.append((user_id, age, fields[2].strip(), fields[3].strip(), fields[4].strip()))
    frame = pd.DataFrame.from_records(records, columns=["user_id", "age", "gender", "occupation", "zip"])
    if frame["user_id"].duplicated().any():
        duplicate = int(frame.loc[frame["user_id"].duplicated(), "user_id"].iloc[0])
        raise DataError(f"duplicate user id {duplicate}; keep one row per user", path=str(path), value=duplicate)
    return frame.set_index("user_id").sort_index()


def movielens_folds(
    directory: Path,
    names: tuple[str, ...] = FOLD_NAMES,
    *,
    data: RatingRows | None = None,
) -> list[dict]:
    """Read the predefined folds `<name>.base`/`<name>.test` that exist in `directory`.

    Returns `[{"name": name, "test": {"user_id": [...], "anime_id": [...]}}, ...]` (plain
    lists, so the folds survive the store's JSON). When `data` (the rows of `u.data`) is
    given and a `.base` file is not exactly every other pair, the fold also gets a `train`
    entry with the `.base` pairs.
    """
    directory = Path(directory)
    folds = []
    all_keys = _pair_keys(data) if data is not None else None
    for fold_name in names:
        base_path = directory / f"{fold_name}.base"
        test_path = directory / f"{fold_name}.test"
        if not test_path.is_file():
            continue
        test = read_data_file(test_path)
        fold: dict = {
            "name": fold_name,
            "test": {"user_id": test.user_ids.tolist(), "anime_id": test.item_ids.tolist()},
        }
        if base_path.is_file() and all_keys is not None:
            base = read_data_file(base_path)
            combined = np.concatenate([_pair_keys(base), _pair_keys(test)])
            if combined.size != all_keys.size or not np.array_equal(np.sort(combined), all_keys):
                fold["train"] = {"user_id": base.user_ids.tolist(), "anime_id": base.item_ids.tolist()}
        folds.append(fold)
    return folds


def _pair_keys(rows: RatingRows) -> np.ndarray:
    """Sorted unique user × item keys of rows (ids below 2**31)."""
    return np.unique(rows.user_ids * np.int64(2**31) + rows.item_ids)


# --- ml-latest layout -----------------------------------------------------------------


def load_movielens_latest(
    directory: Path,
    *,
    name: str | None = None,
    unknown_anime: str = "drop",
    progress: Callable[[str], None] | None = None,
) -> tuple[Dataset, IngestReport]:
    """Load `ratings.csv` and `movies.csv` of the ml-latest layout from `directory`."""
    check_unknown_anime_policy(unknown_anime)
    directory = Path(directory)
    dataset_name = name or FORMAT_LATEST
    ratings_path = directory / "ratings.csv"
    movies_path = directory / "movies.csv"
    check_file(ratings_path, "a MovieLens ratings.csv with the columns userId,movieId,rating,timestamp")
    check_file(movies_path, "a MovieLens movies.csv with the columns movieId,title,genres")
    report = IngestReport(
        format=FORMAT_LATEST, dataset_name=dataset_name, source_files=[str(ratings_path), str(movies_path)]
    )

    _step(progress, f"reading {movies_path}")
    plain = read_items_file(movies_path, id_column="movieId", report=report)
    frame = plain.frame
    catalog = _movie_catalog(
        frame["anime_id"].tolist(),
        frame["title"].tolist(),
        frame["genres"].tolist(),
        [year_from_title(title) for title in frame["title"]],
    )

    _step(progress, f"reading {ratings_path}")
    columns = RatingColumns("userId", "movieId", "rating", "timestamp")
    rows = read_rating_rows(ratings_path, columns)
    scale = observed_scale(rows.ratings, ratings_path)
    dataset = build_dataset(
        rows,
        catalog,
        report,
        ratings_path=ratings_path,
        items_file_name="movies.csv",
        unknown_anime=unknown_anime,
        rating_scale=scale,
        dataset_name=dataset_name,
        format_name=FORMAT_LATEST,
        metadata={"source": str(directory), "rating_scale": list(scale)},
        find_line=lambda index: index + 2,  # one header line; NOTE: assumes no blank lines
    )
    logger.info("loaded %s: %d movies, %d ratings", dataset_name, len(catalog), report.rows_used)
    return dataset, report


# --- shared helpers -------------------------------------------------------------------


def year_from_date(text: str) -> int | None:
    """Return the year of a `01-Jan-1995` date, or None when the field is empty or different."""
    match = _YEAR_IN_DATE.match(text.strip())
    return int(match.group(1)) if match else None


def year_from_title(title: str) -> int | None:
    """Return the year of a title ending in "(1995)", or None."""
    match = _YEAR_IN_TITLE.search(title)
    return int(match.group(1)) if match else None


def _movie_catalog(
    ids: list[int], titles: list[str], genres: list[tuple[str, ...]], years: list[int | None]
) -> Catalog:
    count = len(ids)
    frame = catalog_frame(
        ids,
        titles,
        genres,
        [MOVIE_TYPE] * count,
        [None] * count,
        np.full(count, np.nan),
        [None] * count,
        extra={"year": pd.array(years, dtype="Int64")},
    )
    return Catalog(frame)


def _non_negative(text: str, what: str, path: Path, line: int) -> int:
    value = parse_int(text)
    if value is None or value < 0:
        problem = "is missing" if not text.strip() else f"{text!r} is not a non-negative integer"
        raise DataError(f"{what} {problem}", path=str(path), line=line, value=text)
    return value


def _step(progress: Callable[[str], None] | None, message: str) -> None:
    logger.debug(message)
    if progress is not None:
        progress(message)
