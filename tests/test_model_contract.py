"""The contract every registered model passes (see animerec.models.base).

Every test runs on every name in `animerec.models.registry.model_names()`, so a model added
to the registry is checked without touching this file. The data are small and built here:
three blocks of anime, each watched by its own group of users, plus anime nobody watched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions, histories_to_interactions
from animerec.errors import ConfigError, DataError, NotFittedError, UnknownIdError
from animerec.models.base import load_model
from animerec.models.registry import create_model, model_names
from animerec.ranking import Ranker, RankingOptions

MODEL_NAMES = model_names()

# Models whose fold-in of a training user's own history reproduces that user's training
# scores exactly (up to float rounding). Every other model must at least agree on the top
# of the ranking.
EXACT_FOLD_IN = {"popular", "itemknn", "ease"}

# Models that must solve the block fixture: someone who watched all but one anime of a
# block gets that anime first.
BLOCK_SOLVERS = ["itemknn", "als", "ease"]

BLOCK_SIZE = 10
N_BLOCKS = 3
USERS_PER_BLOCK = 30
# Catalogue entries nobody watched: a collaborative model cannot score them.
UNWATCHED_IDS = (9001, 9002)
ADULT_ID = 9003


def anime_ids_of_block(block: int) -> np.ndarray:
    # Non-contiguous external ids, like real anime ids.
    return 1000 + 7 * (block * BLOCK_SIZE + np.arange(BLOCK_SIZE))


def make_catalog(extra_ids: tuple[int, ...] = ()) -> Catalog:
    watched_ids = np.concatenate([anime_ids_of_block(b) for b in range(N_BLOCKS)])
    ids = [int(a) for a in watched_ids] + list(UNWATCHED_IDS) + [ADULT_ID] + list(extra_ids)
    genres = []
    for anime_id in ids:
        if anime_id == ADULT_ID:
            genres.append(("Hentai",))
        else:
            genres.append(("Action",) if anime_id % 2 else ("Drama",))
    frame = pd.DataFrame(
        {
            "anime_id": ids,
            "title": [f"Anime {a}" for a in ids],
            "genres": genres,
            "type": ["TV" if a % 3 else "Movie" for a in ids],
            "episodes": pd.array([12] * len(ids), dtype="Int64"),
            "score": [7.0] * len(ids),
            "members": pd.array([100] * len(ids), dtype="Int64"),
        }
    )
    return Catalog(frame)


def make_block_rows(
    seed: int, n_blocks: int = N_BLOCKS, users_per_block: int = USERS_PER_BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (user_id, anime_id, rating) rows: each user watched 6 of their block's 10 anime.

    Ratings are 6–10 inside the block, and every fourth row is watched but unrated (NaN).
    """
    rng = np.random.default_rng(seed)
    user_ids, anime_ids, ratings = [], [], []
    for block in range(n_blocks):
        block_ids = anime_ids_of_block(block)
        for member in range(users_per_block):
            user_id = 5_000_000 + 13 * (block * users_per_block + member)
            watched = rng.choice(block_ids, size=6, replace=False)
            user_ids.extend([user_id] * watched.size)
            anime_ids.extend(watched.tolist())
            ratings.extend(rng.integers(6, 11, size=watched.size).astype(float).tolist())
    ratings_array = np.asarray(ratings, dtype=np.float32)
    ratings_array[::4] = np.nan
    return np.asarray(user_ids), np.asarray(anime_ids), ratings_array


def make_dataset(seed: int = 0, **block_options: int) -> Dataset:
    catalog = make_catalog()
    user_ids, anime_ids, ratings = make_block_rows(seed, **block_options)
    interactions = Interactions.from_arrays(user_ids, anime_ids, ratings, items=catalog.items)
    return Dataset("blocks", catalog, interactions, format="test")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="module")
def fitted_models(dataset: Dataset) -> dict:
    """One model per registered name, fitted once on `dataset`; tests must not refit them."""
    return {name: create_model(name).fit(dataset) for name in MODEL_NAMES}


def training_history(interactions: Interactions, user_idx: np.ndarray) -> Interactions:
    """Return the training rows of some users as fold-in histories over the same items."""
    histories = []
    for user in user_idx:
        item_idx, rating = interactions.history(int(user))
        anime_ids = interactions.items.to_ids(item_idx)
        histories.append(
            [(int(a), None if np.isnan(r) else float(r)) for a, r in zip(anime_ids, rating)]
        )
    return histories_to_interactions(histories, interactions.items, interactions.rating_scale)


def assert_same_scores(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-5) -> None:
    """Scores agree: the same -inf positions and close finite values."""
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=1e-5)


