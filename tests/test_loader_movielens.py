"""The MovieLens loaders: small hand-written folders, error locations, and the real 100K data."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from animerec.data.loaders import format_names, load_format
from animerec.data.loaders.movielens import (
    load_movielens_100k,
    load_movielens_latest,
    movielens_folds,
    read_data_file,
    year_from_date,
    year_from_title,
)
from animerec.errors import DataError

FLAGS_ACTION_COMEDY = "|".join("1" if i in (1, 5) else "0" for i in range(19))
FLAGS_UNKNOWN = "|".join("1" if i == 0 else "0" for i in range(19))
ITEM_ROWS = (
    f"1|Toy Story (1995)|01-Jan-1995||http://example.org/1|{FLAGS_ACTION_COMEDY}",
    f"2|Café Movie (1996)|||http://example.org/2|{FLAGS_UNKNOWN}",
    f"3|Third (1997)|12-Mar-1997||http://example.org/3|{FLAGS_ACTION_COMEDY}",
)
DATA_ROWS = ("1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t1\t1\t881250951", "2\t3\t4\t881250952")


def write_100k(directory: Path, data_rows=DATA_ROWS, item_rows=ITEM_ROWS, user_rows=None, folds=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text("\n".join(data_rows) + "\n")
    (directory / "u.item").write_bytes(("\n".join(item_rows) + "\n").encode("latin-1"))
    if user_rows is not None:
        (directory / "u.user").write_text("\n".join(user_rows) + "\n")
    for name, (base, test) in (folds or {}).items():
        (directory / f"{name}.base").write_text("\n".join(base) + "\n")
        (directory / f"{name}.test").write_text("\n".join(test) + "\n")
    return directory


def test_formats_registered():
    names = format_names()

    assert "movielens-100k" in names
    assert "movielens-latest" in names


def test_100k_known_values(tmp_path):
    dataset, report = load_movielens_100k(write_100k(tmp_path / "ml"))
    interactions = dataset.interactions

    assert dataset.catalog.items.ids.tolist() == [1, 2, 3]
    assert dataset.catalog.title(2) == "Café Movie (1996)"
    assert dataset.catalog.row(1)["genres"] == ["Action", "Comedy"]
    assert dataset.catalog.row(2)["genres"] == []
    assert dataset.catalog.row(1)["year"] == 1995
    assert dataset.catalog.row(2)["year"] is None
    assert interactions.rating_scale == (1.0, 5.0)
    assert interactions.ratings.toarray().tolist() == [[5.0, 3.0, 0.0], [1.0, 0.0, 4.0]]
    assert interactions.timestamps.toarray()[1].tolist() == [881250951, 0, 881250952]
    assert report.rows_read == 4
    assert report.rows_used == 4


def test_100k_rating_scale_from_data(tmp_path):
    rows = ("1\t1\t2\t1", "1\t2\t3\t1", "2\t1\t4\t1")
    dataset, _ = load_movielens_100k(write_100k(tmp_path / "ml", data_rows=rows))

    assert dataset.interactions.rating_scale == (2.0, 4.0)


def test_100k_user_features(tmp_path):
    users = ("1|24|M|technician|85711", "2|53|F|other|T8H1N")
    dataset, _ = load_movielens_100k(write_100k(tmp_path / "ml", user_rows=users))
    features = dataset.user_features

    assert features.index.tolist() == [1, 2]
    assert features.loc[2, "age"] == 53
    assert features.loc[2, "gender"] == "F"
    assert features.loc[2, "zip"] == "T8H1N"


def test_100k_folds_in_metadata(tmp_path):
    folds = {"u1": (DATA_ROWS[:3], DATA_ROWS[3:]), "u2": (DATA_ROWS[1:], DATA_ROWS[:1])}
    dataset, _ = load_movielens_100k(write_100k(tmp_path / "ml", folds=folds))
    stored = dataset.metadata["folds"]

    assert [fold["name"] for fold in stored] == ["u1", "u2"]
    assert stored[0]["test"] == {"user_id": [2], "anime_id": [3]}
    assert "train" not in stored[0]


def test_100k_fold_base_that_is_not_the_rest(tmp_path):
    # u1.base leaves out the pair (1, 2), so the fold must carry its own train pairs.
    folds = {"u1": (DATA_ROWS[:1] + DATA_ROWS[2:3], DATA_ROWS[3:])}
    directory = write_100k(tmp_path / "ml", folds=folds)

    stored = movielens_folds(directory, data=read_data_file(directory / "u.data"))

    assert stored[0]["train"] == {"user_id": [1, 2], "anime_id": [1, 1]}


def test_100k_folds_feed_predefined_protocol(tmp_path):
    from animerec.evaluation.splits import predefined_rating_folds

    folds = {"u1": (DATA_ROWS[:3], DATA_ROWS[3:])}
    dataset, _ = load_movielens_100k(write_100k(tmp_path / "ml", folds=folds))

    (fold,) = predefined_rating_folds(dataset)

    assert fold.train.ratings.nnz == 3
    assert fold.ratings.tolist() == [4.0]


@pytest.mark.parametrize(
    "rows, line, fragment",
    [
        (("1\t1\t5\t1", "1\t2\t3"), 2, "expected 4"),
        (("1\t1\t5\t1", "1\tx\t3\t1"), 2, "item id 'x'"),
        (("1\t1\t0\t1",), 1, "rating '0'"),
        (("1\t1\t3.5\t1",), 1, "rating '3.5'"),
        (("1\t1\t5\t1", "-2\t1\t5\t1"), 2, "user id '-2'"),
        (("1\t1\t5\t-1",), 1, "timestamp '-1'"),
    ],
)
def test_100k_bad_data_line(tmp_path, rows, line, fragment):
    directory = write_100k(tmp_path / "ml", data_rows=rows)

    with pytest.raises(DataError, match=fragment) as caught:
        load_movielens_100k(directory)

    assert caught.value.line == line
    assert caught.value.path.endswith("u.data")


def test_100k_bad_genre_flag(tmp_path):
    bad = ITEM_ROWS[:2] + (ITEM_ROWS[2].rsplit("|", 1)[0] + "|2",)

    with pytest.raises(DataError, match="flags must be 0 or 1") as caught:
        load_movielens_100k(write_100k(tmp_path / "ml", item_rows=bad))

    assert caught.value.line == 3


def test_100k_duplicate_movie(tmp_path):
    with pytest.raises(DataError, match="duplicate movie id 1") as caught:
        load_movielens_100k(write_100k(tmp_path / "ml", item_rows=ITEM_ROWS + (ITEM_ROWS[0],)))

    assert caught.value.line == 4


def test_100k_unknown_movie_policy(tmp_path):
    rows = DATA_ROWS + ("3\t99\t4\t1",)
    directory = write_100k(tmp_path / "ml", data_rows=rows)

    dataset, report = load_movielens_100k(directory)
    with pytest.raises(DataError, match="item id 99") as caught:
        load_movielens_100k(directory, unknown_anime="error")

    assert report.problem_count("unknown_anime") == 1
    assert dataset.interactions.nnz == 4
    assert caught.value.line == 5


def test_100k_missing_file(tmp_path):
    directory = write_100k(tmp_path / "ml")
    (directory / "u.item").unlink()

    with pytest.raises(DataError, match="file not found"):
        load_movielens_100k(directory)


def test_latest_layout(tmp_path):
    directory = tmp_path / "latest"
    directory.mkdir()
    (directory / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"Heat, The (1995)",(no genres listed)\n'
    )
    (directory / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,2,0.5,964981247\n7,1,3.0,964982224\n"
    )

    dataset, report = load_format("movielens-latest", directory)

    assert dataset.catalog.row(1)["genres"] == ["Adventure", "Animation"]
    assert dataset.catalog.row(2)["genres"] == []
    assert dataset.catalog.title(2) == "Heat, The (1995)"
    assert dataset.catalog.row(2)["year"] == 1995
    assert dataset.interactions.rating_scale == (0.5, 4.5)
    assert dataset.interactions.timestamps.nnz == 3
    assert report.rows_used == 3


def test_latest_bad_rating_line(tmp_path):
    directory = tmp_path / "latest"
    directory.mkdir()
    (directory / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n")
    (directory / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,1\n2,1,good,1\n")

    with pytest.raises(DataError, match="'good' is not a number") as caught:
        load_movielens_latest(directory)

    assert caught.value.line == 3


@pytest.mark.parametrize(
    "text, year",
    [("01-Jan-1995", 1995), ("", None), ("1995", None), ("12-Mar-1997 ", 1997)],
)
def test_year_from_date(text, year):
    assert year_from_date(text) == year


@given(st.integers(min_value=1000, max_value=9999), st.text(alphabet="abc ,'", max_size=20))
def test_year_from_title_property(year, name):
    assert year_from_title(f"{name} ({year})") == year
    assert year_from_title(f"{name} ({year}) extra") is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 50), st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**40)
        ),
        min_size=1,
        max_size=30,
        unique_by=lambda row: (row[0], row[1]),
    )
)
def test_data_file_round_trip_property(rows):
    with tempfile.TemporaryDirectory() as folder:
        text = "\n".join("\t".join(str(v) for v in row) for row in rows) + "\n"
        path = Path(folder) / "u.data"
        path.write_text(text)

        parsed = read_data_file(path)

    assert parsed.user_ids.tolist() == [row[0] for row in rows]
    assert parsed.item_ids.tolist() == [row[1] for row in rows]
    assert parsed.ratings.tolist() == [float(row[2]) for row in rows]
    assert parsed.timestamps.tolist() == [row[3] for row in rows]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=10),
    st.integers(0, 9),
    st.sampled_from(["x", "", "1.5", "-3", "1e3", "5 5"]),
)
def test_data_file_bad_value_line_property(ratings, position, bad):
    position = position % len(ratings)
    lines = [f"{user}\t1\t{rating}\t7" for user, rating in enumerate(ratings)]
    lines[position] = f"{position}\t1\t{bad}\t7"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "u.data"
        path.write_text("\n".join(lines) + "\n")

        with pytest.raises(DataError) as caught:
            read_data_file(path)

    assert caught.value.line == position + 1


# --- the real MovieLens 100K --------------------------------------------------------------


@pytest.fixture(scope="module")
def movielens(shared_data):
    folder = shared_data / "movielens-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found in {folder}")
    return load_movielens_100k(folder)


def test_real_100k_counts(movielens):
    dataset, report = movielens

    assert dataset.interactions.n_users == 943
    assert dataset.interactions.n_items == 1682
    assert dataset.interactions.ratings.nnz == 100_000
    assert dataset.interactions.rating_scale == (1.0, 5.0)
    assert dataset.user_features.shape == (943, 4)
    assert report.problems == {}


def test_real_100k_folds_partition_ratings(movielens):
    dataset, _ = movielens
    folds = dataset.metadata["folds"]
    tests = np.concatenate(
        [np.asarray(fold["test"]["user_id"]) * 10_000 + np.asarray(fold["test"]["anime_id"]) for fold in folds]
    )

    assert [fold["name"] for fold in folds] == ["u1", "u2", "u3", "u4", "u5"]
    assert all("train" not in fold for fold in folds)
    assert tests.size == 100_000
    assert np.unique(tests).size == 100_000
    assert [fold["name"] for fold in dataset.metadata["folds_ab"]] == ["ua", "ub"]


def test_real_100k_latin1_title(movielens):
    dataset, _ = movielens
    titles = dataset.catalog.frame["title"]

    assert titles.str.contains("é").any()
