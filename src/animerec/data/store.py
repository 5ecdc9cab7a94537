"""The embedded store: ingested datasets in one SQLite file, side by side under names.

Layout (schema version 1):

- `datasets`: one row per dataset with its format, counts, ingest time and order, metadata
  and ingest report (JSON), the kinds of extra catalogue columns, and user features
  (a Parquet blob, for example MovieLens demographics) when present.
- `catalog`: one row per anime and dataset with the core columns; further columns that
  richer loaders add (studios, source, synopsis, year, ...) are kept in a JSON `extra` column.
- `arrays`: interaction column arrays as `.npy` blobs (`user_id` int64, `anime_id` int64,
  `rating` float32 with NaN for watched-but-unrated, `weight` float32, and `timestamp` int64
  Unix seconds when the source has times) plus the user ids of the user map, split into
  chunks of at most `CHUNK_BYTES`. Blobs are loaded with
  `allow_pickle=False`.

`save_dataset` replaces a dataset in one transaction, so an exception or a killed process
leaves the previous state (SQLite's write-ahead log rolls back an unfinished transaction).
Other parts of animerec may add their own tables through `transaction()`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

import animerec
from animerec.config import animerec_home
from animerec.data.catalog import CORE_COLUMNS, Catalog
from animerec.data.frames import catalog_frame
from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions
from animerec.data.report import IngestReport
from animerec.errors import ConfigError, DataError, NotFoundError

logger = logging.getLogger(__name__)

DATABASE_FILE = "animerec.sqlite"
SCHEMA_VERSION = 1
# SQLite rejects values over 1,000,000,000 bytes by default, so large arrays are split.
CHUNK_BYTES = 256 * 1024 * 1024
# Interaction columns every dataset has, plus the user ids of its user map; "timestamp" is optional.
REQUIRED_ARRAYS = ("user_id", "anime_id", "rating", "weight", "users")
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    ingest_order INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    n_users INTEGER NOT NULL,
    n_items INTEGER NOT NULL,
    n_interactions INTEGER NOT NULL,
    n_ratings INTEGER NOT NULL,
    rating_min REAL NOT NULL,
    rating_max REAL NOT NULL,
    metadata TEXT NOT NULL,
    report TEXT,
    extra_columns TEXT NOT NULL,
    user_features BLOB
);
CREATE TABLE IF NOT EXISTS catalog (
    dataset TEXT NOT NULL,
    anime_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    genres TEXT NOT NULL,
    type TEXT,
    episodes INTEGER,
    score REAL,
    members INTEGER,
    extra TEXT,
    PRIMARY KEY (dataset, anime_id)
);
CREATE TABLE IF NOT EXISTS arrays (
    dataset TEXT NOT NULL,
    name TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (dataset, name, chunk)
);
"""

_DATASET_TABLES = ("catalog", "arrays")


