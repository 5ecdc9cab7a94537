"""The mal-2020 loader: full and partial catalogue schemas, statuses, and the real pieces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from animerec.data.loaders import format_names, load_format
from animerec.data.loaders.mal2020 import load_mal_2020
from animerec.data.store import Store
from animerec.data.watch_status import STATUS_WEIGHTS, WatchStatus
from animerec.errors import DataError

DATA = Path(os.environ.get("ANIMEREC_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ANIME_2020 = DATA / "anime-2020"

FULL_HEADER = (
    "MAL_ID,Name,Score,Genres,English name,Japanese name,Type,Episodes,Aired,Premiered,"
    "Producers,Licensors,Studios,Source,Duration,Rating,Ranked,Popularity,Members,Favorites,"
    "Watching,Completed,On-Hold,Dropped,Plan to Watch,Score-10,Score-9,Score-8,Score-7,"
    "Score-6,Score-5,Score-4,Score-3,Score-2,Score-1"
)
# Three rows in the original's layout; values from the real MyAnimeList pages of 2020.
FULL_ROWS = [
    '1,Cowboy Bebop,8.78,"Action, Adventure, Comedy, Drama, Sci-Fi, Space",Cowboy Bebop,'
    "カウボーイビバップ,TV,26,\"Apr 3, 1998 to Apr 24, 1999\",Spring 1998,Bandai Visual,"
    '"Funimation, Bandai Entertainment",Sunrise,Original,24 min. per ep.,R - 17+ (violence & profanity),'
    "28.0,39,1251960,61971,105808,718161,71513,26678,329800,229170,182126,131625,62330,20688,"
    "8904,3184,1357,741,1580",
    '5,Cowboy Bebop: Tengoku no Tobira,8.39,"Action, Drama, Mystery, Sci-Fi, Space",'
    "Cowboy Bebop:The Movie,カウボーイビバップ 天国の扉,Movie,1,\"Sep 1, 2001\",Unknown,"
    '"Sunrise, Bandai Visual",Sony Pictures Entertainment,Bones,Original,1 hr. 55 min.,'
    "R - 17+ (violence & profanity),159.0,518,273145,1174,4143,208333,1935,770,57964,30043,"
    "49201,49505,22632,5805,1877,577,221,109,379",
    "33,Kenpuu Denki Berserk,8.49,\"Action, Adventure, Demons, Drama, Fantasy, Horror, Military, "
    "Romance, Seinen, Supernatural\",Berserk,剣風伝奇ベルセルク,TV,25,\"Oct 8, 1997 to Apr 1, 1998\","
    "Fall 1997,\"VAP, Hakusensha, Nippon Television Network\",Media Blasters,OLM,Manga,"
    "23 min. per ep.,R+ - Mild Nudity,98.0,338,297454,6465,9844,224890,12007,8185,42528,45208,"
    "43208,41178,23082,8537,3131,1112,433,166,469",
    "99999,Unknown Future Title,Unknown,Unknown,Unknown,Unknown,Unknown,Unknown,Not available,"
    "Unknown,\"None found, add some\",\"None found, add some\",\"None found, add some\",Unknown,"
    "Unknown,Unknown,Unknown,17000,12,0,0,0,0,0,12,Unknown,Unknown,Unknown,Unknown,Unknown,"
    "Unknown,Unknown,Unknown,Unknown,Unknown",
]


def write_folder(
    folder: Path,
    anime_text: str,
    animelist: str | None = None,
    ratings: str | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "anime.csv").write_text(anime_text, encoding="utf-8")
    if animelist is not None:
        (folder / "animelist.csv").write_text(animelist)
    if ratings is not None:
        (folder / "rating_complete.csv").write_text(ratings)
    return folder


ANIMELIST = (
    "user_id,anime_id,rating,watching_status,watched_episodes\n"
    "7,1,9,2,26\n"
    "7,5,0,1,0\n"
    "7,33,3,4,4\n"
    "8,33,0,3,10\n"
    "8,99999,0,6,0\n"
)


@pytest.fixture()
def full_dataset(tmp_path: Path):
    folder = write_folder(tmp_path / "full", FULL_HEADER + "\n" + "\n".join(FULL_ROWS) + "\n", animelist=ANIMELIST)
    return load_mal_2020(folder)


def test_registered_format() -> None:
    assert "mal-2020" in format_names()


def test_full_schema_core_columns(full_dataset) -> None:
    dataset, _ = full_dataset
    bebop = dataset.catalog.row(1)

    assert bebop["title"] == "Cowboy Bebop"
    assert bebop["genres"] == ["Action", "Adventure", "Comedy", "Drama", "Sci-Fi", "Space"]
    assert bebop["type"] == "TV"
    assert bebop["episodes"] == 26
    assert bebop["score"] == pytest.approx(8.78)
    assert bebop["members"] == 1251960


def test_full_schema_extra_columns(full_dataset) -> None:
    dataset, _ = full_dataset
    bebop = dataset.catalog.row(1)
    movie = dataset.catalog.row(5)

    assert bebop["studios"] == ["Sunrise"]
    assert movie["producers"] == ["Sunrise", "Bandai Visual"]
    assert bebop["source"] == "Original"
    assert bebop["age_rating"] == "R - 17+ (violence & profanity)"
    assert bebop["aired_start"] == "1998-04-03"
    assert bebop["premiere_season"] == "Spring"
    assert bebop["premiere_year"] == 1998
    assert movie["premiere_year"] == 2001  # Premiered is Unknown, so the year comes from Aired
    assert bebop["english_title"] == "Cowboy Bebop"
    assert bebop["japanese_title"] == "カウボーイビバップ"
    assert bebop["favorites"] == 61971
    assert bebop["popularity"] == 39


def test_full_schema_unknown_values(full_dataset) -> None:
    dataset, _ = full_dataset
    future = dataset.catalog.row(99999)

    assert future["genres"] == []
    assert future["type"] is None
    assert future["episodes"] is None
    assert future["score"] is None
    assert future["studios"] == []
    assert future["aired_start"] is None
    assert future["premiere_year"] is None
    assert future["source"] is None


def test_statuses_become_weights(full_dataset) -> None:
    dataset, report = full_dataset
    interactions = dataset.interactions
    row = interactions.users.index(7)
    item_idx, ratings = interactions.history(row)
    weights = interactions.user_items[row].toarray().ravel()[item_idx]

    assert interactions.items.ids[item_idx].tolist() == [1, 5, 33]
    assert weights.tolist() == pytest.approx([1.0, 0.8, -0.5])
    assert ratings[0] == 9.0
    assert np.isnan(ratings[1])  # rating 0 means not rated
    assert ratings[2] == 3.0
    assert report.rows_read == 5
    assert report.rows_used == 5


def test_on_hold_and_plan_weights(full_dataset) -> None:
    dataset, _ = full_dataset
    interactions = dataset.interactions
    row = interactions.users.index(8)
    weights = interactions.user_items[row].toarray().ravel()

    assert weights[interactions.items.index(33)] == pytest.approx(STATUS_WEIGHTS[WatchStatus.ON_HOLD])
    assert weights[interactions.items.index(99999)] == pytest.approx(STATUS_WEIGHTS[WatchStatus.PLAN_TO_WATCH])


def test_minimal_catalogue_columns(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "min",
        "MAL_ID,Name\n1,Cowboy Bebop\n6,Trigun\n",
        ratings="user_id,anime_id,rating\n1,1,10\n1,6,8\n",
    )

    dataset, _ = load_mal_2020(folder)

    assert dataset.catalog.row(6)["title"] == "Trigun"
    assert dataset.catalog.row(6)["genres"] == []
    assert "studios" not in dataset.catalog.frame.columns
    assert dataset.interactions.user_items.data.tolist() == [1.0, 1.0]


def test_both_interaction_files_combined(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "both",
        "MAL_ID,Name\n1,Cowboy Bebop\n6,Trigun\n",
        animelist="user_id,anime_id,rating,watching_status,watched_episodes\n1,1,0,2,26\n1,6,7,2,26\n",
        ratings="user_id,anime_id,rating\n1,1,10\n1,6,8\n",
    )

    dataset, report = load_mal_2020(folder)
    item_idx, ratings = dataset.interactions.history(0)

    assert ratings.tolist() == [10.0, 7.0]  # an unrated row keeps the rating; a rated row wins
    assert report.problem_count("duplicates") == 2


def test_synopsis_file(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "syn",
        "MAL_ID,Name,Genres\n1,Cowboy Bebop,\"Action, Space\"\n6,Trigun,Action\n",
        ratings="user_id,anime_id,rating\n1,1,10\n",
    )
    (folder / "anime_with_synopsis.csv").write_text(
        'MAL_ID,Name,Score,Genres,sypnopsis\n1,Cowboy Bebop,8.78,"Action, Space","In the year 2071, bounty hunters roam."\n'
    )

    dataset, _ = load_mal_2020(folder)

    assert dataset.catalog.row(1)["synopsis"] == "In the year 2071, bounty hunters roam."
    assert dataset.catalog.row(6)["synopsis"] is None


def test_unknown_anime_dropped_and_counted(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "unknown",
        "MAL_ID,Name\n1,Cowboy Bebop\n",
        ratings="user_id,anime_id,rating\n1,1,10\n1,404,8\n2,404,5\n",
    )

    dataset, report = load_mal_2020(folder)

    assert report.problem_count("unknown_anime") == 2
    assert report.problem_count("users_without_rows") == 1
    assert dataset.interactions.nnz == 1


def test_unknown_anime_error_names_line(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "unknown",
        "MAL_ID,Name\n1,Cowboy Bebop\n",
        ratings="user_id,anime_id,rating\n1,1,10\n1,404,8\n",
    )

    with pytest.raises(DataError, match=r"rating_complete.csv:3: anime_id 404"):
        load_mal_2020(folder, unknown_anime="error")


@pytest.mark.parametrize(
    ("animelist", "message"),
    [
        ("user_id,anime_id,rating,watching_status\n1,1,9,5\n", "watching_status"),
        ("user_id,anime_id,rating,watching_status\n1,1,11,2\n", "rating"),
        ("user_id,anime_id,rating\n1,1,9\n", "missing column watching_status"),
    ],
)
def test_invalid_animelist(tmp_path: Path, animelist: str, message: str) -> None:
    folder = write_folder(tmp_path / "bad", "MAL_ID,Name\n1,Cowboy Bebop\n", animelist=animelist)

    with pytest.raises(DataError, match=message):
        load_mal_2020(folder)


@pytest.mark.parametrize(
    ("anime_text", "message"),
    [
        ("MAL_ID,Title\n1,Cowboy Bebop\n", "missing column Name"),
        ("MAL_ID,Name,Score\n1,Cowboy Bebop,high\n", "Score 'high'"),
        ("MAL_ID,Name,Episodes\n1,Cowboy Bebop,-3\n", "Episodes '-3'"),
        ("MAL_ID,Name\n1,Cowboy Bebop\n1,Again\n", "duplicate MAL_ID 1"),
    ],
)
def test_invalid_catalogue(tmp_path: Path, anime_text: str, message: str) -> None:
    folder = write_folder(tmp_path / "bad", anime_text, ratings="user_id,anime_id,rating\n1,1,9\n")

    with pytest.raises(DataError, match=message):
        load_mal_2020(folder)


def test_no_interaction_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "none", "MAL_ID,Name\n1,Cowboy Bebop\n")

    with pytest.raises(DataError, match="neither animelist.csv nor rating_complete.csv"):
        load_mal_2020(folder)


def test_extra_columns_survive_store(full_dataset, tmp_path: Path) -> None:
    dataset, report = full_dataset
    store = Store(tmp_path / "store.sqlite")
    try:
        store.save_dataset(dataset, report)
        loaded = store.load_dataset(dataset.name)
    finally:
        store.close()

    assert loaded.catalog.row(1)["studios"] == ["Sunrise"]
    assert loaded.catalog.row(1)["aired_start"] == "1998-04-03"
    assert loaded.catalog.row(1)["premiere_year"] == 1998
    assert loaded.interactions.user_items[loaded.interactions.users.index(7)].toarray().min() == pytest.approx(-0.5)


def test_real_pieces() -> None:
    if not (ANIME_2020 / "anime.csv").is_file():
        pytest.skip(f"real data not found at {ANIME_2020}; set ANIMEREC_TEST_DATA")

    dataset, report = load_format("mal-2020", ANIME_2020)

    assert len(dataset.catalog) == 17562
    assert dataset.catalog.row(1)["title"] == "Cowboy Bebop"
    assert report.rows_read == 99999 + 499
    assert dataset.interactions.n_users >= 575
    weights = np.unique(dataset.interactions.user_items.data)
    expected = np.unique(np.asarray(list(STATUS_WEIGHTS.values()), dtype=np.float32))
    assert np.isin(weights, expected).all()
    assert (dataset.interactions.user_items.data < 0).any()  # dropped rows are negative evidence
    assert pd.isna(dataset.catalog.frame["score"]).sum() > 0
