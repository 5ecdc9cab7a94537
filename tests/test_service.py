"""RecommenderService on a small hand-made catalogue in a temporary store."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from animerec.data.loaders import load_format
from animerec.data.store import Store
from animerec.errors import ConfigError, NotFoundError, UnknownIdError
from animerec.models.registry import create_model
from animerec.ranking import RankingOptions
from animerec.service import RecommenderService, default_model_name, load_model_cached

from conftest import write_kaggle_2016

# Eight anime: three "Saga" entries that fans watch together, two comedies (one written
# with an HTML entity, as anime.csv stores such titles), a film, an adult title and a title
# without viewers.
ANIME_ROWS = (
    '1,Saga,"Action, Drama",TV,24,8.5,5000',
    '2,Saga: Part Two,"Action, Drama",TV,24,8.6,4000',
    '3,Saga Movie,"Action, Drama",Movie,1,8.0,3000',
    "4,Laugh Club,Comedy,TV,12,7.5,2000",
    "5,Laugh Club&#039;s Return,Comedy,TV,12,7.6,1500",
    '6,Quiet Film,"Drama, Slice of Life",Movie,1,8.8,1000',
    "7,Adult Title,Hentai,OVA,2,6.0,500",
    "8,Nobody Watched,Comedy,TV,12,,10",
)
RATING_ROWS = (
    "101,1,9", "101,2,8", "101,3,-1",
    "102,1,10", "102,2,9", "102,6,7",
    "103,4,8", "103,5,7", "103,7,6",
    "104,4,9", "104,5,-1", "104,6,6",
    "105,1,7", "105,4,8",
    "106,2,8", "106,3,9", "106,7,5",
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with the small catalogue ingested and popular and itemknn trained."""
    home = tmp_path / "home"
    data_dir = write_kaggle_2016(tmp_path / "data", ANIME_ROWS, RATING_ROWS)
    dataset, report = load_format("kaggle-2016", data_dir)
    with Store(home / "animerec.sqlite") as store:
        store.save_dataset(dataset, report)
        for name in ("popular", "itemknn"):
            train(store, name)
    return home


def train(store: Store, model_name: str) -> None:
    dataset = store.load_dataset()
    create_model(model_name).fit(dataset).save(store.model_path(dataset.name, model_name))


def ids(results: list[dict]) -> list[int]:
    return [row["anime_id"] for row in results]


def test_open_empty_home_names_ingest(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="animerec ingest"):
        RecommenderService.open(tmp_path / "empty")


def test_open_untrained_model_names_train(home: Path) -> None:
    with pytest.raises(NotFoundError, match="animerec train ease"):
        RecommenderService.open(home, model="ease")


def test_open_unknown_model_lists_models(home: Path) -> None:
    with pytest.raises(ConfigError, match="registered models"):
        RecommenderService.open(home, model="nosuch")


def test_default_model_newest_then_als(home: Path) -> None:
    with Store(home / "animerec.sqlite") as store:
        # Bundles written in the same clock tick would tie; make itemknn clearly newer.
        itemknn_meta = store.model_path("kaggle-2016", "itemknn") / "model.json"
        later = time.time() + 10
        os.utime(itemknn_meta, (later, later))
        assert default_model_name(store, "kaggle-2016") == "itemknn"

        train(store, "als")
        assert default_model_name(store, "kaggle-2016") == "als"


def test_recommend_user_excludes_seen(home: Path) -> None:
    with RecommenderService.open(home, model="popular") as service:
        results = service.recommend_user(101, RankingOptions(n=10))

    # User 101 watched 1, 2 and 3 (3 without a rating); 7 is adult, 8 nobody watched.
    # Anime 4 has three viewers, 5 and 6 two each, so the tie goes to the smaller id.
    assert ids(results) == [4, 5, 6]
    assert [row["rank"] for row in results] == [1, 2, 3]
    assert results[0]["title"] == "Laugh Club"
    assert results[0]["genres"] == ["Comedy"]
    assert results[0]["type"] == "TV"
    assert results[0]["episodes"] == 12


def test_recommend_user_unknown(home: Path) -> None:
    with RecommenderService.open(home, model="popular") as service:
        with pytest.raises(UnknownIdError, match="unknown user_id 999"):
            service.recommend_user(999, RankingOptions())