class Store:
    """A SQLite file with ingested datasets; by default `animerec_home()/animerec.sqlite`.

    One `Store` may be shared between threads: a lock serialises its use of the connection.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else animerec_home() / DATABASE_FILE
        self.home = self.path.parent
        self.home.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._connection: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            # WAL lets readers (the HTTP server) go on while an ingest writes; with
            # synchronous=NORMAL a killed process still loses only the unfinished transaction.
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._create_schema()
        except sqlite3.DatabaseError as err:
            self.close()
            raise DataError(
                f"cannot open the store: {err}; move the file away to start a new store",
                path=str(self.path),
            ) from err

    # --- connection -------------------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The open SQLite connection (autocommit mode; use `transaction()` to write)."""
        if self._connection is None:
            raise ConfigError(f"the store {self.path} is closed")
        return self._connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one write transaction: commit at the end, roll back on any exception."""
        with self._lock:
            connection = self.connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                # SQLite ends the transaction itself after some errors (a full disk).
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; later calls raise `ConfigError`."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _create_schema(self) -> None:
        with self.transaction() as connection:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            row = connection.execute("SELECT value FROM store_info WHERE key = 'schema_version'").fetchone()
            if row is None:
                connection.execute(
                    "INSERT INTO store_info (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise DataError(
                    f"the store has schema version {row[0]}, newer than this animerec "
                    f"({animerec.__version__}) reads ({SCHEMA_VERSION}); upgrade animerec",
                    path=str(self.path),
                )

    # --- datasets ---------------------------------------------------------------------

    def save_dataset(self, dataset: Dataset, report: IngestReport | None = None) -> None:
        """Store `dataset` under its name, replacing any dataset of that name atomically."""
        check_dataset_name(dataset.name)
        arrays = interaction_arrays(dataset.interactions)
        arrays["users"] = dataset.interactions.users.ids
        blobs = {name: _npy_bytes(array) for name, array in arrays.items()}
        extra_specs = extra_column_specs(dataset.catalog.frame)
        catalog_rows = list(_catalog_rows(dataset.name, dataset.catalog.frame, extra_specs))
        user_features = _parquet_bytes(dataset.user_features) if dataset.user_features is not None else None
        interactions = dataset.interactions

        try:
            with self.transaction() as connection:
                for table in _DATASET_TABLES:
                    connection.execute(f"DELETE FROM {table} WHERE dataset = ?", (dataset.name,))
                connection.execute("DELETE FROM datasets WHERE name = ?", (dataset.name,))
                (last_order,) = connection.execute("SELECT COALESCE(MAX(ingest_order), 0) FROM datasets").fetchone()
                connection.execute(
                    "INSERT INTO datasets (name, format, ingest_order, ingested_at, n_users, n_items,"
                    " n_interactions, n_ratings, rating_min, rating_max, metadata, report,"
                    " extra_columns, user_features) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        dataset.name,
                        dataset.format,
                        int(last_order) + 1,
                        datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        interactions.n_users,
                        interactions.n_items,
                        interactions.nnz,
                        int(interactions.ratings.nnz),
                        float(interactions.rating_scale[0]),
                        float(interactions.rating_scale[1]),
                        json.dumps(dataset.metadata, default=str),
                        json.dumps(report.to_dict()) if report is not None else None,
                        json.dumps(list(extra_specs.items())),
                        user_features,
                    ),
                )
                self._write_catalog(connection, catalog_rows)
                self._write_arrays(connection, dataset.name, blobs)
        except sqlite3.Error as err:
            raise DataError(
                f"could not save dataset {dataset.name!r}: {err}; the store keeps its previous "
                "state. Check free disk space and write permission, then ingest again",
                path=str(self.path),
            ) from err
        logger.info("saved dataset %s (%d interactions) to %s", dataset.name, interactions.nnz, self.path)

    def _write_catalog(self, connection: sqlite3.Connection, rows: list[tuple]) -> None:
        connection.executemany(
            "INSERT INTO catalog (dataset, anime_id, title, genres, type, episodes, score, members, extra)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _write_arrays(self, connection: sqlite3.Connection, dataset_name: str, blobs: dict[str, bytes]) -> None:
        for name, blob in blobs.items():
            view = memoryview(blob)
            n_chunks = max(1, math.ceil(len(blob) / CHUNK_BYTES))
            for chunk in range(n_chunks):
                connection.execute(
                    "INSERT INTO arrays (dataset, name, chunk, data) VALUES (?, ?, ?, ?)",
                    (dataset_name, name, chunk, view[chunk * CHUNK_BYTES : (chunk + 1) * CHUNK_BYTES]),
                )

    def load_dataset(self, name: str | None = None) -> Dataset:
        """Load a dataset by name, or the most recently ingested one when `name` is None."""
        if name is None:
            name = self.current_dataset_name()
        with self._lock:
            row = self.connection.execute(
                "SELECT format, rating_min, rating_max, metadata, extra_columns, user_features"
                " FROM datasets WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                self._raise_not_found(name)
            format_name, rating_min, rating_max, metadata, extra_columns, user_features_blob = row
            extra_specs = dict(json.loads(extra_columns))
            catalog = Catalog(self._read_catalog(name, extra_specs))
            arrays = {array_name: self._read_array(name, array_name) for array_name in REQUIRED_ARRAYS}
            if self._has_array(name, "timestamp"):
                arrays["timestamp"] = self._read_array(name, "timestamp")

        interactions = Interactions.from_arrays(
            arrays["user_id"],
            arrays["anime_id"],
            arrays["rating"],
            arrays["weight"],
            users=IdMap(arrays["users"], kind="user_id"),
            items=catalog.items,
            rating_scale=(float(rating_min), float(rating_max)),
            timestamps=arrays.get("timestamp"),
        )
        user_features = _read_parquet(user_features_blob) if user_features_blob is not None else None
        return Dataset(
            name=name,
            catalog=catalog,
            interactions=interactions,
            format=format_name,
            user_features=user_features,
            metadata=json.loads(metadata),
        )

    def load_report(self, name: str | None = None) -> IngestReport | None:
        """Return the ingest report saved with a dataset (None when it was saved without one)."""
        if name is None:
            name = self.current_dataset_name()
        with self._lock:
            row = self.connection.execute("SELECT report FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._raise_not_found(name)
        return IngestReport.from_dict(json.loads(row[0])) if row[0] is not None else None

    def current_dataset_name(self) -> str:
        """Return the name of the most recently ingested dataset."""
        with self._lock:
            row = self.connection.execute(
                "SELECT name FROM datasets ORDER BY ingest_order DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"the store {self.path} has no dataset yet; run `animerec ingest FORMAT DATA_DIR` first"
            )
        return str(row[0])

    def list_datasets(self) -> list[dict[str, Any]]:
        """Describe every stored dataset, most recently ingested first."""
        with self._lock:
            rows = self.connection.execute(
                "SELECT name, format, ingested_at, n_users, n_items, n_interactions, n_ratings"
                " FROM datasets ORDER BY ingest_order DESC"
            ).fetchall()
        keys = ("name", "format", "ingested_at", "n_users", "n_items", "n_interactions", "n_ratings")
        datasets = [dict(zip(keys, row)) for row in rows]
        for position, dataset in enumerate(datasets):
            dataset["current"] = position == 0
        return datasets

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset; raise `NotFoundError` when there is none of that name."""
        with self.transaction() as connection:
            deleted = connection.execute("DELETE FROM datasets WHERE name = ?", (name,)).rowcount
            if not deleted:
                self._raise_not_found(name)
            for table in _DATASET_TABLES:
                connection.execute(f"DELETE FROM {table} WHERE dataset = ?", (name,))

    def model_path(self, dataset_name: str, model_name: str) -> Path:
        """Return the folder of a trained model bundle: home/models/<dataset>/<model>."""
        check_dataset_name(dataset_name)
        check_dataset_name(model_name, what="model name")
        return self.home / "models" / dataset_name / model_name

    def _raise_not_found(self, name: str) -> None:
        names = [dataset["name"] for dataset in self.list_datasets()]
        known = f"stored datasets: {', '.join(names)}" if names else "the store has no dataset yet"
        raise NotFoundError(
            f"no dataset named {name!r} in {self.path} ({known}); "
            "run `animerec ingest FORMAT DATA_DIR --name NAME` to add it"
        )

    def _read_catalog(self, name: str, extra_specs: dict[str, dict[str, str]]) -> pd.DataFrame:
        rows = self.connection.execute(
            "SELECT anime_id, title, genres, type, episodes, score, members, extra"
            " FROM catalog WHERE dataset = ? ORDER BY anime_id",
            (name,),
        ).fetchall()
        anime_id, title, genres, types, episodes, score, members, extra = (
            list(column) for column in zip(*rows)
        ) if rows else ([] for _ in range(8))
        extra_values: dict[str, list[Any]] = {column: [] for column in extra_specs}
        for text in extra:
            values = json.loads(text) if text else {}
            for column in extra_specs:
                extra_values[column].append(values.get(column))
        return catalog_frame(
            anime_id,
            title,
            [tuple(json.loads(g)) for g in genres],
            types,
            episodes,
            [np.nan if s is None else s for s in score],
            members,
            extra={column: _restore_column(values, extra_specs[column]) for column, values in extra_values.items()},
        )

    def _has_array(self, dataset_name: str, array_name: str) -> bool:
        row = self.connection.execute(
            "SELECT 1 FROM arrays WHERE dataset = ? AND name = ? LIMIT 1", (dataset_name, array_name)
        ).fetchone()
        return row is not None

    def _read_array(self, dataset_name: str, array_name: str) -> np.ndarray:
        chunks = self.connection.execute(
            "SELECT data FROM arrays WHERE dataset = ? AND name = ? ORDER BY chunk",
            (dataset_name, array_name),
        ).fetchall()
        if not chunks:
            raise DataError(
                f"dataset {dataset_name!r} has no {array_name!r} array; ingest it again",
                path=str(self.path),
            )
        blob = chunks[0][0] if len(chunks) == 1 else b"".join(chunk[0] for chunk in chunks)
        return np.load(io.BytesIO(blob), allow_pickle=False)


