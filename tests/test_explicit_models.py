"""Explicit-rating models: hand-computed answers, reference implementations, clipping,
fold-in, and accuracy on the real MovieLens 100K fold u1."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from animerec.data import IdMap, Interactions, histories_to_interactions
from animerec.errors import ConfigError, DataError
from animerec.models.explicit import (
    RatingTriples,
    fit_baseline_biases,
    residual_item_factors,
    solve_ridge_rows,
)
from animerec.models.knnbaseline import pearson_baseline_neighbors
from animerec.models.registry import create_model

RATING_MODELS = ["baseline", "biasedmf", "svdpp", "itemknn-baseline"]


def tiny_interactions(rating_scale: tuple[float, float] = (1.0, 5.0)) -> Interactions:
    """Users 10 and 20, items 1 and 2: 10 rated 1 with 5 and 2 with 3, 20 rated 1 with 4."""
    return Interactions.from_arrays(
        np.array([10, 10, 20]),
        np.array([1, 2, 1]),
        np.array([5.0, 3.0, 4.0]),
        items=IdMap([1, 2, 3], kind="anime_id"),
        rating_scale=rating_scale,
    )


def random_interactions(seed: int = 0, n_users: int = 60, n_items: int = 40, density: float = 0.3,
                        rating_scale: tuple[float, float] = (1.0, 5.0)) -> Interactions:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    rows, cols = np.nonzero(mask)
    taste = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    values = np.clip(np.round(3 + taste[rows, cols]), *rating_scale)
    return Interactions.from_arrays(
        rows + 100, cols + 1, values.astype(float),
        items=IdMap(np.arange(1, n_items + 1), kind="anime_id"),
        rating_scale=rating_scale,
    )


# --- baseline: biases computed by hand ---------------------------------------------------


def test_baseline_biases_known_answer():
    # mu = 4. Items first: b_1 = ((5-4) + (4-4)) / (1 + 2) = 1/3, b_2 = (3-4) / (1 + 1) = -1/2.
    # Then users: b_10 = ((5-4-1/3) + (3-4+1/2)) / (1 + 2) = 1/18, b_20 = (4-4-1/3) / 2 = -1/6.
    triples = RatingTriples.from_matrix(tiny_interactions().ratings)
    mu, user_bias, item_bias = fit_baseline_biases(triples, 1.0, 1.0, epochs=1)

    assert mu == pytest.approx(4.0)
    assert item_bias[:2] == pytest.approx([1 / 3, -1 / 2])
    assert item_bias[2] == 0.0
    assert user_bias == pytest.approx([1 / 18, -1 / 6])


def test_baseline_predictions_known_answer():
    model = create_model("baseline", user_regularization=1.0, item_regularization=1.0, epochs=1)
    model.fit(tiny_interactions())

    predicted = model.predict_ratings(np.array([0, 1]), np.array([1, 1]))

    assert predicted == pytest.approx([4 + 1 / 18 - 1 / 2, 4 - 1 / 6 - 1 / 2], abs=1e-6)


def test_baseline_fold_in_equals_training_user():
    data = random_interactions()
    model = create_model("baseline").fit(data)
    item_idx, ratings = data.history(3)
    history = [(int(data.items.ids[i]), float(r)) for i, r in zip(item_idx, ratings)]

    folded = model.score_histories(histories_to_interactions([history], data.items, data.rating_scale))
    trained = model.score_users([3])

    np.testing.assert_allclose(folded, trained, rtol=1e-6)


# --- the rating contract of every explicit model ----------------------------------------


@pytest.mark.parametrize("name", RATING_MODELS)
def test_predictions_clipped_to_data_scale(name):
    # An unusual scale (0.5 to 4) shows that the scale comes from the data.
    data = random_interactions(seed=1, rating_scale=(0.5, 4.0))
    model = create_model(name).fit(data)
    users = np.repeat(np.arange(data.n_users), data.n_items)
    items = np.tile(np.arange(data.n_items), data.n_users)

    predicted = model.predict_ratings(users, items)

    assert model.rating_scale_ == (0.5, 4.0)
    assert predicted.min() >= 0.5
    assert predicted.max() <= 4.0


@pytest.mark.parametrize("name", RATING_MODELS)
def test_predictions_equal_clipped_scores(name):
    data = random_interactions(seed=2)
    model = create_model(name).fit(data)
    users = np.arange(5)

    scores = model.score_users(users)
    predicted = model.predict_ratings(np.repeat(users, data.n_items), np.tile(np.arange(data.n_items), 5))

    trained = np.isfinite(scores[0])
    expected = np.clip(scores, 1.0, 5.0).ravel()
    np.testing.assert_allclose(
        predicted.reshape(5, -1)[:, trained], expected.reshape(5, -1)[:, trained], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("name", RATING_MODELS)
def test_fold_in_close_to_training_user(name):
    data = random_interactions(seed=3)
    model = create_model(name).fit(data)
    user = 7
    item_idx, ratings = data.history(user)
    history = [(int(data.items.ids[i]), float(r)) for i, r in zip(item_idx, ratings)]

    folded = model.score_histories(histories_to_interactions([history], data.items, data.rating_scale))[0]
    trained = model.score_users([user])[0]

    finite = np.isfinite(trained)
    assert np.array_equal(finite, np.isfinite(folded))
    assert np.corrcoef(folded[finite], trained[finite])[0, 1] > 0.95


@pytest.mark.parametrize("name", RATING_MODELS)
def test_fold_in_uses_the_ratings(name):
    data = random_interactions(seed=4)
    model = create_model(name).fit(data)
    liked = [(int(anime_id), 5.0) for anime_id in data.items.ids[:10]]
    disliked = [(int(anime_id), 1.0) for anime_id in data.items.ids[:10]]

    scores = model.score_histories(histories_to_interactions([liked, disliked], data.items, data.rating_scale))

    finite = np.isfinite(scores[0])
    assert scores[0][finite].mean() > scores[1][finite].mean()


@pytest.mark.parametrize("name", RATING_MODELS)
def test_no_ratings_rejected(name):
    watched_only = Interactions.from_arrays(
        np.array([1, 2]), np.array([1, 2]), np.array([np.nan, np.nan]), items=IdMap([1, 2])
    )

    with pytest.raises(DataError, match="explicit ratings"):
        create_model(name).fit(watched_only)


@pytest.mark.parametrize("name", RATING_MODELS)
def test_predict_ratings_checks_pairs(name):
    model = create_model(name).fit(tiny_interactions())

    with pytest.raises(ConfigError, match="same length"):
        model.predict_ratings(np.array([0, 1]), np.array([0]))
    with pytest.raises(ConfigError, match="user_idx"):
        model.predict_ratings(np.array([5]), np.array([0]))


@pytest.mark.parametrize(
    "name, params",
    [
        ("biasedmf", {"n_factors": 0}),
        ("biasedmf", {"regularization": -1.0}),
        ("biasedmf", {"init": "zeros"}),
        ("svdpp", {"implicit_regularization": 0.0}),
        ("itemknn-baseline", {"n_neighbors": 0}),
        ("baseline", {"epochs": 0}),
    ],
)
def test_invalid_config_rejected(name, params):
    with pytest.raises(ConfigError, match=next(iter(params))):
        create_model(name, **params)


# --- the batched ridge solver against a plain per-row solve ------------------------------


def reference_ridge(targets: sp.csr_matrix, features: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    solution = np.zeros((targets.shape[0], features.shape[1]))
    for row in range(targets.shape[0]):
        start, stop = targets.indptr[row], targets.indptr[row + 1]
        if start == stop:
            continue
        chosen = features[targets.indices[start:stop]]
        system = chosen.T @ chosen + np.diag(ridge[row])
        solution[row] = np.linalg.solve(system, chosen.T @ targets.data[start:stop])
    return solution


@pytest.mark.parametrize("use_dual", [True, False])
def test_ridge_solver_matches_reference(use_dual):
    rng = np.random.default_rng(5)
    # Row lengths from 0 to 30 around 8 dimensions exercise both forms and empty rows.
    lengths = rng.integers(0, 31, size=50)
    rows = np.repeat(np.arange(50), lengths)
    cols = np.concatenate([rng.choice(40, size=n, replace=False) for n in lengths])
    targets = sp.csr_matrix((rng.normal(size=rows.size), (rows, cols)), shape=(50, 40))
    features = rng.normal(size=(40, 8))
    ridge = rng.uniform(0.1, 2.0, size=(50, 8))

    solution = solve_ridge_rows(targets, features, ridge, use_dual=use_dual)

    np.testing.assert_allclose(solution, reference_ridge(targets, features, ridge), rtol=1e-3, atol=1e-4)


def test_ridge_solver_conjugate_gradient_converges():
    rng = np.random.default_rng(6)
    targets = sp.random(30, 50, density=0.6, random_state=7, format="csr")
    features = rng.normal(size=(50, 6))
    ridge = np.full((30, 6), 1.0)
    exact = reference_ridge(targets, features, ridge)

    approximate = solve_ridge_rows(targets, features, ridge, initial=np.zeros((30, 6)), cg_steps=6)

    # Conjugate gradients solve a d-dimensional system exactly in d steps (up to rounding).
    np.testing.assert_allclose(approximate, exact, rtol=1e-3, atol=1e-3)


# --- the SVD start of biasedmf against NumPy's dense SVD ---------------------------------


def residual_triples(matrix: np.ndarray) -> tuple[RatingTriples, np.ndarray]:
    """Triples of every entry of a small dense matrix (shifted by 5 so none is stored as zero)
    and the residuals, the matrix's own values in user-major order."""
    triples = RatingTriples.from_matrix(sp.csr_matrix(matrix + 5.0))
    return triples, triples.values - 5.0


