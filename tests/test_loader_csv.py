"""The generic CSV loader: options, known answers, error locations and parser properties."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from animerec.data.loaders import format_names, load_format
from animerec.data.loaders.csv import (
    RatingColumns,
    load_csv,
    parse_rating_scale,
    read_rating_rows,
    split_genres,
)
from animerec.errors import ConfigError, DataError


def write_folder(directory: Path, ratings: str, items: str | None = None, ratings_name: str = "ratings.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ratings_name).write_text(ratings)
    if items is not None:
        (directory / "items.csv").write_text(items)
    return directory


def test_csv_registered():
    assert "csv" in format_names()


def test_bare_ids_known_values(tmp_path):
    folder = write_folder(tmp_path / "d", "user_id,item_id,rating\n5,100,4\n5,200,2\n6,100,3.5\n")

    dataset, report = load_format("csv", folder)
    interactions = dataset.interactions

    assert dataset.catalog.items.ids.tolist() == [100, 200]
    assert dataset.catalog.title(200) == "item 200"
    assert interactions.users.ids.tolist() == [5, 6]
    assert interactions.ratings.toarray().tolist() == [[4.0, 2.0], [3.5, 0.0]]
    assert interactions.rating_scale == (2.0, 4.0)
    assert interactions.timestamps is None
    assert report.rows_used == 3


def test_items_file_and_timestamps(tmp_path):
    folder = write_folder(
        tmp_path / "d",
        "user_id,item_id,rating,timestamp\n1,10,9,1000\n1,11,3,1001\n2,10,7,1002\n",
        "item_id,title,genres\n10,Cowboy Bebop,Action|Sci-Fi\n11,Mushishi,\n12,Unwatched,Drama\n",
    )

    dataset, _ = load_csv(folder)

    assert dataset.catalog.items.ids.tolist() == [10, 11, 12]
    assert dataset.catalog.row(10)["genres"] == ["Action", "Sci-Fi"]
    assert dataset.catalog.row(11)["genres"] == []
    assert dataset.interactions.timestamps.toarray().tolist() == [[1000, 1001, 0], [1002, 0, 0]]


def test_custom_columns_and_delimiter(tmp_path):
    folder = write_folder(tmp_path / "d", "uid;mid;score\n1;7;4\n2;7;5\n", ratings_name="scores.txt")

    dataset, _ = load_csv(
        folder, ratings_file="scores.txt", user_column="uid", item_column="mid",
        rating_column="score", delimiter=";",
    )

    assert dataset.interactions.ratings.toarray().ravel().tolist() == [4.0, 5.0]


def test_given_rating_scale(tmp_path):
    folder = write_folder(tmp_path / "d", "user_id,item_id,rating\n1,1,4\n2,1,5\n")

    dataset, _ = load_csv(folder, rating_scale="1,10")

    assert dataset.interactions.rating_scale == (1.0, 10.0)


def test_rating_outside_given_scale(tmp_path):
    folder = write_folder(tmp_path / "d", "user_id,item_id,rating\n1,1,4\n2,1,11\n")

    with pytest.raises(DataError, match="outside the rating scale") as caught:
        load_csv(folder, rating_scale=(1, 10))

    assert caught.value.line == 3
    assert caught.value.value == 11.0


def test_implicit_rows_without_rating_column(tmp_path):
    folder = write_folder(tmp_path / "d", "user_id,item_id\n1,1\n1,2\n")

    dataset, _ = load_csv(folder, rating_column=None)

    assert dataset.interactions.nnz == 2
    assert dataset.interactions.ratings.nnz == 0


def test_duplicates_keep_last(tmp_path):
    folder = write_folder(tmp_path / "d", "user_id,item_id,rating\n1,1,2\n1,1,5\n2,1,3\n")

    dataset, report = load_csv(folder)

    assert dataset.interactions.ratings.toarray()[0, 0] == 5.0
    assert report.problem_count("duplicates") == 1


def test_unknown_items_policy(tmp_path):
    folder = write_folder(
        tmp_path / "d", "user_id,item_id,rating\n1,10,2\n1,99,5\n", "item_id,title\n10,Known\n"
    )

    dataset, report = load_csv(folder)
    with pytest.raises(DataError, match="item id 99") as caught:
        load_csv(folder, unknown_anime="error")

    assert dataset.interactions.nnz == 1
    assert report.problem_count("unknown_anime") == 1
    assert caught.value.line == 3


@pytest.mark.parametrize(
    "ratings, line, fragment",
    [
        ("user_id,item_id,rating\n1,1,4\n1,x,3\n", 3, "item_id 'x'"),
        ("user_id,item_id,rating\n1,1,4\n-1,2,3\n", 3, "user_id '-1'"),
        ("user_id,item_id,rating\n1,1,4\n2,2,\n", 3, "rating is missing"),
        ("user_id,item_id,rating\n1,1,nan\n", 2, "'nan' is not a number"),
        ("user_id,item_id,rating\n1,1,4\n2,2,3,9\n", 3, "expected 3 fields"),
    ],
)
def test_bad_rows_name_line(tmp_path, ratings, line, fragment):
    folder = write_folder(tmp_path / "d", ratings)

    with pytest.raises(DataError, match=fragment) as caught:
        load_csv(folder)

    assert caught.value.line == line
    assert caught.value.path.endswith("ratings.csv")


def test_missing_column(tmp_path):
    folder = write_folder(tmp_path / "d", "user,item_id,rating\n1,1,4\n")

    with pytest.raises(DataError, match="missing column user_id"):
        load_csv(folder)


def test_single_rating_value_needs_scale(tmp_path):
    folder = write_folder(tmp_path / "d", "user_id,item_id,rating\n1,1,4\n2,1,4\n")

    with pytest.raises(DataError, match="give the scale"):
        load_csv(folder)


def test_duplicate_item_in_items_file(tmp_path):
    folder = write_folder(
        tmp_path / "d", "user_id,item_id,rating\n1,1,4\n2,1,3\n", "item_id,title\n1,A\n1,B\n"
    )

    with pytest.raises(DataError, match="duplicate item_id 1") as caught:
        load_csv(folder)

    assert caught.value.line == 3


@pytest.mark.parametrize("value", ["5,1", "1", "a,b", (3, 3), "1,inf"])
def test_invalid_rating_scale(value):
    with pytest.raises(ConfigError, match="rating scale"):
        parse_rating_scale(value)


def test_split_genres_drops_placeholder():
    assert split_genres("Action| Drama |(no genres listed)|") == ("Action", "Drama")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**40),
            st.integers(0, 2**40),
            st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)),
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([",", ";", "\t"]),
)
def test_rating_rows_round_trip_property(rows, delimiter):
    text = delimiter.join(["u", "i", "r"]) + "\n" + "".join(
        f"{u}{delimiter}{i}{delimiter}{r!r}\n" for u, i, r in rows
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.csv"
        path.write_text(text)

        parsed = read_rating_rows(path, RatingColumns("u", "i", "r"), delimiter=delimiter)

    assert parsed.user_ids.tolist() == [u for u, _, _ in rows]
    assert parsed.item_ids.tolist() == [i for _, i, _ in rows]
    np.testing.assert_allclose(parsed.ratings, [r for _, _, r in rows], rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(2, 12),
    st.integers(0, 11),
    st.sampled_from(["abc", "", "1..2", "inf", "-", "1,5"]),
)
def test_bad_rating_found_on_its_line_property(n_rows, position, bad):
    position = position % n_rows
    lines = [f"{row},{row},{row % 5 + 1}" for row in range(n_rows)]
    lines[position] = f"{position},{position},{bad}" if bad != "1,5" else f"{position},{position},\"1,5\""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.csv"
        path.write_text("user_id,item_id,rating\n" + "\n".join(lines) + "\n")

        with pytest.raises(DataError) as caught:
            read_rating_rows(path, RatingColumns())

    assert caught.value.line == position + 2


def test_real_anime_2016_as_generic_csv(shared_data, tmp_path):
    source = shared_data / "anime-2016" / "rating.csv"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    # The 2016 file uses -1 for "watched, not rated", which a generic rating file does not
    # know: with the scale given as 1..10 the loader must reject the first -1 row.
    folder = tmp_path / "anime"
    folder.mkdir()
    (folder / "ratings.csv").symlink_to(source)

    with pytest.raises(DataError, match="outside the rating scale") as caught:
        load_csv(folder, item_column="anime_id", rating_scale="1,10")

    lines = source.read_text().splitlines()
    assert lines[caught.value.line - 1].endswith(",-1")