def check_dataset_name(name: str, what: str = "dataset name") -> None:
    """Raise `ConfigError` unless `name` is a safe file and table name."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid {what} {name!r}: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def interaction_arrays(interactions: Interactions) -> dict[str, np.ndarray]:
    """Return the interaction column arrays, one entry per stored user–anime pair.

    Pairs come in user_items order (by user, then anime). `rating` is NaN where the pair has
    no rating. A pair that only the ratings matrix contains gets the weight 0.0.
    """
    user_items = _sorted_csr(interactions.user_items)
    ratings = _sorted_csr(interactions.ratings)
    n_items = interactions.n_items

    rows = np.repeat(np.arange(interactions.n_users, dtype=np.int64), np.diff(user_items.indptr))
    cols = user_items.indices.astype(np.int64)
    weight = user_items.data.astype(np.float32)
    rating = np.full(rows.shape, np.nan, dtype=np.float32)

    rated_rows = np.repeat(np.arange(interactions.n_users, dtype=np.int64), np.diff(ratings.indptr))
    rated_cols = ratings.indices.astype(np.int64)
    pair_keys = rows * n_items + cols
    rated_keys = rated_rows * n_items + rated_cols
    positions = np.searchsorted(pair_keys, rated_keys)
    found = positions < pair_keys.size
    found[found] = pair_keys[positions[found]] == rated_keys[found]
    rating[positions[found]] = ratings.data[found]

    timestamp = None
    if interactions.timestamps is not None:
        timestamp = _values_at(_sorted_csr(interactions.timestamps), pair_keys, n_items, np.int64)

    if not found.all():
        rows = np.concatenate([rows, rated_rows[~found]])
        cols = np.concatenate([cols, rated_cols[~found]])
        weight = np.concatenate([weight, np.zeros(int((~found).sum()), dtype=np.float32)])
        rating = np.concatenate([rating, ratings.data[~found].astype(np.float32)])
        if timestamp is not None:
            timestamp = np.concatenate([timestamp, np.zeros(int((~found).sum()), dtype=np.int64)])

    arrays = {
        "user_id": interactions.users.ids[rows],
        "anime_id": interactions.items.ids[cols],
        "rating": rating,
        "weight": weight,
    }
    if timestamp is not None:
        arrays["timestamp"] = timestamp
    return arrays


def _values_at(matrix: sp.csr_matrix, pair_keys: np.ndarray, n_items: int, dtype: type) -> np.ndarray:
    """Return the matrix values at the pairs `row * n_items + col` (0 where not stored)."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = rows * n_items + matrix.indices.astype(np.int64)
    values = np.zeros(pair_keys.shape, dtype=dtype)
    positions = np.searchsorted(pair_keys, keys)
    inside = positions < pair_keys.size
    inside[inside] = pair_keys[positions[inside]] == keys[inside]
    values[positions[inside]] = matrix.data[inside]
    return values


