"""The Kaggle 2016 loader: known answers on small files, every error case, and the real data."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from animerec.data import Dataset
from animerec.data.loaders import format_names, load_format
from animerec.data.loaders.kaggle2016 import load_kaggle_2016
from animerec.errors import ConfigError, DataError

from conftest import KAGGLE_ANIME_ROWS, KAGGLE_RATING_ROWS, write_kaggle_2016


def pairs_of(dataset: Dataset) -> dict[tuple[int, int], float | None]:
    """Return {(user_id, anime_id): rating or None} for every watched pair."""
    interactions = dataset.interactions
    watched = interactions.user_items.tocoo()
    ratings = interactions.ratings.todok()
    result: dict[tuple[int, int], float | None] = {}
    for row, col in zip(watched.row, watched.col):
        key = (int(interactions.users.ids[row]), int(interactions.items.ids[col]))
        result[key] = float(ratings[row, col]) if (row, col) in ratings else None
    return result


def weights_of(dataset: Dataset) -> set[float]:
    return {float(value) for value in dataset.interactions.user_items.data}


# --- known answers on a small folder ----------------------------------------------------


def test_catalog_known_values(kaggle_dir):
    dataset, _ = load_kaggle_2016(kaggle_dir())
    catalog = dataset.catalog

    assert catalog.items.ids.tolist() == [1, 30, 40, 50, 9969, 28977]
    assert catalog.title(9969) == "Gintama'"
    assert catalog.title(28977) == "Gintama°"
    assert catalog.title(30) == 'Unnamed "Special" & Co'
    assert catalog.row(1)["genres"] == ["Action", "Adventure", "Comedy", "Drama", "Sci-Fi", "Space"]
    assert catalog.frame.loc[catalog.items.index(28977), "genres"] == ("Action", "Comedy", "Slice of Life")


def test_catalog_missing_values_stay_missing(kaggle_dir):
    dataset, _ = load_kaggle_2016(kaggle_dir())
    row = dataset.catalog.row(30)

    assert row["genres"] == []
    assert row["episodes"] is None
    assert row["score"] is None
    assert row["members"] == 120
    assert dataset.catalog.row(50)["type"] is None
    assert dataset.catalog.frame["episodes"].dtype == "Int64"
    assert math.isnan(dataset.catalog.frame.loc[dataset.catalog.items.index(30), "score"])


def test_interactions_known_values(kaggle_dir):
    dataset, report = load_kaggle_2016(kaggle_dir())

    assert pairs_of(dataset) == {
        (1, 1): 10.0,
        (1, 9969): None,
        (1, 28977): 8.0,
        (2, 1): 7.0,
        (2, 30): None,
        (3, 40): 1.0,
    }
    assert weights_of(dataset) == {1.0}
    assert dataset.interactions.users.ids.tolist() == [1, 2, 3]
    assert dataset.interactions.items == dataset.catalog.items
    assert dataset.name == "kaggle-2016"
    assert dataset.format == "kaggle-2016"
    assert report.rows_read == 6
    assert report.rows_used == 6
    assert report.n_ratings == 4
    assert report.n_users == 3
    assert report.n_items == 6
    assert report.catalog_rows == 6
    assert report.problems == {}


def test_unrated_rows_not_in_ratings(kaggle_dir):
    dataset, _ = load_kaggle_2016(kaggle_dir())
    interactions = dataset.interactions

    assert interactions.user_items.nnz == 6
    assert interactions.ratings.nnz == 4
    assert float(interactions.ratings.data.min()) >= 1.0


def test_name_option_names_dataset(kaggle_dir):
    dataset, report = load_kaggle_2016(kaggle_dir(), name="mine")

    assert dataset.name == "mine"
    assert report.dataset_name == "mine"


def test_crlf_same_as_lf(kaggle_dir):
    lf, _ = load_kaggle_2016(kaggle_dir(newline="\n"))
    crlf, _ = load_kaggle_2016(kaggle_dir(newline="\r\n"))

    pd.testing.assert_frame_equal(lf.catalog.frame, crlf.catalog.frame)
    assert pairs_of(lf) == pairs_of(crlf)


def test_byte_order_mark_accepted(kaggle_dir):
    directory = kaggle_dir()
    for file_name in ("anime.csv", "rating.csv"):
        path = directory / file_name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    dataset, _ = load_kaggle_2016(directory)

    assert len(dataset.catalog) == 6
    assert dataset.interactions.nnz == 6


def test_blank_lines_skipped(kaggle_dir):
    directory = kaggle_dir(rating_rows=["1,1,10", "", "2,1,7", ""])

    dataset, _ = load_kaggle_2016(directory)

    assert pairs_of(dataset) == {(1, 1): 10.0, (2, 1): 7.0}


def test_extra_columns_ignored(kaggle_dir):
    directory = kaggle_dir(
        rating_header="user_id,anime_id,rating,comment",
        rating_rows=["1,1,10,great", "2,1,7,ok"],
    )

    dataset, _ = load_kaggle_2016(directory)

    assert pairs_of(dataset) == {(1, 1): 10.0, (2, 1): 7.0}


def test_header_spaces_ignored(kaggle_dir):
    directory = kaggle_dir(rating_header="user_id, anime_id , rating", rating_rows=["1,1,10", "2,1,7"])

    dataset, _ = load_kaggle_2016(directory)

    assert pairs_of(dataset) == {(1, 1): 10.0, (2, 1): 7.0}


def test_progress_reports_steps(kaggle_dir):
    steps: list[str] = []

    load_kaggle_2016(kaggle_dir(), progress=steps.append)

    assert any("anime.csv" in step for step in steps)
    assert any("rating.csv" in step for step in steps)


def test_load_format_dispatches(kaggle_dir):
    dataset, _ = load_format("kaggle-2016", kaggle_dir(), name="via-registry")

    assert "kaggle-2016" in format_names()
    assert dataset.name == "via-registry"


def test_load_format_unknown_format(kaggle_dir):
    with pytest.raises(ConfigError, match="kaggle-2016"):
        load_format("no-such-format", kaggle_dir())


def test_load_format_missing_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_format("kaggle-2016", tmp_path / "absent")


# --- policies: unknown anime and duplicates ---------------------------------------------


def test_unknown_anime_dropped_and_counted(kaggle_dir):
    directory = kaggle_dir(rating_rows=["1,1,10", "1,777,5", "2,777,-1", "2,888,3", "3,888,4"])

    dataset, report = load_kaggle_2016(directory)

    assert pairs_of(dataset) == {(1, 1): 10.0}
    assert report.rows_read == 5
    assert report.rows_used == 1
    assert report.problem_count("unknown_anime") == 4
    assert report.problems["unknown_anime"].policy == "dropped"
    assert report.problems["unknown_anime"].examples == [
        "anime_id 777 (2 rows)",
        "anime_id 888 (2 rows)",
    ]
    assert report.problem_count("users_without_rows") == 2
    assert any("unknown_anime: 4" in line for line in report.summary_lines())


def test_unknown_anime_error_policy(kaggle_dir):
    directory = kaggle_dir(rating_rows=["1,1,10", "", "1,777,5"])

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory, unknown_anime="error")

    assert caught.value.line == 4
    assert caught.value.value == 777
    assert caught.value.path.endswith("rating.csv")
    assert "anime.csv" in str(caught.value)


def test_unknown_anime_policy_invalid(kaggle_dir):
    with pytest.raises(ConfigError, match="unknown_anime"):
        load_kaggle_2016(kaggle_dir(), unknown_anime="ignore")


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        (["5", "7"], 7.0),
        (["8", "-1"], 8.0),
        (["-1", "6"], 6.0),
        (["-1", "-1"], None),
        (["3", "-1", "9", "-1"], 9.0),
        (["3", "9", "-1", "2"], 2.0),
    ],
)
def test_duplicates_policy(kaggle_dir, ratings, expected):
    rows = ["2,1,4"] + [f"1,1,{rating}" for rating in ratings] + ["1,30,6"]

    dataset, report = load_kaggle_2016(kaggle_dir(rating_rows=rows))

    assert pairs_of(dataset) == {(1, 1): expected, (1, 30): 6.0, (2, 1): 4.0}
    assert report.problem_count("duplicates") == len(ratings) - 1
    assert report.rows_used == 3
    assert report.rows_read == len(rows)


def test_duplicates_examples_name_pair(kaggle_dir):
    directory = kaggle_dir(rating_rows=["1,1,8", "1,1,-1"])

    _, report = load_kaggle_2016(directory)

    assert report.problems["duplicates"].examples == [
        "user_id 1, anime_id 1: 2 rows with ratings 8, none; kept 8"
    ]


def test_unsorted_rows_without_duplicates(kaggle_dir):
    directory = kaggle_dir(rating_rows=["3,40,1", "1,28977,8", "1,1,10", "2,1,7"])

    dataset, report = load_kaggle_2016(directory)

    assert pairs_of(dataset) == {(3, 40): 1.0, (1, 28977): 8.0, (1, 1): 10.0, (2, 1): 7.0}
    assert report.problems == {}


def test_missing_title_counted(kaggle_dir):
    directory = kaggle_dir(anime_rows=[*KAGGLE_ANIME_ROWS, "60,,Drama,TV,12,7.0,50"])

    dataset, report = load_kaggle_2016(directory)

    assert dataset.catalog.title(60) == "anime 60"
    assert report.problem_count("missing_title") == 1
    assert report.problems["missing_title"].examples == ["anime_id 60 at line 8"]


# --- errors: each names file, line and value ---------------------------------------------


def assert_data_error(error: DataError, file_name: str, line: int | None) -> None:
    assert error.path is not None
    assert Path(error.path).name == file_name
    assert error.line == line
    if line is not None:
        assert f"{file_name}:{line}:" in str(error)


@pytest.mark.parametrize(
    ("rows", "line", "value", "words"),
    [
        (["1,1,10", "abc,1,5"], 3, "abc", "user_id 'abc' is not an integer"),
        (["1,1,10", "2,1,7", "3,x1,5"], 4, "x1", "anime_id 'x1' is not an integer"),
        (["1,1,8.5"], 2, "8.5", "rating '8.5' is not an integer"),
        (["1,1,0"], 2, 0, "rating 0 is not allowed"),
        (["1,1,10", "1,30,11"], 3, 11, "rating 11 is not allowed"),
        (["1,1,-2"], 2, -2, "rating -2 is not allowed"),
        (["-5,1,3"], 2, -5, "user_id -5 is not allowed"),
        (["1,1,10", ",1,4"], 3, "", "missing user_id"),
        (["1,1,"], 2, "", "missing rating"),
        (["1,1,99999999999999999999"], 2, "99999999999999999999", "not an integer"),
    ],
)
def test_rating_file_value_errors(kaggle_dir, rows, line, value, words):
    with pytest.raises(DataError) as caught:
        load_kaggle_2016(kaggle_dir(rating_rows=rows))

    assert_data_error(caught.value, "rating.csv", line)
    assert caught.value.value == value
    assert words in str(caught.value)


def test_rating_file_line_counts_blank_lines(kaggle_dir):
    directory = kaggle_dir(rating_rows=["1,1,10", "", "", "1,30,12"], newline="\r\n")

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, "rating.csv", 5)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize(
    ("bad_row", "words"),
    [
        ("1,30,12", "rating 12 is not allowed"),
        ("1,x30,2", "anime_id 'x30' is not an integer"),
        ("1,30,1,1", "expected 3 fields"),
        ("1,,2", "missing anime_id"),
        ('1,"30\n",2', "anime_id '30\\n' is not an integer"),
    ],
)
def test_error_line_after_blank_lines(kaggle_dir, newline, bad_row, words):
    rows = ["1,1,10", "", "2,1,7", "", "", bad_row, "3,1,4", "3,1,x"]

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(kaggle_dir(rating_rows=rows, newline=newline))

    assert_data_error(caught.value, "rating.csv", 7)
    assert words in str(caught.value)


def test_cr_line_endings_load(kaggle_dir):
    dataset, _ = load_kaggle_2016(kaggle_dir(newline="\r"))

    assert len(dataset.catalog) == 6
    assert dataset.interactions.nnz == 6


def test_rating_file_field_count(kaggle_dir):
    with pytest.raises(DataError) as caught:
        load_kaggle_2016(kaggle_dir(rating_rows=["1,1,10", "2,1,7,9"]))

    assert_data_error(caught.value, "rating.csv", 3)
    assert "expected 3 fields" in str(caught.value)


def test_rating_file_missing_column(kaggle_dir):
    directory = kaggle_dir(rating_header="user_id,anime,rating")

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, "rating.csv", 1)
    assert "missing column anime_id" in str(caught.value)


def test_anime_file_missing_columns(kaggle_dir):
    directory = kaggle_dir(anime_header="anime_id,title,genre,type,episodes,score,members")

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, "anime.csv", 1)
    assert "missing columns name, rating" in str(caught.value)


@pytest.mark.parametrize("file_name", ["anime.csv", "rating.csv"])
def test_empty_file(kaggle_dir, file_name):
    directory = kaggle_dir()
    (directory / file_name).write_bytes(b"")

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, file_name, None)
    assert "empty" in str(caught.value)


@pytest.mark.parametrize("file_name", ["anime.csv", "rating.csv"])
def test_header_only_file(kaggle_dir, file_name):
    directory = kaggle_dir()
    path = directory / file_name
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert Path(caught.value.path).name == file_name
    assert "no" in str(caught.value)
    assert "rows" in str(caught.value)


def test_header_only_without_newline(kaggle_dir):
    directory = kaggle_dir()
    (directory / "rating.csv").write_bytes(b"user_id,anime_id,rating")

    with pytest.raises(DataError, match="no rows"):
        load_kaggle_2016(directory)


@pytest.mark.parametrize("file_name", ["anime.csv", "rating.csv"])
def test_missing_file(kaggle_dir, file_name):
    directory = kaggle_dir()
    (directory / file_name).unlink()

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, file_name, None)
    assert "not found" in str(caught.value)


def test_rating_file_invalid_utf8(kaggle_dir):
    directory = kaggle_dir()
    path = directory / "rating.csv"
    path.write_bytes(b"user_id,anime_id,rating\r\n1,1,10\r\n2,1\xff,7\r\n")

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, "rating.csv", 3)
    assert "UTF-8" in str(caught.value)
    assert "0xff" in str(caught.value)


def test_anime_file_invalid_utf8(kaggle_dir):
    directory = kaggle_dir()
    path = directory / "anime.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace("°".encode("utf-8"), "°".encode("latin-1"))
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, "anime.csv", 4)
    assert "Gintama" in str(caught.value)


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("x7,Name,Drama,TV,1,7.0,5", "anime_id 'x7' is not a non-negative integer"),
        (",Name,Drama,TV,1,7.0,5", "anime_id missing"),
        ("7,Name,Drama,TV,twelve,7.0,5", "episodes 'twelve'"),
        ("7,Name,Drama,TV,-3,7.0,5", "episodes '-3'"),
        ("7,Name,Drama,TV,1,great,5", "rating 'great'"),
        ("7,Name,Drama,TV,1,11.5,5", "rating '11.5'"),
        ("7,Name,Drama,TV,1,7.0,many", "members 'many'"),
        ("7,Name,Drama,TV,1,7.0", "expected 7 fields"),
        ("1,Again,Drama,TV,1,7.0,5", "duplicate anime_id 1 (first at line 2)"),
    ],
)
def test_anime_file_value_errors(kaggle_dir, row, words):
    directory = kaggle_dir(anime_rows=[*KAGGLE_ANIME_ROWS, row])

    with pytest.raises(DataError) as caught:
        load_kaggle_2016(directory)

    assert_data_error(caught.value, "anime.csv", len(KAGGLE_ANIME_ROWS) + 2)
    assert words in str(caught.value)


# --- properties -----------------------------------------------------------------------

CATALOG_IDS = (1, 30, 40, 50, 9969, 28977)
VALID_RATINGS = (-1, *range(1, 11))

rating_rows = st.lists(
    st.tuples(
        # Small ids repeat often and are dense; large ones take the sparse-id code paths.
        st.one_of(st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=2**40)),
        st.sampled_from(CATALOG_IDS),
        st.sampled_from(VALID_RATINGS),
    ),
    min_size=1,
    max_size=40,
)
newlines = st.sampled_from(["\n", "\r\n"])
property_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def expected_pairs(rows: list[tuple[int, int, int]]) -> dict[tuple[int, int], float | None]:
    """Apply the duplicate policy by hand: last row wins, but -1 never replaces a rating."""
    result: dict[tuple[int, int], float | None] = {}
    for user_id, anime_id, rating in rows:
        key = (user_id, anime_id)
        if rating == -1:
            if key not in result:
                result[key] = None
        else:
            result[key] = float(rating)
    return result


def rows_text(rows: list[tuple[int, int, object]]) -> list[str]:
    return [f"{user_id},{anime_id},{rating}" for user_id, anime_id, rating in rows]


@property_settings
@given(rows=rating_rows, newline=newlines)
def test_property_valid_rows_round_trip(rows, newline):
    with tempfile.TemporaryDirectory() as folder:
        directory = write_kaggle_2016(Path(folder), rating_rows=rows_text(rows), newline=newline)
        dataset, report = load_kaggle_2016(directory)

    expected = expected_pairs(rows)
    assert pairs_of(dataset) == expected
    assert report.rows_read == len(rows)
    assert report.rows_used == len(expected)
    assert report.problem_count("duplicates") == len(rows) - len(expected)
    assert dataset.interactions.users.ids.tolist() == sorted({user_id for user_id, _, _ in rows})


@property_settings
@given(
    rows=rating_rows,
    data=st.data(),
    bad_rating=st.integers(min_value=-(2**62), max_value=2**62).filter(lambda value: value not in VALID_RATINGS),
    newline=newlines,
)
def test_property_out_of_range_rating_rejected(rows, data, bad_rating, newline):
    position = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    user_id, anime_id, _ = rows[position]
    broken = list(rows)
    broken[position] = (user_id, anime_id, bad_rating)

    with tempfile.TemporaryDirectory() as folder:
        directory = write_kaggle_2016(Path(folder), rating_rows=rows_text(broken), newline=newline)
        with pytest.raises(DataError) as caught:
            load_kaggle_2016(directory)

    assert caught.value.line == position + 2
    assert caught.value.value == bad_rating


@property_settings
@given(
    rows=rating_rows,
    data=st.data(),
    token=st.text(alphabet="abcxyz.+ 1", min_size=1, max_size=4).filter(
        lambda text: not text.strip().lstrip("-").isdigit()
    ),
    column=st.integers(min_value=0, max_value=2),
)
def test_property_non_integer_rejected(rows, data, token, column):
    position = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    broken: list[tuple[object, object, object]] = list(rows)
    fields = list(broken[position])
    fields[column] = token
    broken[position] = tuple(fields)

    with tempfile.TemporaryDirectory() as folder:
        directory = write_kaggle_2016(Path(folder), rating_rows=rows_text(broken))
        with pytest.raises(DataError) as caught:
            load_kaggle_2016(directory)

    assert caught.value.line == position + 2
    assert caught.value.value == token


# --- the real data ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data):
    directory = shared_data / "anime-2016"
    if not (directory / "rating.csv").is_file():
        pytest.skip(f"{directory} has no rating.csv")
    return load_kaggle_2016(directory)


def test_real_counts_match_readme(real):
    dataset, report = real
    dropped = report.problem_count("unknown_anime") + report.problem_count("duplicates")
    interactions = dataset.interactions

    assert len(dataset.catalog) == 12_294
    assert report.rows_read == 508_341
    assert interactions.nnz == 508_341 - dropped
    assert report.rows_used == interactions.nnz
    assert interactions.n_users == 4_879
    assert int(np.count_nonzero(np.diff(interactions.user_items.tocsc().indptr))) == 7_380


def test_real_unrated_rows_counted(real):
    dataset, report = real
    interactions = dataset.interactions

    assert report.problems == {}
    assert interactions.nnz - interactions.ratings.nnz == 98_009
    assert set(np.unique(interactions.ratings.data).tolist()) == set(map(float, range(1, 11)))
    assert weights_of(dataset) == {1.0}


def test_real_titles_decoded(real):
    dataset, _ = real
    catalog = dataset.catalog

    assert catalog.title(28977) == "Gintama°"
    assert catalog.title(9969) == "Gintama'"
    assert catalog.title(15417) == "Gintama': Enchousen"
    assert not catalog.frame["title"].str.contains("&#039;|&quot;|&amp;", regex=True).any()


def test_real_catalog_columns(real):
    dataset, _ = real
    frame = dataset.catalog.frame

    assert set(dataset.catalog.type_labels()) == {"TV", "OVA", "Movie", "Special", "ONA", "Music"}
    assert int(frame["type"].isna().sum()) == 25
    assert int(frame["episodes"].isna().sum()) == 340
    assert int(frame["score"].isna().sum()) == 230
    assert int((frame["genres"].map(len) == 0).sum()) == 62
    assert "Slice of Life" in dataset.catalog.genre_labels()
    assert "Shounen Ai" in dataset.catalog.genre_labels()
    assert all(label == label.strip() and "," not in label for label in dataset.catalog.genre_labels())
    assert dataset.catalog.row(5114)["episodes"] == 64
    assert dataset.catalog.row(5114)["members"] == 793_665


def test_real_adult_titles_in_catalog(real):
    dataset, _ = real
    adult = dataset.catalog.adult_mask(dataset.catalog.items)

    assert 0 < int(adult.sum()) < len(dataset.catalog)


def test_load_format_rejects_unsafe_name(kaggle_dir):
    with pytest.raises(ConfigError, match="invalid dataset name"):
        load_format("kaggle-2016", kaggle_dir(), name="../escape")
