"""Reasons for recommendations, from the explain module and through the service."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.data.interactions import Dataset, Interactions
from animerec.data.malexport import read_mal_export
from animerec.explain import MAX_REASONS, explain, liked_weights
from animerec.models.registry import create_model
from animerec.ranking import RankingOptions, Recommendation
from animerec.service import RecommenderService

DATA = Path(os.environ.get("ANIMEREC_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"

SPACE = ("Action", "Space", "Sci-Fi")
ROMANCE = ("Romance", "School", "Drama")
ROWS = [
    (1, "Space One", SPACE, "Sunrise"),
    (2, "Space Two", SPACE, "Sunrise"),
    (3, "Space Three", ("Action", "Space"), "Sunrise"),
    (4, "Romance One", ROMANCE, "Kyoto Animation"),
    (5, "Romance Two", ROMANCE, "Kyoto Animation"),
    (6, "Romance Three", ("Romance", "School"), "Kyoto Animation"),
    (7, "Space One 2nd Season", SPACE, "Sunrise"),
]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    catalog = Catalog(
        catalog_frame(
            anime_id=[r[0] for r in ROWS],
            title=[r[1] for r in ROWS],
            genres=[r[2] for r in ROWS],
            type=["TV"] * len(ROWS),
            episodes=[12] * len(ROWS),
            score=[8.0] * len(ROWS),
            members=[1000] * len(ROWS),
            extra={"studios": [(r[3],) for r in ROWS]},
        )
    )
    rows = []
    for user in range(100, 130):
        rows += [(user, 1, 9.0), (user, 2, 8.0), (user, 3, 7.0)]
        if user % 2:
            rows.append((user, 7, 9.0))
    for user in range(200, 230):
        rows += [(user, 4, 9.0), (user, 5, 7.0), (user, 6, 8.0)]
    users, anime, ratings = (np.asarray(c) for c in zip(*rows))
    interactions = Interactions.from_arrays(users, anime, ratings.astype(np.float32), items=catalog.items)
    return Dataset("toy", catalog, interactions, format="test")


def titles(dataset: Dataset):
    aligned = dataset.catalog.aligned(dataset.interactions.items)
    return lambda item_idx: str(aligned.at[item_idx, "title"])


def test_liked_weights_skip_below_mean() -> None:
    weights = liked_weights(np.array([10.0, 4.0, np.nan, 7.0]), (1.0, 10.0))

    assert weights.tolist() == pytest.approx([1 + 3 / 2.25, 0.0, 1.0, 1.0])


def test_liked_weights_keep_high_ratings_below_mean() -> None:
    """A 9 next to a 10 is still liked, and weighs less than the 10."""
    weights = liked_weights(np.array([9.0, 10.0]), (1.0, 10.0))

    assert weights.tolist() == pytest.approx([1 - 0.5 / 2.25, 1 + 0.5 / 2.25])


def test_liked_weights_skip_low_ratings_of_harsh_rater() -> None:
    """Ratings below the middle of the scale are never liked, whatever the person's mean."""
    weights = liked_weights(np.array([3.0, 2.0, 6.0]), (1.0, 10.0))

    assert weights[0] == 0.0
    assert weights[1] == 0.0
    assert weights[2] == pytest.approx(1 + (6 - 11 / 3) / 2.25)


def test_content_reasons_name_title_and_features(dataset: Dataset) -> None:
    model = create_model("content").fit(dataset)
    items = dataset.interactions.items
    history = items.to_idx([1, 4])
    recommendation = Recommendation(3, 1.0, items.index(3))

    reasons = explain(model, titles(dataset), history, np.array([9.0, 9.0]), [recommendation])[0]

    assert reasons[0] == "because you liked Space One"
    assert "shares genres: Space, Action" in reasons or "shares genres: Action, Space" in reasons
    assert "same studio: Sunrise" in reasons
    assert len(reasons) <= MAX_REASONS


