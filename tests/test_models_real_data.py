"""The collaborative models on the real Kaggle 2016 sample: each must beat popularity.

A quick held-out check, not the evaluation protocol: 20 % of the users are held out, 80 % of
each held-out history is folded in, and recall@20 is measured on the remaining 20 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions
from animerec.models.registry import create_model

RECALL_K = 20


def rows_of(interactions: Interactions, user_idx: np.ndarray):
    """Return (user_id, anime_id, rating with NaN for unrated) rows of some users."""
    watched = interactions.user_items[user_idx].tocoo()
    rated = interactions.ratings[user_idx].tocsr()
    ratings = np.asarray(rated[watched.row, watched.col]).ravel()
    is_rated = np.asarray((rated != 0)[watched.row, watched.col]).ravel()
    ratings = np.where(is_rated, ratings, np.nan).astype(np.float32)
    user_ids = interactions.users.ids[user_idx][watched.row]
    anime_ids = interactions.items.ids[watched.col]
    return user_ids, anime_ids, ratings


def held_out_split(interactions: Interactions, seed: int = 11):
    rng = np.random.default_rng(seed)
    is_test = rng.random(interactions.n_users) < 0.2
    test_users = IdMap(interactions.users.ids[is_test], kind="user_id")

    def build(user_idx: np.ndarray, keep=None, users=None) -> Interactions:
        user_ids, anime_ids, ratings = rows_of(interactions, user_idx)
        if keep is not None:
            user_ids, anime_ids, ratings = user_ids[keep], anime_ids[keep], ratings[keep]
        return Interactions.from_arrays(
            user_ids, anime_ids, ratings, users=users, items=interactions.items,
            rating_scale=interactions.rating_scale,
        )

    train = build(np.flatnonzero(~is_test))
    test_rows = rows_of(interactions, np.flatnonzero(is_test))
    folded = rng.random(test_rows[0].size) < 0.8
    fold_in = build(np.flatnonzero(is_test), keep=folded, users=test_users)
    target = build(np.flatnonzero(is_test), keep=~folded, users=test_users)
    return train, fold_in, target


def recall_at_k(scores: np.ndarray, seen: sp.csr_matrix, target: sp.csr_matrix, k: int) -> float:
    scores = scores.copy()
    scores[seen.nonzero()] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    recalls = []
    for row in range(scores.shape[0]):
        wanted = target.indices[target.indptr[row]:target.indptr[row + 1]]
        if wanted.size:
            recalls.append(np.isin(top[row], wanted).sum() / min(k, wanted.size))
    return float(np.mean(recalls))


@pytest.fixture(scope="module")
def kaggle_sample(shared_data: Path) -> Dataset:
    from animerec.data.loaders.kaggle2016 import load_kaggle_2016

    directory = shared_data / "anime-2016"
    if not (directory / "rating.csv").is_file():
        pytest.skip(f"{directory}/rating.csv not found")
    dataset, _ = load_kaggle_2016(directory)
    return dataset


@pytest.fixture(scope="module")
def recalls(kaggle_sample: Dataset) -> dict[str, float]:
    train, fold_in, target = held_out_split(kaggle_sample.interactions)
    result = {}
    for name in ("popular", "itemknn", "als", "ease"):
        model = create_model(name).fit(train)
        scores = model.score_histories(fold_in)
        result[name] = recall_at_k(scores, fold_in.user_items, target.user_items, RECALL_K)
    return result


@pytest.mark.parametrize("name", ["itemknn", "als", "ease"])
def test_model_beats_popularity(name: str, recalls: dict[str, float]) -> None:
    assert recalls[name] > recalls["popular"] * 1.2, recalls


def test_factor_models_beat_itemknn(recalls: dict[str, float]) -> None:
    assert recalls["als"] > recalls["itemknn"], recalls
    assert recalls["ease"] > recalls["itemknn"], recalls


def test_als_similar_skips_rarely_watched(kaggle_sample: Dataset) -> None:
    # With 128 factors, plain cosine put two anime watched by one user each at the top of
    # Death Note's list; the support shrinkage keeps such anime out of the top 10.
    model = create_model("als", n_factors=128).fit(kaggle_sample)
    support = kaggle_sample.interactions.user_items.getnnz(axis=0)
    death_note = kaggle_sample.catalog.items.index(1535)

    similar, _ = model.similar_items(death_note, n=10)

    assert support[similar].min() >= 20


def test_als_similarity_shrinkage_off_is_cosine(kaggle_sample: Dataset) -> None:
    model = create_model("als", n_factors=16, epochs=3, similarity_shrinkage=0.0).fit(kaggle_sample)
    factors = model.item_factors_
    death_note = kaggle_sample.catalog.items.index(1535)
    others = np.flatnonzero(~model.untrained_)[:50]

    expected = factors[others] @ factors[death_note]
    expected /= np.linalg.norm(factors[others], axis=1) * np.linalg.norm(factors[death_note])

    np.testing.assert_allclose(model.item_similarities_to(death_note, others), expected, rtol=1e-4)