def test_recommend_history_excludes_history(home: Path) -> None:
    with RecommenderService.open(home, model="itemknn") as service:
        results = service.recommend_history([("saga", None), (2, 9.0)], RankingOptions(n=5))

    assert results
    assert not {1, 2}.intersection(ids(results))
    assert 7 not in ids(results)
    # Fans of Saga and its sequel also watched the movie, so item-kNN puts it first.
    assert results[0]["anime_id"] == 3
    assert results[0]["reasons"]


def test_recommend_history_titles_with_entities(home: Path) -> None:
    with RecommenderService.open(home, model="itemknn") as service:
        by_entity = service.recommend_history([("Laugh Club&#039;s Return", None)], RankingOptions(n=3))
        by_text = service.recommend_history([("laugh club's return", None)], RankingOptions(n=3))
        by_id = service.recommend_history([("5", None)], RankingOptions(n=3))

    assert ids(by_entity) == ids(by_text) == ids(by_id)


def test_recommend_history_include_adult(home: Path) -> None:
    with RecommenderService.open(home, model="popular") as service:
        default = service.recommend_history([(1, None)], RankingOptions(n=10))
        with_adult = service.recommend_history([(1, None)], RankingOptions(n=10, include_adult=True))

    assert 7 not in ids(default)
    assert 7 in ids(with_adult)


@pytest.mark.parametrize(
    "history, message",
    [
        ([], "history is empty"),
        ([("Saga", 11.0)], "outside the rating scale"),
        ([("Saga", 0.5)], "outside the rating scale"),
    ],
)
def test_recommend_history_rejects(home: Path, history: list, message: str) -> None:
    with RecommenderService.open(home, model="popular") as service:
        with pytest.raises(ConfigError, match=message):
            service.recommend_history(history, RankingOptions())


def test_recommend_history_unknown_title(home: Path) -> None:
    with RecommenderService.open(home, model="popular") as service:
        with pytest.raises(NotFoundError, match="Closest matches: Saga"):
            service.recommend_history([("Sagaa", None)], RankingOptions())


def test_similar_excludes_query(home: Path) -> None:
    with RecommenderService.open(home, model="itemknn") as service:
        results = service.similar("Saga", n=3)

    assert results
    assert 1 not in ids(results)
    assert results[0]["anime_id"] in (2, 3)
    scores = [row["score"] for row in results]
    assert scores == sorted(scores, reverse=True)


def test_similar_reasons_count_shared_viewers(home: Path) -> None:
    with RecommenderService.open(home, model="itemknn") as service:
        results = {row["anime_id"]: row for row in service.similar("Saga", n=5)}

    # Saga is watched by users 101, 102 and 105; Part Two by 101, 102 and 106; the movie by
    # 101 and 106.
    assert results[2]["reasons"] == [
        "2 people who watched Saga also watched it",
        "shares genres with Saga: Action, Drama",
    ]
    assert results[3]["reasons"][0] == "1 person who watched Saga also watched it"


def test_search_without_model(home: Path) -> None:
    with RecommenderService.open(home, with_model=False) as service:
        results = service.search("saga", n=5)
        with pytest.raises(NotFoundError, match="no model is loaded"):
            service.recommend_user(101, RankingOptions())

    assert ids(results) == [1, 2, 3]  # exact match first, then prefixes by members
    assert results[0]["score"] == pytest.approx(8.5)  # the catalogue's mean score
    assert service.anime(8)["score"] is None


def test_model_cache_reloads_after_retrain(home: Path) -> None:
    with Store(home / "animerec.sqlite") as store:
        first = load_model_cached(store, "kaggle-2016", "itemknn")
        again = load_model_cached(store, "kaggle-2016", "itemknn")
        bundle = store.model_path("kaggle-2016", "itemknn")
        create_model("itemknn", n_neighbors=2).fit(store.load_dataset()).save(bundle)
        retrained = load_model_cached(store, "kaggle-2016", "itemknn")

    assert again is first
    assert retrained is not first
    assert retrained.config.n_neighbors == 2


def test_scores_match_model(home: Path) -> None:
    with RecommenderService.open(home, model="itemknn") as service:
        results = service.recommend_user(104, RankingOptions(n=3))
        model = service.model
        raw = model.score_users(np.array([model.users_.index(104)]))[0]

    for row in results:
        assert row["score"] == pytest.approx(float(raw[model.items_.index(row["anime_id"])]))