def test_content_reasons_skip_broad_type(dataset: Dataset) -> None:
    # The same anime without studios, so only genres and the broad blocks are shared.
    frame = dataset.catalog.frame.drop(columns=["studios"])
    catalog = Catalog(frame)
    bare = Dataset("no studios", catalog, dataset.interactions, format="test")
    model = create_model("content").fit(bare)
    items = bare.interactions.items
    history = items.to_idx([1])
    recommendation = Recommendation(2, 1.0, items.index(2))

    reasons = explain(model, titles(bare), history, np.array([9.0]), [recommendation])[0]

    # Every anime here is a TV series, so "same type: TV" would add nothing to the title
    # and the genres.
    assert reasons[0] == "because you liked Space One"
    assert any(reason.startswith("shares genres") for reason in reasons)
    assert not any(reason.startswith("same type") for reason in reasons)


def test_disliked_title_not_named(dataset: Dataset) -> None:
    model = create_model("content").fit(dataset)
    items = dataset.interactions.items
    history = items.to_idx([1, 4, 5])
    recommendation = Recommendation(6, 1.0, items.index(6))

    reasons = explain(model, titles(dataset), history, np.array([10.0, 3.0, 3.0]), [recommendation])[0]

    assert not any("Romance" in reason and reason.startswith("because") for reason in reasons)


def test_collaborative_reasons(dataset: Dataset) -> None:
    model = create_model("itemknn").fit(dataset)
    items = dataset.interactions.items
    history = items.to_idx([2, 5])
    recommendation = Recommendation(1, 1.0, items.index(1))

    reasons = explain(
        model, titles(dataset), history, np.array([np.nan, np.nan]), [recommendation],
        genres_of=lambda i: dataset.catalog.aligned(items)["genres"][i],
    )[0]

    assert reasons[0] == "because you watched Space Two"
    assert reasons[1].startswith("shares genres:")
    assert "Romance" not in reasons[1]


def test_unrated_named_as_liked_on_request(dataset: Dataset) -> None:
    model = create_model("itemknn").fit(dataset)
    items = dataset.interactions.items
    recommendation = Recommendation(1, 1.0, items.index(1))

    reasons = explain(
        model, titles(dataset), items.to_idx([2]), np.array([np.nan]), [recommendation], unrated_liked=True
    )[0]

    assert reasons[0] == "because you liked Space Two"


def test_popularity_has_no_title_reason(dataset: Dataset) -> None:
    model = create_model("popular").fit(dataset)
    items = dataset.interactions.items
    recommendation = Recommendation(1, 1.0, items.index(1))

    reasons = explain(model, titles(dataset), items.to_idx([2]), np.array([9.0]), [recommendation])[0]

    assert not any(reason.startswith("because") for reason in reasons)


def test_empty_history_no_reasons(dataset: Dataset) -> None:
    model = create_model("content").fit(dataset)
    recommendation = Recommendation(1, 1.0, 0)

    reasons = explain(model, titles(dataset), np.empty(0, np.int32), np.empty(0, np.float32), [recommendation])

    assert reasons == [[]]


# --- through the service ----------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["content", "hybrid", "itemknn"])
def test_service_results_carry_reasons(dataset: Dataset, model_name: str) -> None:
    params = {"cf_model": "itemknn"} if model_name == "hybrid" else {}
    service = RecommenderService(dataset, create_model(model_name, **params).fit(dataset))

    results = service.recommend_history([("Space One", 10.0)], RankingOptions(n=3, collapse_franchises=False))

    assert results[0]["anime_id"] in (2, 3, 7)
    assert results[0]["reasons"][0] == "because you liked Space One"
    assert all(len(r["reasons"]) <= MAX_REASONS for r in results)


def test_service_collapses_franchises(dataset: Dataset) -> None:
    service = RecommenderService(dataset, create_model("content").fit(dataset))

    collapsed = service.recommend_history([(4, 9.0)], RankingOptions(n=6, collapse_franchises=True))
    full = service.recommend_history([(4, 9.0)], RankingOptions(n=6, collapse_franchises=False))

    # "Space One" and "Space One 2nd Season" are one franchise by title.
    assert {1, 7} <= {r["anime_id"] for r in full}
    collapsed_ids = [r["anime_id"] for r in collapsed]
    assert 1 in collapsed_ids
    assert 7 not in collapsed_ids