def top_unseen(scores: np.ndarray, seen: sp.csr_matrix, n: int) -> list[set[int]]:
    """Return, per row, the positions of the n best-scored unseen items."""
    scores = scores.copy()
    scores[seen.nonzero()] = -np.inf
    result = []
    for row in scores:
        finite = np.flatnonzero(np.isfinite(row))
        order = finite[np.lexsort((finite, -row[finite]))]
        result.append(set(order[:n].tolist()))
    return result


# --- shapes, dtypes, batches -------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_score_shapes_and_dtype(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    n_items = dataset.interactions.n_items

    user_scores = model.score_users(np.array([0, 3, 40]))
    history_scores = model.score_histories(training_history(dataset.interactions, [1, 2]))

    assert user_scores.shape == (3, n_items)
    assert user_scores.dtype == np.float32
    assert history_scores.shape == (2, n_items)
    assert history_scores.dtype == np.float32
    assert not np.isnan(user_scores).any()
    assert not np.isnan(history_scores).any()
    assert not np.isposinf(user_scores).any()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_batch_equals_single(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    user_idx = np.array([5, 0, 61, 33])
    batch = model.score_users(user_idx)
    histories = training_history(dataset.interactions, user_idx)
    history_batch = model.score_histories(histories)

    for row, user in enumerate(user_idx):
        assert_same_scores(batch[row], model.score_users([user])[0])
        single = training_history(dataset.interactions, [user])
        assert_same_scores(history_batch[row], model.score_histories(single)[0])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_empty_history_folds_in(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    empty = histories_to_interactions([[]], dataset.interactions.items)

    scores = model.score_histories(empty)

    assert scores.shape == (1, dataset.interactions.n_items)
    assert not np.isnan(scores).any()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fold_in_matches_training_user(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    interactions = dataset.interactions
    user_idx = np.arange(0, interactions.n_users, 7)

    trained = model.score_users(user_idx)
    folded = model.score_histories(training_history(interactions, user_idx))

    if name in EXACT_FOLD_IN:
        assert_same_scores(folded, trained, rtol=1e-4)
        return
    # Iterative solvers stop short of the exact optimum, so only the top of the ranking of
    # unseen anime has to agree.
    seen = interactions.user_items[user_idx]
    overlaps = [
        len(a & b) / 3
        for a, b in zip(top_unseen(trained, seen, 3), top_unseen(folded, seen, 3))
    ]
    assert np.mean(overlaps) >= 0.8


# --- ranking through the one ranking step ---------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ranked_list_excludes_seen(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    interactions = dataset.interactions
    ranker = Ranker(dataset.catalog, interactions.items)
    user_idx = np.array([0, 31, 62])
    seen = interactions.user_items[user_idx]

    lists = ranker.rank(model.score_users(user_idx), RankingOptions(n=20), seen=seen)

    for row, recommendations in enumerate(lists):
        seen_ids = set(interactions.items.to_ids(seen[row].indices).tolist())
        listed = [r.anime_id for r in recommendations]
        assert recommendations, "the list is empty"
        assert not seen_ids.intersection(listed)
        assert ADULT_ID not in listed
        assert not set(UNWATCHED_IDS).intersection(listed) or "content" in model.feedback


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unknown_user_raises(name: str, fitted_models: dict) -> None:
    model = fitted_models[name]

    with pytest.raises(UnknownIdError, match="424242"):
        model.users_.index(424242)
    with pytest.raises(UnknownIdError):
        model.users_.to_idx([424242])
    with pytest.raises(ConfigError):
        model.score_users([len(model.users_)])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unfitted_model_raises(name: str, dataset: Dataset, tmp_path) -> None:
    model = create_model(name)
    histories = training_history(dataset.interactions, [0])

    assert not model.is_fitted
    with pytest.raises(NotFittedError):
        model.score_users([0])
    with pytest.raises(NotFittedError):
        model.score_histories(histories)
    with pytest.raises(NotFittedError):
        model.similar_items(0)
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "bundle")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_empty_interactions_rejected(name: str, dataset: Dataset) -> None:
    items = dataset.interactions.items
    empty = Interactions.from_arrays(
        np.array([], dtype=np.int64),
        np.array([], dtype=np.int64),
        np.array([], dtype=np.float32),
        users=IdMap([1], kind="user_id"),
        items=items,
    )

    with pytest.raises(DataError):
        create_model(name).fit(empty)


# --- persistence, seeds, refits --------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_load_round_trip(name: str, dataset: Dataset, fitted_models: dict, tmp_path) -> None:
    model = fitted_models[name]
    user_idx = np.arange(dataset.interactions.n_users)
    histories = training_history(dataset.interactions, [2, 50])

    path = model.save(tmp_path / name)
    loaded = load_model(path)

    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert loaded.users_ == model.users_
    assert loaded.items_ == model.items_
    np.testing.assert_array_equal(loaded.score_users(user_idx), model.score_users(user_idx))
    np.testing.assert_array_equal(loaded.score_histories(histories), model.score_histories(histories))
    for item_idx in (0, 11, 25):
        expected_items, expected_values = model.similar_items(item_idx, n=5)
        actual_items, actual_values = loaded.similar_items(item_idx, n=5)
        np.testing.assert_array_equal(actual_items, expected_items)
        np.testing.assert_array_equal(actual_values, expected_values)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_replaces_old_bundle(name: str, fitted_models: dict, tmp_path) -> None:
    model = fitted_models[name]
    path = tmp_path / "bundle"
    model.save(path)
    model.save(path)

    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "bundle"]

    assert leftovers == []
    assert load_model(path).is_fitted


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_result(name: str, dataset: Dataset, fitted_models: dict) -> None:
    user_idx = np.arange(dataset.interactions.n_users)
    first = fitted_models[name].score_users(user_idx)

    second = create_model(name).fit(dataset).score_users(user_idx)

    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_refit_resets_state(name: str, dataset: Dataset) -> None:
    smaller = make_dataset(seed=3, n_blocks=2, users_per_block=20)
    bigger_catalog = make_catalog(extra_ids=(9100, 9101, 9102))
    user_ids, anime_ids, ratings = make_block_rows(seed=4)
    bigger = Interactions.from_arrays(user_ids, anime_ids, ratings, items=bigger_catalog.items)
    model = create_model(name)

    model.fit(dataset)
    learned_after_first = {a for a in vars(model) if a.endswith("_")}
    model.fit(smaller)
    small_scores = model.score_users(np.arange(smaller.interactions.n_users))
    model.fit(bigger)
    big_scores = model.score_users([0, 1])

    assert model.users_ == bigger.users
    assert model.items_ == bigger.items
    assert small_scores.shape == (40, smaller.interactions.n_items)
    # The third block's anime were never watched in `smaller`.
    third_block = smaller.interactions.items.to_idx(anime_ids_of_block(2))
    if "content" not in create_model(name).feedback:
        assert np.isneginf(small_scores[:, third_block]).all()
    assert big_scores.shape == (2, bigger.n_items)
    assert {a for a in vars(model) if a.endswith("_")} == learned_after_first


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unwatched_items_score_minus_inf(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    if "content" in model.feedback:
        pytest.skip("content-based models can score anime nobody watched")
    unwatched = dataset.interactions.items.to_idx(list(UNWATCHED_IDS) + [ADULT_ID])
    histories = training_history(dataset.interactions, [0, 45])

    user_scores = model.score_users(np.arange(dataset.interactions.n_users))
    history_scores = model.score_histories(histories)

    assert np.isneginf(user_scores[:, unwatched]).all()
    assert np.isneginf(history_scores[:, unwatched]).all()
    assert np.isfinite(np.delete(user_scores, unwatched, axis=1)).all()


# --- similar items ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_similar_items_sorted_without_self(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    unwatched = set(dataset.interactions.items.to_idx(list(UNWATCHED_IDS)).tolist())

    item_idx, similarity = model.similar_items(4, n=8)

    assert 0 < item_idx.size <= 8
    assert item_idx.dtype == np.int32
    assert 4 not in item_idx.tolist()
    assert np.all(np.diff(similarity) <= 0)
    assert np.isfinite(similarity).all()
    if "content" not in model.feedback:
        assert not unwatched.intersection(item_idx.tolist())


# --- a fixture with a known answer ----------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in BLOCK_SOLVERS if n in MODEL_NAMES])
def test_block_fixture_known_answer(name: str, dataset: Dataset, fitted_models: dict) -> None:
    """Someone who watched 9 of block 1's 10 anime gets the 10th first: nobody in the
    training data watched across blocks, so nothing else is related to their history."""
    model = fitted_models[name]
    block_ids = anime_ids_of_block(1)
    missing_id = int(block_ids[4])
    history = [(int(a), 9.0) for a in block_ids if a != missing_id]
    histories = histories_to_interactions([history], dataset.interactions.items)
    ranker = Ranker(dataset.catalog, dataset.interactions.items)

    scores = model.score_histories(histories)
    ranked = ranker.rank(scores, RankingOptions(n=5), seen=histories.user_items)[0]

    assert ranked[0].anime_id == missing_id


@pytest.mark.parametrize("name", [n for n in BLOCK_SOLVERS if n in MODEL_NAMES])
def test_block_fixture_similar_items(name: str, dataset: Dataset, fitted_models: dict) -> None:
    model = fitted_models[name]
    block_idx = set(dataset.interactions.items.to_idx(anime_ids_of_block(2)).tolist())
    query = min(block_idx)

    item_idx, _ = model.similar_items(query, n=5)

    assert set(item_idx.tolist()) <= block_idx
