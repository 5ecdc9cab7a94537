"""The SQLite store: round trips, several datasets, atomic replacement, extra data."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from animerec.data import Catalog, Dataset, Interactions
from animerec.data import store as store_module
from animerec.data.frames import catalog_frame
from animerec.data.loaders import load_format
from animerec.data.loaders.kaggle2016 import load_kaggle_2016
from animerec.data.store import Store, interaction_arrays
from animerec.errors import ConfigError, DataError, NotFoundError


def assert_same_dataset(actual: Dataset, expected: Dataset) -> None:
    assert actual.name == expected.name
    assert actual.format == expected.format
    assert actual.metadata == expected.metadata
    pd.testing.assert_frame_equal(actual.catalog.frame, expected.catalog.frame)
    assert actual.interactions.users == expected.interactions.users
    assert actual.interactions.items == expected.interactions.items
    assert actual.interactions.rating_scale == expected.interactions.rating_scale
    assert (actual.interactions.user_items != expected.interactions.user_items).nnz == 0
    assert (actual.interactions.ratings != expected.interactions.ratings).nnz == 0
    assert actual.interactions.user_items.nnz == expected.interactions.user_items.nnz
    assert actual.interactions.ratings.nnz == expected.interactions.ratings.nnz
    if expected.interactions.timestamps is None:
        assert actual.interactions.timestamps is None
    else:
        assert (actual.interactions.timestamps != expected.interactions.timestamps).nnz == 0


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store" / "animerec.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def small(kaggle_dir):
    return load_kaggle_2016(kaggle_dir(), name="small")


@pytest.fixture
def other(kaggle_dir):
    rows = ["10,1,9", "11,40,-1", "11,50,3"]
    return load_kaggle_2016(kaggle_dir(rating_rows=rows), name="other")


def test_round_trip_small(store, small):
    dataset, report = small

    store.save_dataset(dataset, report)
    loaded = store.load_dataset("small")

    assert_same_dataset(loaded, dataset)
    assert loaded.user_features is None
    assert store.load_report("small").to_dict() == report.to_dict()


def test_round_trip_survives_reopen(tmp_path, small):
    dataset, report = small
    path = tmp_path / "animerec.sqlite"
    with Store(path) as first:
        first.save_dataset(dataset, report)

    with Store(path) as second:
        loaded = second.load_dataset()

    assert_same_dataset(loaded, dataset)


def test_interaction_arrays_columns(small):
    dataset, _ = small

    arrays = interaction_arrays(dataset.interactions)

    assert arrays["user_id"].dtype == np.int64
    assert arrays["anime_id"].dtype == np.int64
    assert arrays["rating"].dtype == np.float32
    assert arrays["weight"].dtype == np.float32
    assert arrays["user_id"].tolist() == [1, 1, 1, 2, 2, 3]
    assert arrays["anime_id"].tolist() == [1, 9969, 28977, 1, 30, 40]
    assert np.array_equal(arrays["rating"], np.array([10, np.nan, 8, 7, np.nan, 1], dtype=np.float32), equal_nan=True)
    assert arrays["weight"].tolist() == [1.0] * 6


def test_ratings_only_pair_kept(small):
    dataset, _ = small
    interactions = dataset.interactions
    user_items = interactions.user_items.copy()
    user_items[2, interactions.items.index(40)] = 0.0
    user_items.eliminate_zeros()
    changed = Interactions(interactions.users, interactions.items, user_items, interactions.ratings)

    arrays = interaction_arrays(changed)

    assert arrays["user_id"].tolist()[-1] == 3
    assert arrays["anime_id"].tolist()[-1] == 40
    assert arrays["rating"].tolist()[-1] == 1.0
    assert arrays["weight"].tolist()[-1] == 0.0


def test_users_without_rows_kept(store, small):
    dataset, _ = small
    interactions = dataset.interactions
    more_users = Interactions.from_arrays(
        np.array([1, 5]),
        np.array([1, 30]),
        np.array([7, np.nan]),
        users=store_module.IdMap([1, 2, 5], kind="user_id"),
        items=interactions.items,
    )
    widened = Dataset(name="wide", catalog=dataset.catalog, interactions=more_users, format="test")

    store.save_dataset(widened)
    loaded = store.load_dataset("wide")

    assert loaded.interactions.users.ids.tolist() == [1, 2, 5]
    assert_same_dataset(loaded, widened)


def test_several_datasets_side_by_side(store, small, other):
    store.save_dataset(*small)
    store.save_dataset(*other)

    assert store.current_dataset_name() == "other"
    assert_same_dataset(store.load_dataset(), other[0])
    assert_same_dataset(store.load_dataset("small"), small[0])
    assert [entry["name"] for entry in store.list_datasets()] == ["other", "small"]
    assert [entry["current"] for entry in store.list_datasets()] == [True, False]


def test_reingest_makes_dataset_current(store, small, other):
    store.save_dataset(*small)
    store.save_dataset(*other)

    store.save_dataset(*small)

    assert store.current_dataset_name() == "small"
    assert len(store.list_datasets()) == 2


def test_list_datasets_counts(store, small):
    store.save_dataset(*small)

    (entry,) = store.list_datasets()

    assert entry["name"] == "small"
    assert entry["format"] == "kaggle-2016"
    assert entry["n_users"] == 3
    assert entry["n_items"] == 6
    assert entry["n_interactions"] == 6
    assert entry["n_ratings"] == 4
    assert entry["ingested_at"].endswith("+00:00")


def test_replace_leaves_no_old_rows(store, small, kaggle_dir):
    store.save_dataset(*small)
    replacement, report = load_kaggle_2016(kaggle_dir(rating_rows=["7,1,2"]), name="small")

    store.save_dataset(replacement, report)

    assert_same_dataset(store.load_dataset("small"), replacement)
    (count,) = store.connection.execute("SELECT COUNT(*) FROM catalog WHERE dataset = 'small'").fetchone()
    assert count == len(replacement.catalog)


def test_delete_dataset(store, small, other):
    store.save_dataset(*small)
    store.save_dataset(*other)

    store.delete_dataset("other")

    assert store.current_dataset_name() == "small"
    for table in ("catalog", "arrays"):
        (count,) = store.connection.execute(f"SELECT COUNT(*) FROM {table} WHERE dataset = 'other'").fetchone()
        assert count == 0
    with pytest.raises(NotFoundError):
        store.delete_dataset("other")


def test_empty_store_not_found(store):
    with pytest.raises(NotFoundError, match="animerec ingest"):
        store.current_dataset_name()
    with pytest.raises(NotFoundError, match="animerec ingest"):
        store.load_dataset()


def test_unknown_name_lists_stored(store, small):
    store.save_dataset(*small)

    with pytest.raises(NotFoundError) as caught:
        store.load_dataset("absent")

    assert "'absent'" in str(caught.value)
    assert "stored datasets: small" in str(caught.value)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 101, "spaces here"])
def test_invalid_dataset_name(store, small, name):
    dataset, report = small
    renamed = Dataset(name=name, catalog=dataset.catalog, interactions=dataset.interactions)

    with pytest.raises(ConfigError, match="invalid dataset name"):
        store.save_dataset(renamed, report)


def test_model_path_under_home(store):
    assert store.model_path("small", "als") == store.home / "models" / "small" / "als"
    with pytest.raises(ConfigError):
        store.model_path("small", "../als")


def test_default_path_in_animerec_home(animerec_home):
    with Store() as default:
        assert default.path == animerec_home / "animerec.sqlite"
        assert default.path.is_file()


def test_closed_store_raises(tmp_path):
    closed = Store(tmp_path / "animerec.sqlite")
    closed.close()

    with pytest.raises(ConfigError, match="closed"):
        closed.current_dataset_name()


def test_not_a_database_file(tmp_path):
    path = tmp_path / "animerec.sqlite"
    path.write_bytes(b"this is not a SQLite database" * 100)

    with pytest.raises(DataError) as caught:
        Store(path)

    assert caught.value.path == str(path)


def test_newer_schema_rejected(tmp_path):
    path = tmp_path / "animerec.sqlite"
    with Store(path) as created:
        with created.transaction() as connection:
            connection.execute("UPDATE store_info SET value = '99' WHERE key = 'schema_version'")

    with pytest.raises(DataError, match="schema version 99"):
        Store(path)


# --- atomicity -------------------------------------------------------------------------


def test_failed_save_keeps_previous(store, small, kaggle_dir, monkeypatch):
    store.save_dataset(*small)
    replacement, report = load_kaggle_2016(kaggle_dir(rating_rows=["7,1,2"]), name="small")
    original_write = Store._write_arrays
    written: list[str] = []

    def write_one_then_fail(self, connection, dataset_name, blobs):
        first = dict([next(iter(blobs.items()))])
        original_write(self, connection, dataset_name, first)
        written.extend(first)
        raise OSError("disk full")

    monkeypatch.setattr(Store, "_write_arrays", write_one_then_fail)

    with pytest.raises(OSError, match="disk full"):
        store.save_dataset(replacement, report)

    assert written == ["user_id"]
    assert_same_dataset(store.load_dataset("small"), small[0])
    assert store.load_report("small").rows_read == 6


def test_failed_new_dataset_leaves_nothing(store, small, other, monkeypatch):
    store.save_dataset(*small)

    def fail(self, connection, rows):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Store, "_write_catalog", fail)

    with pytest.raises(RuntimeError):
        store.save_dataset(*other)

    assert store.current_dataset_name() == "small"
    assert [entry["name"] for entry in store.list_datasets()] == ["small"]


def test_killed_process_keeps_previous(tmp_path, small, kaggle_dir):
    path = tmp_path / "animerec.sqlite"
    with Store(path) as first:
        first.save_dataset(*small)
    replacement_dir = kaggle_dir(rating_rows=["7,1,2", "8,30,5"])
    script = textwrap.dedent(
        f"""
        import os, signal
        from animerec.data.loaders.kaggle2016 import load_kaggle_2016
        from animerec.data.store import Store

        original_write = Store._write_arrays

        def write_then_die(self, connection, dataset_name, blobs):
            original_write(self, connection, dataset_name, blobs)
            os.kill(os.getpid(), signal.SIGKILL)

        Store._write_arrays = write_then_die
        dataset, report = load_kaggle_2016({str(replacement_dir)!r}, name="small")
        Store({str(path)!r}).save_dataset(dataset, report)
        """
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)

    assert result.returncode == -9, result.stderr.decode()
    with Store(path) as reopened:
        assert_same_dataset(reopened.load_dataset(), small[0])
        assert reopened.connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(
    "rating_rows",
    [["1,1,10", "abc,1,5"], ["1,1,11"], ["1,1,8.5"], ["1,777,5", "1,1,"], []],
)
def test_bad_input_keeps_stored_dataset(store, small, kaggle_dir, rating_rows):
    store.save_dataset(*small)
    directory = kaggle_dir(rating_rows=rating_rows)

    with pytest.raises(DataError):
        dataset, report = load_format("kaggle-2016", directory, name="small", unknown_anime="error")
        store.save_dataset(dataset, report)

    assert_same_dataset(store.load_dataset("small"), small[0])


def test_bad_bytes_keep_stored_dataset(store, small, kaggle_dir):
    store.save_dataset(*small)
    directory = kaggle_dir()
    (directory / "anime.csv").write_bytes(b"anime_id,name,genre,type,episodes,rating,members\n1,\xff,,,,,\n")

    with pytest.raises(DataError, match="UTF-8"):
        dataset, report = load_format("kaggle-2016", directory, name="small")
        store.save_dataset(dataset, report)

    assert_same_dataset(store.load_dataset("small"), small[0])


# --- large arrays, extra columns, user features ----------------------------------------


def test_arrays_split_into_chunks(store, small, monkeypatch):
    monkeypatch.setattr(store_module, "CHUNK_BYTES", 64)

    store.save_dataset(*small)

    (chunks,) = store.connection.execute(
        "SELECT COUNT(*) FROM arrays WHERE dataset = 'small' AND name = 'user_id'"
    ).fetchone()
    assert chunks > 1
    sizes = [len(row[0]) for row in store.connection.execute("SELECT data FROM arrays").fetchall()]
    assert max(sizes) <= 64
    assert_same_dataset(store.load_dataset("small"), small[0])


def test_extra_catalog_columns_round_trip(store, small):
    dataset, report = small
    frame = dataset.catalog.frame.copy()
    frame["studios"] = pd.Series([("Sunrise",), ("Bandai", "Sunrise"), None, (), ("A-1",), ("X",)], dtype=object)
    frame["year"] = pd.array([1998, None, 2010, 2011, 2012, 2013], dtype="Int64")
    frame["popularity"] = [1.5, np.nan, 3.0, 4.0, 5.0, 6.0]
    frame["synopsis"] = pd.Series(["Space.", None, "Edo.", "Quote \"x\"", "ü", ""], dtype=object)
    frame["airing"] = pd.array([False, True, None, False, False, True], dtype="boolean")
    frame["aired"] = pd.Series([{"from": "1998-04-03"}, None, [1, 2], "text", 5, None], dtype=object)
    frame["released"] = pd.to_datetime(["1998-04-03", None, "2010-01-01", "2011-02-02", "2012-03-03", "2013-04-04"])
    frame["weight"] = np.array([0.5, np.nan, 1.5, 2.5, 3.5, 4.5], dtype=np.float32)
    frame["source"] = pd.Series(["Manga", None, "Original", "Manga", "Novel", "Game"], dtype="str")
    frame["premiere"] = pd.Series([1995, pd.NA, 1996, 1997, 1998, 1999], dtype=object)
    frame["rank"] = np.arange(6, dtype=np.int64)
    richer = Dataset(
        name="rich",
        catalog=Catalog(frame),
        interactions=dataset.interactions,
        format="test",
        metadata={"note": "extra columns"},
    )

    store.save_dataset(richer, report)
    loaded = store.load_dataset("rich")

    pd.testing.assert_frame_equal(loaded.catalog.frame, richer.catalog.frame)
    assert list(loaded.catalog.frame.columns)[7:] == [
        "studios", "year", "popularity", "synopsis", "airing", "aired",
        "released", "weight", "source", "premiere", "rank",
    ]


def test_user_features_round_trip(store, small):
    dataset, report = small
    features = pd.DataFrame(
        {
            "age": [24, 53, 33],
            "gender": ["M", "F", None],
            "occupation": ["technician", "other", "writer"],
            "zip_code": ["85711", "94043", "E2A4H"],
        },
        index=pd.Index([1, 2, 3], name="user_id"),
    )
    with_features = Dataset(
        name="demo",
        catalog=dataset.catalog,
        interactions=dataset.interactions,
        format="movielens-100k",
        user_features=features,
    )

    store.save_dataset(with_features, report)
    loaded = store.load_dataset("demo").user_features

    pd.testing.assert_frame_equal(loaded, features)


def test_user_features_must_be_frame(store, small):
    dataset, report = small
    broken = Dataset(
        name="broken",
        catalog=dataset.catalog,
        interactions=dataset.interactions,
        user_features={"age": [1]},
    )

    with pytest.raises(ConfigError, match="DataFrame"):
        store.save_dataset(broken, report)


def test_rating_scale_round_trip(store, small):
    dataset, _ = small
    interactions = dataset.interactions
    rescaled = Interactions(
        interactions.users, interactions.items, interactions.user_items, interactions.ratings, (0.5, 5.0)
    )
    saved = Dataset(name="scaled", catalog=dataset.catalog, interactions=rescaled, format="test")

    store.save_dataset(saved)

    assert store.load_dataset("scaled").interactions.rating_scale == (0.5, 5.0)


def test_plain_sqlite_can_read_catalog(store, small):
    store.save_dataset(*small)

    with sqlite3.connect(store.path) as reader:
        rows = reader.execute(
            "SELECT anime_id, title, genres, episodes, score FROM catalog WHERE dataset = 'small' ORDER BY anime_id"
        ).fetchall()

    assert rows[0] == (1, "Cowboy Bebop", '["Action", "Adventure", "Comedy", "Drama", "Sci-Fi", "Space"]', 26, 8.82)
    assert rows[1] == (30, 'Unnamed "Special" & Co', "[]", None, None)


def test_catalog_frame_rejects_core_name():
    with pytest.raises(ValueError, match="clashes"):
        catalog_frame([1], ["A"], [()], ["TV"], [1], [1.0], [1], extra={"title": ["B"]})


# --- the real data ---------------------------------------------------------------------


def test_real_round_trip(shared_data, tmp_path):
    directory = shared_data / "anime-2016"
    if not (directory / "rating.csv").is_file():
        pytest.skip(f"{directory} has no rating.csv")
    dataset, report = load_kaggle_2016(directory)

    with Store(tmp_path / "animerec.sqlite") as real_store:
        real_store.save_dataset(dataset, report)
        loaded = real_store.load_dataset()

    assert_same_dataset(loaded, dataset)
    assert loaded.catalog.title(28977) == "Gintama°"



def test_timestamps_round_trip(store, small):
    dataset, report = small
    arrays = interaction_arrays(dataset.interactions)
    times = np.array([0, 978_300_760, 978_300_761, 2**40, 5, 6], dtype=np.int64)
    timed = Interactions.from_arrays(
        arrays["user_id"],
        arrays["anime_id"],
        arrays["rating"],
        items=dataset.interactions.items,
        timestamps=times,
    )
    saved = Dataset(name="timed", catalog=dataset.catalog, interactions=timed, format="test")

    store.save_dataset(saved, report)
    loaded = store.load_dataset("timed").interactions

    assert interaction_arrays(loaded)["timestamp"].tolist() == times.tolist()
    assert (loaded.timestamps != timed.timestamps).nnz == 0


def test_no_timestamps_stay_none(store, small):
    store.save_dataset(*small)

    assert store.load_dataset("small").interactions.timestamps is None


@pytest.mark.parametrize(
    ("format_name", "folder"),
    [("mal-2020", "anime-2020"), ("movielens-100k", "movielens-100k")],
)
def test_real_other_formats_round_trip(shared_data, tmp_path, format_name, folder):
    # Other loaders add extra catalogue columns, timestamps and user features; all must survive.
    from animerec.data.loaders import FORMATS

    if format_name not in FORMATS:
        pytest.skip(f"format {format_name} is not registered")
    dataset, report = load_format(format_name, shared_data / folder)

    with Store(tmp_path / "animerec.sqlite") as real_store:
        real_store.save_dataset(dataset, report)
        loaded = real_store.load_dataset()

    assert_same_dataset(loaded, dataset)
    if dataset.user_features is not None:
        pd.testing.assert_frame_equal(loaded.user_features, dataset.user_features)


def test_sqlite_error_becomes_data_error(store, small, other, monkeypatch):
    store.save_dataset(*small)

    def fail(self, connection, dataset_name, blobs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "_write_arrays", fail)

    with pytest.raises(DataError) as caught:
        store.save_dataset(*other)

    assert "disk is full" in str(caught.value)
    assert caught.value.path == str(store.path)
    assert [entry["name"] for entry in store.list_datasets()] == ["small"]