def test_service_franchise_file(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "groups.json"
    path.write_text('[{"name": "Romance", "ids": [5, 6]}]')
    service = RecommenderService(dataset, create_model("content").fit(dataset), franchises=path)

    results = service.recommend_history([(1, 9.0)], RankingOptions(n=6, collapse_franchises=True))
    ids = [r["anime_id"] for r in results]

    assert 7 in ids  # the title groups are not used when a file is given
    assert not {5, 6} <= set(ids)


def test_service_mal_export(dataset: Dataset) -> None:
    service = RecommenderService(dataset, create_model("content").fit(dataset))
    export = read_mal_export(
        b"<myanimelist>"
        b"<anime><series_animedb_id>1</series_animedb_id><my_score>9</my_score><my_status>Completed</my_status></anime>"
        b"<anime><series_animedb_id>4</series_animedb_id><my_score>0</my_score><my_status>Dropped</my_status></anime>"
        b"<anime><series_animedb_id>2</series_animedb_id><my_score>0</my_score><my_status>Plan to Watch</my_status></anime>"
        b"<anime><series_animedb_id>99999</series_animedb_id><my_score>0</my_score><my_status>Completed</my_status></anime>"
        b"</myanimelist>"
    )

    results = service.recommend_export(export, RankingOptions(n=4, collapse_franchises=False))
    ids = [r["anime_id"] for r in results]

    assert 2 not in ids  # planned titles are left out
    assert ids[:2] == [3, 7] or ids[:2] == [7, 3]
    assert ids[-1] in (5, 6)  # similar to the dropped title, so last


def test_service_reasons_real_data() -> None:
    anime_2016 = DATA / "anime-2016"
    if not (anime_2016 / "rating.csv").is_file():
        pytest.skip(f"real data not found at {anime_2016}; set ANIMEREC_TEST_DATA")
    from animerec.data.loaders import load_format

    real, _ = load_format("kaggle-2016", anime_2016)
    service = RecommenderService(real, create_model("content").fit(real))

    results = service.recommend_history(
        [("Cowboy Bebop", 10.0), ("Trigun", 9.0), ("Clannad", 4.0)], RankingOptions(n=10)
    )

    assert all(r["reasons"] for r in results)
    assert any("Space" in reason for r in results for reason in r["reasons"])
    assert not any("Clannad" in reason for r in results for reason in r["reasons"])


# --- through the command line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def content_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    anime_2016 = DATA / "anime-2016"
    if not (anime_2016 / "rating.csv").is_file():
        pytest.skip(f"real data not found at {anime_2016}; set ANIMEREC_TEST_DATA")
    from typer.testing import CliRunner

    from animerec.cli import app

    home = tmp_path_factory.mktemp("content-home")
    runner = CliRunner()
    for args in (["ingest", "kaggle-2016", str(anime_2016)], ["train", "content"]):
        result = runner.invoke(app, args, env={"ANIMEREC_HOME": str(home)})
        assert result.exit_code == 0, result.output
    return home


def cli_json(home: Path, *args: str) -> list[dict]:
    import json

    from typer.testing import CliRunner

    from animerec.cli import app

    result = CliRunner().invoke(app, ["recommend", "--model", "content", "--json", *args], env={"ANIMEREC_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_collapses_by_default(content_home: Path) -> None:
    collapsed = cli_json(content_home, "--liked", "Naruto", "-n", "10")
    full = cli_json(content_home, "--liked", "Naruto", "-n", "10", "--no-collapse")

    assert "Naruto: Shippuuden" in [r["title"] for r in full]
    assert "Naruto: Shippuuden" not in [r["title"] for r in collapsed]
    assert all(r["reasons"] for r in collapsed)


def test_cli_franchise_file(content_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "groups.json"
    path.write_text('[{"name": "Naruto", "ids": [20, 1735, 442]}]')

    results = cli_json(content_home, "--liked", "Naruto", "-n", "10", "--franchises", str(path))
    ids = [r["anime_id"] for r in results]

    # The file groups Naruto (seen), Naruto Movie 1 (id 442) and Shippuuden (1735): the
    # group shows once, as its earliest unseen entry by MAL id.
    assert 442 in ids
    assert 1735 not in ids


def test_cli_mal_export(content_home: Path) -> None:
    results = cli_json(content_home, "--mal-export", str(FIXTURES / "mal_export_anime.xml"), "-n", "5")

    listed = {1, 5114, 21, 9253, 11757, 32281}
    assert len(results) == 5
    assert not listed.intersection(r["anime_id"] for r in results)
    assert any("Cowboy Bebop" in reason for r in results for reason in r["reasons"])