def test_residual_item_factors_match_svd():
    rng = np.random.default_rng(9)
    # An exactly rank-3 matrix: the randomized SVD recovers it, so V·√S·(V·√S)ᵀ = V S Vᵀ,
    # which does not depend on the signs of the singular vectors.
    matrix = rng.normal(size=(25, 3)) @ rng.normal(size=(3, 15))
    triples, residuals = residual_triples(matrix)

    factors = residual_item_factors(triples, residuals, 3, np.random.default_rng(1), fill_scale=0.1)

    _, singular, right = np.linalg.svd(matrix, full_matrices=False)
    expected = right[:3].T @ np.diag(singular[:3]) @ right[:3]
    np.testing.assert_allclose(factors @ factors.T, expected, rtol=1e-6, atol=1e-8)


def test_residual_item_factors_beyond_rank():
    rng = np.random.default_rng(10)
    matrix = rng.normal(size=(20, 2)) @ rng.normal(size=(2, 12))
    triples, residuals = residual_triples(matrix)

    factors = residual_item_factors(triples, residuals, 5, np.random.default_rng(2), fill_scale=0.1)

    _, singular, right = np.linalg.svd(matrix, full_matrices=False)
    np.testing.assert_allclose(
        factors[:, :2] @ factors[:, :2].T, right[:2].T @ np.diag(singular[:2]) @ right[:2], atol=1e-8
    )
    # The rank is 2, so the other three columns are the small random fill, not zeros.
    filled = factors[:, 2:]
    assert np.all(filled != 0.0)
    assert 0.03 < filled.std() < 0.3


