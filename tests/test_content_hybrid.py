"""Content-based and hybrid models: features, profiles, new anime, short histories, user features."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.data.interactions import Dataset, Interactions, histories_to_interactions
from animerec.errors import ConfigError
from animerec.models.base import load_model
from animerec.models.content import ContentConfig, ContentRecommender, build_item_features, profile_weights
from animerec.models.hybrid import (
    BUCKET_BOUNDS,
    FRANCHISE_GRID,
    HISTORY_LENGTH_COLUMN,
    NATURAL_MAX_TITLES,
    SHORT_BUCKET,
    FeaturePrior,
    HybridRecommender,
    history_bucket,
    standardise,
    weight_grid,
)

DATA = Path(os.environ.get("ANIMEREC_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def make_catalog(rows: list[tuple[int, str, tuple[str, ...]]], extra: dict | None = None) -> Catalog:
    return Catalog(
        catalog_frame(
            anime_id=[r[0] for r in rows],
            title=[r[1] for r in rows],
            genres=[r[2] for r in rows],
            type=["TV"] * len(rows),
            episodes=[12] * len(rows),
            score=[8.0] * len(rows),
            members=[1000] * len(rows),
            extra=extra,
        )
    )


SPACE = ("Action", "Space", "Sci-Fi")
ROMANCE = ("Romance", "School", "Drama")
CATALOG_ROWS = [
    (1, "Space One", SPACE),
    (2, "Space Two", SPACE),
    (3, "Space Three", ("Action", "Space")),
    (4, "Romance One", ROMANCE),
    (5, "Romance Two", ROMANCE),
    (6, "Romance Three", ("Romance", "School")),
    (7, "New Space Show", SPACE),  # nobody watched it
    (8, "New Romance Show", ROMANCE),  # nobody watched it
]


def make_dataset(user_features: pd.DataFrame | None = None, extra: dict | None = None) -> Dataset:
    catalog = make_catalog(CATALOG_ROWS, extra)
    rows = []
    # Users 100..119 watch the space titles, users 200..219 the romance titles.
    for user in range(100, 120):
        rows += [(user, 1, 9.0), (user, 2, 8.0), (user, 3, float("nan"))]
    for user in range(200, 220):
        rows += [(user, 4, 9.0), (user, 5, 7.0), (user, 6, float("nan"))]
    users, anime, ratings = (np.asarray(c) for c in zip(*rows))
    interactions = Interactions.from_arrays(users, anime, ratings.astype(np.float32), items=catalog.items)
    return Dataset("toy", catalog, interactions, format="test", user_features=user_features)


def fold_in(dataset: Dataset, history: list[tuple[int, float | None]], weights=None) -> Interactions:
    return histories_to_interactions([history], dataset.interactions.items, weights=[weights] if weights else None)


# --- content features ---------------------------------------------------------------------


def test_features_idf_weighting() -> None:
    catalog = make_catalog([(1, "A", ("Action", "Rare")), (2, "B", ("Action",)), (3, "C", ("Action",))])

    features = build_item_features(catalog, catalog.items, ContentConfig(type_weight=0, episodes_weight=0))
    row = features.matrix[0].toarray().ravel()
    action = features.names.index("genre:Action")
    rare = features.names.index("genre:Rare")

    # idf = log((1 + n) / (1 + df)) + 1: Action is in 3 of 3 anime, Rare in 1.
    idf_action, idf_rare = np.log(4 / 4) + 1, np.log(4 / 2) + 1
    norm = np.hypot(idf_action, idf_rare)
    assert row[action] == pytest.approx(idf_action / norm, rel=1e-5)
    assert row[rare] == pytest.approx(idf_rare / norm, rel=1e-5)


def test_features_exclude_site_aggregates() -> None:
    dataset = make_dataset()

    default = ContentRecommender().fit(dataset)
    flagged = ContentRecommender(use_site_aggregates=True).fit(dataset)

    assert not any(name.startswith("aggregate:") for name in default.feature_names_)
    assert default.uses_site_aggregates is False
    assert ContentRecommender.uses_site_aggregates is False
    assert flagged.uses_site_aggregates is True
    assert any(name.startswith("aggregate:") for name in flagged.feature_names_)


def test_features_use_extra_columns() -> None:
    pytest.importorskip("sklearn", reason="synopsis features need the content extra (scikit-learn)")
    extra = {
        "studios": [("Sunrise",), ("Madhouse",), ("Bones",), ("Kyoto Animation",), ("Kyoto Animation",), (), ("Sunrise",), ()],
        "source": ["Original", "Manga", "Original", "Light novel", "Light novel", "Manga", None, None],
        "premiere_year": pd.array([1998, 2001, 2005, 2010, 2012, None, 2020, 2020], dtype="Int64"),
        "age_rating": ["R - 17+"] * 3 + ["PG-13"] * 5,
        "synopsis": [
            "bounty hunters chase criminals across the solar system",
            "bounty hunters travel to mars",
            "a pilot fights in space",
            "two students fall in love at school",
            "a school club and a first love",
            None,
            "bounty hunters return to the solar system",
            "love letters at school",
        ],
    }
    dataset = make_dataset(extra=extra)

    model = ContentRecommender().fit(dataset)
    names = set(model.feature_names_)

    assert {"studio:Sunrise", "source:Original", "year:1995-1999", "age_rating:PG-13"} <= names
    assert "word:bounty" in names
    assert "word:the" not in names  # English stop words are removed
    similar, _ = model.similar_items(model.items_.index(1), n=1)
    assert model.items_.ids[similar].tolist() == [7]  # same studio, genres and story words


def test_episode_and_year_bands() -> None:
    catalog = Catalog(
        catalog_frame(
            anime_id=[1, 2, 3, 4],
            title=["A", "B", "C", "D"],
            genres=[()] * 4,
            type=[None] * 4,
            episodes=[1, 12, 500, None],
            score=[None] * 4,
            members=[None] * 4,
            extra={"aired_start": ["1998-04-03", "2004", None, "1999-01"]},
        )
    )

    features = build_item_features(catalog, catalog.items, ContentConfig())

    assert {"episodes:1", "episodes:7-13", "episodes:101+"} <= set(features.names)
    assert {"year:1995-1999", "year:2000-2004"} <= set(features.names)
    assert features.matrix[3].nnz == 1  # only the year band is known


# --- content profiles and scores -------------------------------------------------------------


def test_profile_weights_centre_on_mean() -> None:
    items = make_catalog(CATALOG_ROWS).items
    history = histories_to_interactions([[(1, 10.0), (4, 4.0), (2, None)]], items)

    weights = profile_weights(history).toarray().ravel()

    # Mean rating 7, spread (10 - 1) / 4 = 2.25: 1 + 3 / 2.25 and 1 - 3 / 2.25 clipped to 0.
    assert weights[items.index(1)] == pytest.approx(1 + 3 / 2.25)
    assert weights[items.index(4)] == 0.0
    assert weights[items.index(2)] == 1.0


def test_content_ranks_anime_nobody_watched() -> None:
    dataset = make_dataset()
    model = ContentRecommender().fit(dataset)

    scores = model.score_histories(fold_in(dataset, [(1, 9.0), (2, 9.0)]))[0]

    assert np.isfinite(scores).all()
    new_space, new_romance = model.items_.index(7), model.items_.index(8)
    assert scores[new_space] > scores[new_romance]
    assert scores[new_space] > 0.9


def test_content_liked_rating_outweighs_disliked() -> None:
    dataset = make_dataset()
    model = ContentRecommender().fit(dataset)

    scores = model.score_histories(fold_in(dataset, [(1, 10.0), (4, 3.0)]))[0]

    assert scores[model.items_.index(7)] > scores[model.items_.index(8)]


def test_content_dropped_is_negative() -> None:
    dataset = make_dataset()
    model = ContentRecommender().fit(dataset)

    scores = model.score_histories(fold_in(dataset, [(1, None), (4, None)], weights=[1.0, -0.5]))[0]

    assert scores[model.items_.index(8)] < 0 < scores[model.items_.index(7)]


def test_content_training_users_match_fold_in() -> None:
    dataset = make_dataset()
    model = ContentRecommender().fit(dataset)
    user_idx = dataset.interactions.users.index(100)
    item_idx, ratings = dataset.interactions.history(user_idx)
    history = [(int(dataset.interactions.items.ids[i]), None if np.isnan(r) else float(r)) for i, r in zip(item_idx, ratings)]

    np.testing.assert_allclose(
        model.score_users([user_idx])[0], model.score_histories(fold_in(dataset, history))[0], rtol=1e-5
    )


def test_content_shared_features_name_genres() -> None:
    dataset = make_dataset()
    model = ContentRecommender().fit(dataset)
    history = dataset.interactions.items.to_idx([1, 2])

    shared = model.shared_features(history, np.array([1.0, 1.0]), model.items_.index(3))

    assert shared[0][0] == "genres"
    assert set(shared[0][1]) == {"Action", "Space"}


def test_content_real_catalogue_similar() -> None:
    anime_2016 = DATA / "anime-2016"
    if not (anime_2016 / "anime.csv").is_file():
        pytest.skip(f"real data not found at {anime_2016}; set ANIMEREC_TEST_DATA")
    from animerec.data.loaders import load_format

    dataset, _ = load_format("kaggle-2016", anime_2016)
    model = ContentRecommender().fit(dataset)
    bebop = model.items_.index(1)

    similar, _ = model.similar_items(bebop, n=20)
    genres = dataset.catalog.aligned(model.items_)["genres"]

    assert sum("Space" in genres[i] for i in similar) >= 15
    assert np.isfinite(model.score_users([0, 1])).all()


# --- hybrid ------------------------------------------------------------------------------


def test_history_buckets() -> None:
    lengths = np.array([0, 1, 2, 3, 4, 5, 6, 55, 56, 1000])

    assert history_bucket(lengths).tolist() == [0, 1, 2, 3, 4, 4, 5, 9, 10, 10]
    assert len(BUCKET_BOUNDS) + 1 == 11


def test_weight_grid_on_simplex() -> None:
    grid = weight_grid()

    assert grid.shape == (66, 3)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0, rtol=1e-6)
    assert (grid >= 0).all()


def test_standardise_fills_unscorable() -> None:
    scores = np.array([[1.0, 3.0, -np.inf], [2.0, 2.0, 2.0]], dtype=np.float32)

    z = standardise(scores)

    np.testing.assert_allclose(z[0], [-1.0, 1.0, -1.0])
    np.testing.assert_allclose(z[1], [0.0, 0.0, 0.0])


def test_tuning_samples_cover_short_buckets_twice() -> None:
    # Users 0..39 have 2..41 titles; all of them are held out.
    lengths = np.arange(2, 42)
    validation = np.arange(lengths.size)
    samples = HybridRecommender()._tuning_samples(validation, lengths, np.random.default_rng(0))

    low_by_bucket = {1: 1, 2: 2, 3: 3, 4: 4}
    high_by_bucket = {1: 1, 2: 2, 3: 3, 4: 5}
    for bucket in range(1, SHORT_BUCKET + 1):
        (cut_users, cut_sizes), (natural_users, natural_sizes) = samples[bucket]
        # Every user who can keep a target after folding in `low` titles is cut to the bucket.
        assert cut_users.tolist() == validation[lengths - 1 >= low_by_bucket[bucket]].tolist()
        assert (cut_sizes >= low_by_bucket[bucket]).all()
        assert (cut_sizes <= high_by_bucket[bucket]).all()
        assert (cut_sizes < lengths[cut_users]).all()
        # Natural samples: whole histories of at most NATURAL_MAX_TITLES, sizes in the bucket.
        assert (lengths[natural_users] <= NATURAL_MAX_TITLES).all()
        assert (history_bucket(natural_sizes) == bucket).all()
        assert (natural_sizes < lengths[natural_users]).all()
    # Longer buckets: each user with more than 5 foldable titles appears exactly once.
    long_users = np.concatenate([samples[b][0][0] for b in samples if b > SHORT_BUCKET])
    assert sorted(long_users.tolist()) == validation[lengths - 1 >= 6].tolist()
    for bucket in (b for b in samples if b > SHORT_BUCKET):
        users, sizes = samples[bucket][0]
        assert (history_bucket(sizes) == bucket).all()
        assert (sizes < lengths[users]).all()


def test_hybrid_invalid_config() -> None:
    with pytest.raises(ConfigError, match="cf_params"):
        HybridRecommender(cf_params="alpha=1")
    with pytest.raises(ConfigError, match="collaborative"):
        HybridRecommender(cf_model="content")


def test_hybrid_serves_new_anime_and_empty_history() -> None:
    dataset = make_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)

    one_title = model.score_histories(fold_in(dataset, [(1, 9.0)]))[0]
    empty = model.score_histories(histories_to_interactions([[]], dataset.interactions.items))[0]

    assert np.isfinite(one_title).all()
    assert np.isfinite(empty).all()
    assert one_title[model.items_.index(7)] > one_title[model.items_.index(8)]
    assert np.isfinite(model.score_users(np.arange(dataset.interactions.n_users))).all()


def demographic_dataset() -> Dataset:
    """Block users 100..119 are all "F", 200..219 all "M"; ages differ by block too."""
    users = list(range(100, 120)) + list(range(200, 220))
    features = pd.DataFrame(
        {
            "gender": ["F"] * 20 + ["M"] * 20,
            "age": [20 + u % 5 for u in range(20)] + [50 + u % 5 for u in range(20)],
            "zip_code": [f"{u:05d}" for u in users],
        },
        index=pd.Index(users, name="user_id"),
    )
    return make_dataset(user_features=features)


def test_hybrid_uses_user_features() -> None:
    dataset = demographic_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)
    empty = histories_to_interactions([[], []], dataset.interactions.items)
    people = pd.DataFrame({"gender": ["F", "M"], "age": [21, 52], "zip_code": ["99999", "00000"]})

    scores = model.score_histories(empty, user_features=people)

    space, romance = model.items_.to_idx([1, 2, 3]), model.items_.to_idx([4, 5, 6])
    assert scores[0, space].min() > scores[0, romance].max()
    assert scores[1, romance].min() > scores[1, space].max()
    assert [c["name"] for c in model.prior_.columns] == ["gender", "age"]  # zip codes: too many values


def test_hybrid_training_users_get_their_features() -> None:
    dataset = demographic_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)

    codes = model.user_codes_
    females = dataset.interactions.users.to_idx(list(range(100, 120)))

    assert (codes[females, 0] == model.prior_.columns[0]["values"].index("F")).all()


def test_hybrid_user_features_row_count_checked() -> None:
    dataset = demographic_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)
    empty = histories_to_interactions([[]], dataset.interactions.items)

    with pytest.raises(ConfigError, match="rows"):
        model.score_histories(empty, user_features=pd.DataFrame({"gender": ["F", "M"]}))


def test_hybrid_round_trip_keeps_features(tmp_path: Path) -> None:
    dataset = demographic_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)
    empty = histories_to_interactions([[]], dataset.interactions.items)
    person = pd.DataFrame({"gender": ["M"], "age": [51]})

    loaded = load_model(model.save(tmp_path / "hybrid"))

    np.testing.assert_allclose(
        loaded.score_histories(empty, user_features=person), model.score_histories(empty, user_features=person)
    )
    assert loaded.prior_.columns == model.prior_.columns


def test_hybrid_tunes_blend_on_real_data() -> None:
    anime_2016 = DATA / "anime-2016"
    if not (anime_2016 / "rating.csv").is_file():
        pytest.skip(f"real data not found at {anime_2016}; set ANIMEREC_TEST_DATA")
    from animerec.data.loaders import load_format

    dataset, _ = load_format("kaggle-2016", anime_2016)
    keep = np.arange(0, dataset.interactions.n_users, 4)  # a quarter of the users keeps it quick
    interactions = dataset.interactions.select_users(keep)
    small = Dataset("sample", dataset.catalog, interactions, format=dataset.format)

    model = HybridRecommender(cf_model="itemknn").fit(small)

    np.testing.assert_allclose(model.blend_.sum(axis=1), 1.0, rtol=1e-5)
    assert model.blend_[0].tolist() == [0.0, 0.0, 1.0]  # an empty history has only the prior
    # A long history leans on collaborative filtering more than a one-title history does.
    assert model.blend_[-1, 0] >= model.blend_[1, 0]
    assert np.isclose(model.franchise_weight_[:, None], FRANCHISE_GRID).any(axis=1).all()
    assert (model.franchise_of_ >= 0).sum() > 1000  # the 2016 catalogue has many sequels
    scores = model.score_users([0])
    assert np.isfinite(scores).all()
    assert sp.issparse(interactions.user_items)


# --- franchise component ------------------------------------------------------------------

FRANCHISE_ROWS = [
    (1, "Galaxy Patrol", SPACE),
    (2, "Galaxy Patrol 2nd Season", SPACE),  # no ratings yet
    (3, "Star Harbor", SPACE),  # no ratings yet, same genres as the sequel, no franchise
    (4, "Romance One", ROMANCE),
    (5, "Romance Two", ROMANCE),
]


def franchise_dataset() -> Dataset:
    catalog = make_catalog(FRANCHISE_ROWS)
    rows = []
    for user in range(100, 120):
        rows += [(user, 1, 9.0), (user, 4, 7.0)]
    for user in range(200, 220):
        rows += [(user, 4, 9.0), (user, 5, 8.0)]
    users, anime, ratings = (np.asarray(c) for c in zip(*rows))
    interactions = Interactions.from_arrays(users, anime, ratings.astype(np.float32), items=catalog.items)
    return Dataset("franchises", catalog, interactions, format="test")


def test_hybrid_groups_franchises_from_titles() -> None:
    model = HybridRecommender(cf_model="itemknn").fit(franchise_dataset())

    groups = model.franchise_of_[model.items_.to_idx([1, 2, 3, 4, 5])]

    assert groups[0] == groups[1] >= 0
    assert (groups[2:] == -1).all()
    assert model.franchise_weight_.shape == (len(BUCKET_BOUNDS) + 1,)
    assert np.isclose(model.franchise_weight_[:, None], FRANCHISE_GRID).any(axis=1).all()


def test_hybrid_franchise_weight_lifts_unwatched_sequel() -> None:
    model = HybridRecommender(cf_model="itemknn").fit(franchise_dataset())
    fan = fold_in(franchise_dataset(), [(1, 9.0)])
    sequel, other = model.items_.index(2), model.items_.index(3)

    model.franchise_weight_[:] = 0.0
    without = model.score_histories(fan)[0]
    model.franchise_weight_[:] = 0.3  # a weight validation picks for long histories
    with_weight = model.score_histories(fan)[0]

    # Content alone gives the two unrated space shows equal scores, and the franchise part
    # separates them.
    assert without[sequel] == pytest.approx(without[other])
    assert with_weight[sequel] > with_weight[other]
    assert with_weight[sequel] - without[sequel] > 0


def test_hybrid_known_users_get_franchise_part() -> None:
    dataset = franchise_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)
    model.franchise_weight_[:] = 0.3
    fan = dataset.interactions.users.index(100)
    sequel, other = model.items_.index(2), model.items_.index(3)

    scores = model.score_users([fan])[0]

    assert scores[sequel] > scores[other]


def test_hybrid_without_franchises() -> None:
    model = HybridRecommender(cf_model="itemknn", use_franchises=False).fit(franchise_dataset())

    assert (model.franchise_of_ == -1).all()
    assert not model.franchise_weight_.any()


def test_hybrid_reads_franchise_file(tmp_path: Path) -> None:
    path = tmp_path / "groups.json"
    path.write_text('[{"name": "Loves", "ids": [4, 5]}]', encoding="utf-8")

    model = HybridRecommender(cf_model="itemknn", franchise_file=str(path)).fit(franchise_dataset())

    groups = model.franchise_of_[model.items_.to_idx([1, 2, 4, 5])]
    assert groups[0] == groups[1] == -1  # the file replaces the title groups
    assert groups[2] == groups[3] >= 0


def test_hybrid_round_trip_keeps_franchise_part(tmp_path: Path) -> None:
    dataset = franchise_dataset()
    model = HybridRecommender(cf_model="itemknn").fit(dataset)
    model.franchise_weight_[:] = 0.3
    fan = fold_in(dataset, [(1, 9.0)])

    loaded = load_model(model.save(tmp_path / "hybrid"))

    np.testing.assert_array_equal(loaded.franchise_weight_, model.franchise_weight_)
    np.testing.assert_allclose(loaded.score_histories(fan), model.score_histories(fan))
    users = np.arange(dataset.interactions.n_users)
    np.testing.assert_allclose(loaded.score_users(users), model.score_users(users))


# --- history length in the prior ----------------------------------------------------------


def length_dataset() -> Dataset:
    """Return 30 people who list anime 13 and at most two others, and 40 who list anime 14
    and nine others."""
    catalog = make_catalog([(anime, f"Show {anime}", SPACE) for anime in range(1, 15)])
    rows = []
    for user in range(100, 130):
        rows += [(user, anime, float("nan")) for anime in (13, 1, 2)[: 1 + user % 3]]
    for user in range(200, 240):
        rows += [(user, anime, float("nan")) for anime in (14, *range(3, 12))]
    users, anime, ratings = (np.asarray(c) for c in zip(*rows))
    interactions = Interactions.from_arrays(users, anime, ratings.astype(np.float32), items=catalog.items)
    return Dataset("lengths", catalog, interactions, format="test")


def test_hybrid_prior_follows_history_length() -> None:
    dataset = length_dataset()
    empty = histories_to_interactions([[]], dataset.interactions.items)
    short_pick, long_pick = dataset.interactions.items.to_idx([13, 14])

    with_length = HybridRecommender(cf_model="itemknn").fit(dataset).score_histories(empty)[0]
    without = HybridRecommender(cf_model="itemknn", use_history_length=False).fit(dataset).score_histories(empty)[0]

    # Anime 14 has more viewers, but only people with long lists watch it.
    assert without[long_pick] > without[short_pick]
    assert with_length[short_pick] > with_length[long_pick]


def test_hybrid_history_length_is_a_prior_column() -> None:
    model = HybridRecommender(cf_model="itemknn").fit(length_dataset())

    names = [column["name"] for column in model.prior_.columns]

    assert names == [HISTORY_LENGTH_COLUMN]


def test_prior_value_without_users_counts_as_unknown() -> None:
    # Every training length is 2 or more, so the quantile bands start at 2 and band 0 (under
    # 2 titles) has no users.
    user_items = sp.csr_matrix(np.array([[1, 1, 0]] * 6 + [[1, 0, 1]] * 4, dtype=np.float32))
    features = pd.DataFrame({HISTORY_LENGTH_COLUMN: [2] * 6 + [10] * 4})
    prior = FeaturePrior(smoothing=10.0).fit(user_items, features)

    empty_band = prior.score(prior.encode(pd.DataFrame({HISTORY_LENGTH_COLUMN: [0]})))
    unknown = prior.score(prior.encode(None, 1))

    np.testing.assert_allclose(empty_band, unknown)
    assert np.isfinite(empty_band).all()