def extra_column_specs(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Describe each non-core catalogue column so that it can be restored from JSON.

    A spec has the value `kind` (int, float, bool, datetime, tuple, str or json), the pandas
    `dtype` name, and the `missing` marker the column uses (none, nan, na or nat).
    """
    specs: dict[str, dict[str, str]] = {}
    for column in frame.columns:
        if column in CORE_COLUMNS:
            continue
        series = frame[column]
        missing = series.isna()
        present = series[~missing]
        if pd.api.types.is_bool_dtype(series.dtype):
            kind = "bool"
        elif pd.api.types.is_integer_dtype(series.dtype):
            kind = "int"
        elif pd.api.types.is_float_dtype(series.dtype):
            kind = "float"
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            kind = "datetime"
        elif len(present) and all(isinstance(value, tuple) for value in present):
            kind = "tuple"
        elif all(isinstance(value, str) for value in present):
            kind = "str"
        else:
            kind = "json"
        specs[str(column)] = {
            "kind": kind,
            "dtype": str(series.dtype),
            "missing": _missing_marker(series[missing].iloc[0]) if missing.any() else "none",
        }
    return specs


def _missing_marker(value: Any) -> str:
    if value is pd.NA:
        return "na"
    if value is pd.NaT:
        return "nat"
    if isinstance(value, float):
        return "nan"
    return "none"


def _catalog_rows(
    dataset_name: str, frame: pd.DataFrame, extra_specs: dict[str, dict[str, str]]
) -> Iterator[tuple]:
    extra_columns = [frame[column].tolist() for column in extra_specs]
    core = zip(
        frame["anime_id"].tolist(),
        frame["title"].tolist(),
        frame["genres"].tolist(),
        frame["type"].tolist(),
        frame["episodes"].tolist(),
        frame["score"].tolist(),
        frame["members"].tolist(),
    )
    for position, (anime_id, title, genres, type_, episodes, score, members) in enumerate(core):
        extra = None
        if extra_specs:
            extra = json.dumps(
                {
                    column: _json_value(values[position])
                    for column, values in zip(extra_specs, extra_columns)
                }
            )
        yield (
            dataset_name,
            int(anime_id),
            str(title),
            json.dumps(list(genres) if isinstance(genres, (tuple, list)) else []),
            type_ if isinstance(type_, str) else None,
            _optional(episodes, int),
            _optional(score, float),
            _optional(members, int),
            extra,
        )


def _optional(value: Any, convert: type) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return convert(value)


def _json_value(value: Any) -> Any:
    """Convert one catalogue value to JSON; missing values become null."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (tuple, list)):
        return [_json_value(item) for item in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return value


def _restore_column(values: list[Any], spec: dict[str, str]) -> pd.Series:
    """Rebuild one extra catalogue column from its JSON values and its spec."""
    missing = {"none": None, "nan": np.nan, "na": pd.NA, "nat": pd.NaT}[spec["missing"]]
    kind, dtype = spec["kind"], spec["dtype"]
    if kind == "tuple":
        return pd.Series([tuple(v) if v is not None else missing for v in values], dtype=object)
    if kind == "datetime":
        return pd.Series(pd.to_datetime(values)).astype(dtype)
    items = [missing if v is None else v for v in values]
    if dtype == "object":
        return pd.Series(items, dtype=object)
    return pd.Series(pd.array(items, dtype=dtype))


def _sorted_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix)
    if not matrix.has_sorted_indices:
        matrix = matrix.copy()
        matrix.sort_indices()
    return matrix


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _parquet_bytes(frame: Any) -> bytes:
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"user_features must be a pandas DataFrame, not {type(frame).__name__}")
    buffer = io.BytesIO()
    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), buffer)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise ConfigError(f"user_features cannot be stored: {err}; use plain typed columns") from err
    return buffer.getvalue()


def _read_parquet(blob: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(blob)).to_pandas()