def test_residual_item_factors_zero_residuals():
    triples, residuals = residual_triples(np.zeros((6, 4)))

    factors = residual_item_factors(triples, residuals, 3, np.random.default_rng(3), fill_scale=0.1)

    assert factors.shape == (4, 3)
    assert np.all(factors != 0.0)
    assert np.abs(factors).max() < 1.0


@pytest.mark.parametrize("init", ["svd", "random"])
def test_biasedmf_conjugate_gradient_equals_exact(init):
    # With as many conjugate-gradient steps as dimensions (4 factors + the bias), every
    # solve is exact up to rounding, so the fast path reproduces plain ALS (cg_steps=0).
    data = random_interactions(seed=11)
    settings = {"n_factors": 4, "epochs": 3, "init": init}
    exact = create_model("biasedmf", cg_steps=0, **settings).fit(data)
    iterative = create_model("biasedmf", cg_steps=5, **settings).fit(data)
    users = np.repeat(np.arange(data.n_users), data.n_items)
    items = np.tile(np.arange(data.n_items), data.n_users)

    np.testing.assert_allclose(
        iterative._predict_pairs(users, items), exact._predict_pairs(users, items), atol=1e-4
    )


def test_biasedmf_svd_start_beats_random():
    data = random_interactions(seed=12, n_users=80, n_items=50, density=0.5)
    rows, cols = data.ratings.nonzero()
    observed = np.asarray(data.ratings[rows, cols]).ravel()

    def train_rmse(init: str) -> float:
        model = create_model("biasedmf", n_factors=2, epochs=1, regularization=0.01, init=init).fit(data)
        return float(np.sqrt(np.mean((model._predict_pairs(rows, cols) - observed) ** 2)))

    assert train_rmse("svd") < train_rmse("random")


