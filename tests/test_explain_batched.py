"""Reasons read from one similarity block per list equal reasons read one item at a time.

`explain` asks the model for the similarities of all recommendations to the liked titles
with one `item_similarity_block` call and picks the titles to name for the whole list at
once. The reference below is the earlier per-item path: one `item_similarities_to` (or
history view) lookup and one sort per recommendation.
"""

from __future__ import annotations

import numpy as np
import pytest

import animerec.explain as explain_module
from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.data.interactions import Dataset, Interactions
from animerec.data.loaders import load_format
from animerec.explain import MAX_TITLES, SECOND_TITLE_SHARE, explain
from animerec.models.registry import create_model
from animerec.ranking import Recommendation


def per_item_top_titles(model, content, view, liked_idx, liked_weight, item_idx: int) -> list[int]:
    """The per-item selection `explain` used before the batched path."""
    if view is not None and content is model:
        contributions = view.contributions(item_idx)
    elif view is not None and hasattr(model, "combine_similarities"):
        cf = model.cf_.item_similarities_to(item_idx, liked_idx)
        similarity = model.combine_similarities(cf, view.similarities(item_idx)).astype(np.float64)
        contributions = similarity * liked_weight
    elif getattr(model, "has_item_similarity", True):
        similarity = model.item_similarities_to(item_idx, liked_idx).astype(np.float64)
        contributions = np.where(np.isfinite(similarity), similarity, 0.0) * liked_weight
    else:
        return []
    positive = np.flatnonzero(contributions > 0)
    if not positive.size:
        return []
    order = positive[np.lexsort((liked_idx[positive], -contributions[positive]))]
    strong = order[contributions[order] >= SECOND_TITLE_SHARE * contributions[order[0]]]
    return [int(p) for p in strong[:MAX_TITLES]]


def per_item_path(model, content, view, liked_idx, liked_weight, items) -> list[list[int]]:
    return [per_item_top_titles(model, content, view, liked_idx, liked_weight, int(i)) for i in items]


def reasons_both_ways(monkeypatch, model, dataset: Dataset, history, ratings, recommendations):
    aligned = dataset.catalog.aligned(dataset.interactions.items)
    title_column, genre_column = aligned["title"].tolist(), aligned["genres"].tolist()

    def title_of(item_idx: int) -> str:
        return str(title_column[item_idx])

    def genres_of(item_idx: int):
        genres = genre_column[item_idx]
        return genres if isinstance(genres, tuple) else ()

    arguments = (model, title_of, history, ratings, recommendations, genres_of)
    batched = explain(*arguments)
    with monkeypatch.context() as patch:
        patch.setattr(explain_module, "_top_titles", per_item_path)
        per_item = explain(*arguments)
    return batched, per_item


@pytest.fixture(scope="module")
def real(shared_data) -> Dataset:
    loaded, _ = load_format("kaggle-2016", shared_data / "anime-2016")
    return loaded


def random_cases(dataset: Dataset, seed: int, count: int = 15):
    """Yield (history positions, ratings with some NaN, ten recommendations)."""
    rng = np.random.default_rng(seed)
    items = dataset.interactions.items
    watched = np.flatnonzero(dataset.interactions.user_items.getnnz(axis=0) > 0)
    unwatched = np.flatnonzero(dataset.interactions.user_items.getnnz(axis=0) == 0)
    for case in range(count):
        chosen = rng.choice(watched, size=30, replace=False)
        history, targets = chosen[:20], chosen[20:]
        if case % 3 == 0 and unwatched.size:
            # A title the CF model cannot score, in the history and in the list.
            history[0], targets[0] = unwatched[0], unwatched[-1]
        ratings = rng.integers(1, 11, size=history.size).astype(np.float32)
        ratings[rng.random(history.size) < 0.3] = np.nan
        if case % 5 == 0:
            ratings[:] = np.nan
        recommendations = [Recommendation(int(items.ids[i]), 1.0, int(i)) for i in targets]
        yield history, ratings, recommendations


@pytest.mark.parametrize(
    "name, params",
    [
        ("als", {"n_factors": 8, "epochs": 2, "num_threads": 1}),
        ("itemknn", {}),
        ("content", {}),
    ],
)
def test_batched_reasons_equal_per_item_real_data(monkeypatch, real: Dataset, name: str, params) -> None:
    model = create_model(name, **params).fit(real)
    named = 0
    for history, ratings, recommendations in random_cases(real, seed=7):
        batched, per_item = reasons_both_ways(monkeypatch, model, real, history, ratings, recommendations)

        assert batched == per_item
        named += sum(bool(r) and r[0].startswith("because you") for r in batched)
    # The comparison means something only when titles were named.
    assert named > 0


def test_similarity_block_rows_equal_single_lookups(real: Dataset) -> None:
    model = create_model("als", n_factors=8, epochs=2, num_threads=1).fit(real)
    history, _, recommendations = next(random_cases(real, seed=11))
    items = np.array([r.item_idx for r in recommendations])

    block = model.item_similarity_block(items, history)

    assert block.shape == (items.size, history.size)
    assert block.dtype == np.float32
    # ALS computes the block as one matrix product, so sums may round differently.
    for row, item_idx in enumerate(items):
        np.testing.assert_allclose(
            block[row], model.item_similarities_to(int(item_idx), history), rtol=1e-5, atol=1e-6
        )
    # An untrained history title stays -inf in the block, as in a single lookup.
    assert np.isneginf(block[:, 0]).all()


def toy_dataset() -> Dataset:
    """Two groups of three anime, the same genres within a group, so contributions tie."""
    space, romance = ("Action", "Space"), ("Romance", "School")
    genres = [space, space, space, romance, romance, romance]
    catalog = Catalog(
        catalog_frame(
            anime_id=list(range(1, 7)),
            title=[f"Title {i}" for i in range(1, 7)],
            genres=genres,
            type=["TV"] * 6,
            episodes=[12] * 6,
            score=[8.0] * 6,
            members=[1000] * 6,
        )
    )
    rows = []
    for user in range(100, 120):
        rows += [(user, 1, 9.0), (user, 2, 9.0), (user, 3, 8.0)]
    for user in range(200, 220):
        rows += [(user, 4, 9.0), (user, 5, 9.0), (user, 6, 8.0)]
    users, anime, ratings = (np.asarray(c) for c in zip(*rows))
    interactions = Interactions.from_arrays(users, anime, ratings.astype(np.float32), items=catalog.items)
    return Dataset("toy", catalog, interactions, format="test")


@pytest.mark.parametrize(
    "name, params", [("content", {}), ("hybrid", {"cf_model": "itemknn"}), ("itemknn", {})]
)
def test_ties_broken_the_same_way(monkeypatch, name: str, params) -> None:
    dataset = toy_dataset()
    model = create_model(name, **params).fit(dataset)
    items = dataset.interactions.items
    history = items.to_idx([1, 2, 4, 5])
    recommendations = [Recommendation(a, 1.0, items.index(a)) for a in (3, 6)]

    for ratings in (np.full(4, np.nan), np.array([9.0, 9.0, 9.0, 9.0]), np.array([9.0, 8.0, 9.0, 2.0])):
        batched, per_item = reasons_both_ways(monkeypatch, model, dataset, history, ratings, recommendations)

        assert batched == per_item
        assert batched[0][0].startswith("because you")
