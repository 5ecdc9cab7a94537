"""Each optimised model path checked against a plain NumPy version of the same formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from animerec.data.idmap import IdMap
from animerec.data.interactions import Interactions
from animerec.errors import ConfigError
from animerec.models import ease, itemknn
from animerec.models.als import ALSRecommender, confidence_weights, fold_in_factors
from animerec.models.ease import EASERecommender, invert_spd_in_place
from animerec.models.itemknn import ItemKNNRecommender, item_neighbors


def random_interactions(seed: int, n_users: int = 40, n_items: int = 25, density: float = 0.2) -> Interactions:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    mask[:, -2:] = False  # two anime nobody watched
    users, items = np.nonzero(mask)
    ratings = rng.integers(1, 11, users.size).astype(np.float32)
    ratings[rng.random(users.size) < 0.3] = np.nan
    return Interactions.from_arrays(
        100 + users, 500 + 3 * items, ratings, items=IdMap(500 + 3 * np.arange(n_items), kind="anime_id")
    )


# --- item-kNN ---------------------------------------------------------------------------------


def dense_cosine_neighbors(user_items: np.ndarray, n_neighbors: int, shrinkage: float) -> np.ndarray:
    """Reference: full cosine matrix, zero diagonal, top n_neighbors positive values per row."""
    norms = np.sqrt((user_items**2).sum(axis=0))
    denominator = np.outer(norms, norms) + shrinkage
    similarity = np.divide(
        user_items.T @ user_items, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    np.fill_diagonal(similarity, 0.0)
    kept = np.zeros_like(similarity)
    for row in range(similarity.shape[0]):
        order = np.argsort(-similarity[row], kind="stable")[:n_neighbors]
        kept[row, order] = similarity[row, order]
    kept[kept < 0] = 0.0
    return kept


@pytest.mark.parametrize("shrinkage", [0.0, 5.0])
def test_item_neighbors_match_dense_cosine(shrinkage: float, monkeypatch) -> None:
    interactions = random_interactions(seed=1)
    # Small blocks, so the chunked loop runs several times.
    monkeypatch.setattr(itemknn, "BLOCK_VALUES", 3 * interactions.n_items)
    dense = interactions.user_items.toarray().astype(np.float64)
    # Distinct similarities make the top-k choice unambiguous: perturb the weights.
    dense *= 1.0 + np.arange(dense.size).reshape(dense.shape) * 1e-4

    neighbors = item_neighbors(sp.csr_matrix(dense, dtype=np.float32), 5, shrinkage)
    expected = dense_cosine_neighbors(dense, 5, shrinkage)

    np.testing.assert_allclose(neighbors.toarray(), expected, rtol=1e-4, atol=1e-6)
    assert (neighbors.getnnz(axis=1) <= 5).all()


def test_itemknn_scores_are_history_times_similarity() -> None:
    interactions = random_interactions(seed=2)
    model = ItemKNNRecommender(n_neighbors=4).fit(interactions)
    similarity = model.similarity_.toarray()

    scores = model.score_users([0, 7])

    expected = interactions.user_items[[0, 7]].toarray() @ similarity
    expected[:, -2:] = -np.inf
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_itemknn_ignores_negative_weights() -> None:
    items = IdMap([1, 2, 3], kind="anime_id")
    interactions = Interactions.from_arrays(
        np.array([1, 1, 2, 2, 3]),
        np.array([1, 2, 1, 2, 3]),
        np.full(5, np.nan, dtype=np.float32),
        weights=np.array([1.0, 1.0, 1.0, 1.0, -1.0], dtype=np.float32),
        items=items,
    )

    model = ItemKNNRecommender().fit(interactions)

    assert model.similarity_.toarray()[0, 1] == pytest.approx(1.0)
    assert np.isneginf(model.score_users([0])[0, 2])


def test_itemknn_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="n_neighbors"):
        ItemKNNRecommender(n_neighbors=0)
    with pytest.raises(ConfigError, match="shrinkage"):
        ItemKNNRecommender(shrinkage=-1.0)


# --- EASE -------------------------------------------------------------------------------------


def test_spd_inverse_in_place(monkeypatch) -> None:
    monkeypatch.setattr(ease, "GRAM_BLOCK_VALUES", 3 * 9)
    rng = np.random.default_rng(3)
    factor = rng.standard_normal((9, 9))
    matrix = (factor @ factor.T + 9 * np.eye(9)).astype(np.float32)
    expected = np.linalg.inv(matrix.astype(np.float64))

    result = invert_spd_in_place(matrix)

    assert result is matrix
    np.testing.assert_allclose(matrix, expected, rtol=1e-4, atol=1e-6)


def test_ease_matches_closed_form() -> None:
    interactions = random_interactions(seed=4)
    regularization = 7.0
    model = EASERecommender(regularization=regularization, dropout=0.0).fit(interactions)
    x = interactions.user_items.toarray().astype(np.float64)[:, :-2]  # anime with interactions
    inverse = np.linalg.inv(x.T @ x + regularization * np.eye(x.shape[1]))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)

    np.testing.assert_allclose(model.weights_, expected, rtol=1e-3, atol=1e-5)
    assert (np.diagonal(model.weights_) == 0).all()
    scores = model.score_users([3])[0]
    np.testing.assert_allclose(scores[:-2], x[3] @ expected, rtol=1e-3, atol=1e-5)
    assert np.isneginf(scores[-2:]).all()


def test_ease_dropout_matches_closed_form() -> None:
    interactions = random_interactions(seed=5)
    regularization, dropout = 3.0, 0.4
    model = EASERecommender(regularization=regularization, dropout=dropout).fit(interactions)
    x = interactions.user_items.toarray().astype(np.float64)[:, :-2]
    gram = x.T @ x
    # Each anime's penalty: λ plus p / (1 − p) times its own Gram diagonal entry.
    penalty = regularization + dropout / (1 - dropout) * np.diag(gram)
    inverse = np.linalg.inv(gram + np.diag(penalty))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)

    np.testing.assert_allclose(model.weights_, expected, rtol=1e-3, atol=1e-5)


def test_ease_dropout_simulated_matches_penalty() -> None:
    """Averaging the loss over many random dropout masks gives the penalised loss."""
    rng = np.random.default_rng(8)
    x = (rng.random((40, 6)) < 0.4).astype(np.float64)
    weights = rng.standard_normal((6, 6))
    np.fill_diagonal(weights, 0.0)
    dropout = 0.3
    masks = rng.random((20_000, *x.shape)) >= dropout
    dropped = x[None] * masks / (1 - dropout)
    simulated = np.mean(np.sum((x[None] - dropped @ weights) ** 2, axis=(1, 2)))
    gram_diagonal = np.sum(x * x, axis=0)
    penalised = np.sum((x - x @ weights) ** 2) + dropout / (1 - dropout) * np.sum(
        gram_diagonal * np.sum(weights**2, axis=1)
    )

    assert simulated == pytest.approx(penalised, rel=0.01)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_ease_rejects_dropout_outside_range(dropout: float) -> None:
    with pytest.raises(ConfigError, match="dropout"):
        EASERecommender(dropout=dropout)


def test_ease_rejects_nonpositive_regularization() -> None:
    with pytest.raises(ConfigError, match="regularization"):
        EASERecommender(regularization=0.0)


# --- ALS --------------------------------------------------------------------------------------


def test_confidence_weights_by_hand() -> None:
    items = IdMap([10, 20, 30, 40], kind="anime_id")
    interactions = Interactions.from_arrays(
        np.array([1, 1, 1, 2, 2]),
        np.array([10, 20, 30, 10, 40]),
        np.array([10.0, 1.0, np.nan, 5.5, 8.0], dtype=np.float32),
        weights=np.array([1.0, 1.0, 1.0, 2.0, -0.5], dtype=np.float32),
        items=items,
    )

    weights = confidence_weights(interactions, rating_weight=1.0, rating_scale=(1.0, 10.0)).toarray()
    unweighted = confidence_weights(interactions, rating_weight=0.0, rating_scale=(1.0, 10.0)).toarray()
    strong = confidence_weights(interactions, rating_weight=4.0, rating_scale=(1.0, 10.0)).toarray()

    # 1 + (rating − 5.5) / 9: a 10 gives 1.5, a 1 gives 0.5, the midpoint 1.
    np.testing.assert_allclose(weights[0], [1.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(weights[1], [2.0, 0.0, 0.0, -0.5])
    np.testing.assert_allclose(unweighted, interactions.user_items.toarray())
    # 1 + 4 × (1 − 5.5) / 9 = −1 is clipped, so a low rating stays positive evidence.
    assert strong[0, 1] == pytest.approx(0.05)
    assert strong[1, 3] == pytest.approx(-0.5)


def test_fold_in_matches_implicit_exact_solver() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(5)
    item_factors = rng.standard_normal((30, 6)).astype(np.float32)
    dense = np.where(rng.random((12, 30)) < 0.3, rng.uniform(0.5, 4.0, (12, 30)), 0.0)
    dense[3] = 0.0  # an empty history
    dense[5, 2] = -2.0  # negative evidence
    confidence = sp.csr_matrix(dense, dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        solver = AlternatingLeastSquares(factors=6, regularization=0.3, alpha=1.0, num_threads=1)
    solver.item_factors = item_factors

    expected = solver.recalculate_user(np.arange(12), confidence)
    actual = fold_in_factors(confidence, item_factors, regularization=0.3)

    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(actual[3], 0.0)


def test_fold_in_groups_many_lengths(monkeypatch) -> None:
    from animerec.models import als

    rng = np.random.default_rng(6)
    item_factors = rng.standard_normal((40, 4)).astype(np.float32)
    dense = np.where(rng.random((50, 40)) < rng.random((50, 1)), 2.0, 0.0)
    confidence = sp.csr_matrix(dense, dtype=np.float32)
    whole = fold_in_factors(confidence, item_factors, regularization=0.5)

    monkeypatch.setattr(als, "FOLD_IN_SLOTS", 40)
    monkeypatch.setattr(als, "FOLD_IN_MAX_GROUP", 3)
    grouped = fold_in_factors(confidence, item_factors, regularization=0.5)

    np.testing.assert_allclose(grouped, whole, rtol=1e-5, atol=1e-6)


def test_als_trained_factors_near_fold_in() -> None:
    interactions = random_interactions(seed=7, n_users=60, n_items=30)
    model = ALSRecommender(n_factors=8, epochs=40, num_threads=1).fit(interactions)

    folded = model.fold_in(interactions)

    difference = np.linalg.norm(folded - model.user_factors_, axis=1)
    assert difference.mean() < 0.05 * np.linalg.norm(model.user_factors_, axis=1).mean()


def test_als_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="n_factors"):
        ALSRecommender(n_factors=0)
    with pytest.raises(ConfigError, match="alpha"):
        ALSRecommender(alpha=0.0)
    with pytest.raises(ConfigError, match="epochs"):
        ALSRecommender(epochs="0")


def test_itemknn_similar_items_symmetric() -> None:
    interactions = random_interactions(seed=8)
    model = ItemKNNRecommender(n_neighbors=3).fit(interactions)
    kept = model.similarity_.toarray()

    for item_idx in range(interactions.n_items - 2):
        row = model.item_similarities(item_idx)
        either = np.maximum(kept[item_idx], kept[:, item_idx])
        listed = either > 0
        np.testing.assert_allclose(row[listed], either[listed], rtol=1e-6)
        assert np.isneginf(row[~listed]).all()