# --- item kNN with baselines against a direct implementation ---------------------------


def test_pearson_baseline_similarity_known_answer():
    # Items 0 and 1 share users 0, 1, 2 with residuals (1, -1, 2) and (2, -2, 1):
    # Σxy = 2 + 2 + 2 = 6, Σx² = 6, Σy² = 9, so rho = 6 / sqrt(54); shrunk by (3-1)/(3-1+2).
    residuals = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0], [2.0, 1.0, 3.0]]))

    indptr, neighbors, similarity = pearson_baseline_neighbors(residuals, shrinkage=2.0, keep=5)

    expected = 6 / np.sqrt(54) * 2 / 4
    assert neighbors[indptr[0]:indptr[1]].tolist() == [1]
    assert similarity[indptr[0]] == pytest.approx(expected, rel=1e-5)
    # Items 0 and 2 share one user only, so their shrunk similarity is 0 and is not kept.
    assert 2 not in neighbors[indptr[0]:indptr[1]].tolist()


def direct_knn_prediction(model, data: Interactions, user: int, item: int) -> float:
    """KNN-baseline prediction written out for one pair, from dense arrays."""
    ratings = data.ratings.toarray()
    rated = np.flatnonzero(ratings[user])
    similarity = np.zeros(data.n_items)
    start, stop = model.neighbor_indptr_[item], model.neighbor_indptr_[item + 1]
    similarity[model.neighbor_idx_[start:stop]] = model.neighbor_similarity_[start:stop]
    candidates = [j for j in rated if similarity[j] > 0]
    candidates.sort(key=lambda j: (-similarity[j], j))
    chosen = candidates[: model.config.n_neighbors]
    baseline = model.global_mean_ + model.user_bias_[user] + model.item_bias_[item]
    if not chosen:
        return baseline
    weights = similarity[chosen]
    residual = ratings[user, chosen] - (model.global_mean_ + model.user_bias_[user] + model.item_bias_[chosen])
    return baseline + float(weights @ residual / weights.sum())


def test_knn_baseline_matches_direct_formula():
    data = random_interactions(seed=8, n_users=40, n_items=30, density=0.4)
    model = create_model("itemknn-baseline", n_neighbors=5, shrinkage=10.0).fit(data)
    users = np.repeat(np.arange(10), data.n_items)
    items = np.tile(np.arange(data.n_items), 10)

    predicted = model._predict_pairs(users, items)

    expected = [direct_knn_prediction(model, data, int(u), int(i)) for u, i in zip(users, items)]
    np.testing.assert_allclose(predicted, expected, rtol=1e-6, atol=1e-9)


# --- accuracy on real data ----------------------------------------------------------------


@pytest.fixture(scope="module")
def movielens_u1(shared_data):
    from animerec.data.loaders.movielens import load_movielens_100k
    from animerec.evaluation.splits import predefined_rating_folds

    folder = shared_data / "movielens-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found in {folder}")
    dataset, _ = load_movielens_100k(folder)
    return predefined_rating_folds(dataset)[0]


def fold_rmse(name: str, fold) -> float:
    model = create_model(name).fit(fold.train)
    predicted = model.predict_ratings(fold.user_idx, fold.item_idx)
    return float(np.sqrt(np.mean((predicted - fold.ratings) ** 2)))


def test_movielens_u1_accuracy(movielens_u1):
    # Published 5-fold means for this data (scikit-surprise README): BaselineOnly 0.944,
    # SVD 0.934, SVD++ 0.919, KNNBaseline 0.931. Fold u1 alone runs a little higher.
    baseline = fold_rmse("baseline", movielens_u1)
    biasedmf = fold_rmse("biasedmf", movielens_u1)
    svdpp = fold_rmse("svdpp", movielens_u1)

    assert baseline < 0.96
    assert biasedmf < baseline - 0.02
    assert svdpp < biasedmf
