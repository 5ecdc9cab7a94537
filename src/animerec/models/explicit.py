"""Shared machinery of the explicit-rating models: baselines, ridge solves, the rating contract.

A rating model predicts the rating a person would give an anime. `predict_ratings` clips its
predictions to the training data's rating scale (`rating_scale_`, taken from the data and
never assumed). `score_users` and `score_histories` return the same predicted ratings
without clipping, so the order among anime predicted above the top of the scale survives the
ranking step. Anime without any training rating score -inf there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError, DataError
from animerec.models.base import Recommender, iter_chunks

logger = logging.getLogger(__name__)

# Upper bound on the float values of one padded block of a `RidgePlan` (rows in the block ×
# longest row × dimensions). 2**18 float32 values are 1 MiB, so a block and the products
# made from it stay in a 2 MiB L2 cache. On the anime-2016 sample (31 and 51 dimensions, one
# thread), 1 MiB blocks made a conjugate-gradient solve 5-25 % faster than 2 MiB blocks.
# 4 MiB blocks were slower again, and 512 KiB blocks gained nothing more.
RIDGE_BLOCK_VALUES = 2**18

# Rows of a padded bucket grow by this factor, so padding wastes at most a third.
BUCKET_GROWTH = 1.33


@dataclass(frozen=True)
class RatingTriples:
    """The explicit ratings of a users × items CSR matrix as parallel float64/int arrays, with
    the item-major ordering precomputed (`item_order` sorts the user-major triples by item)."""

    user_idx: np.ndarray
    item_idx: np.ndarray
    values: np.ndarray
    by_user: sp.csr_matrix
    item_order: np.ndarray
    item_indptr: np.ndarray

    @classmethod
    def from_matrix(cls, ratings: sp.csr_matrix) -> "RatingTriples":
        matrix = sp.csr_matrix(ratings, dtype=np.float64, copy=True)
        matrix.sum_duplicates()
        matrix.sort_indices()
        n_users, n_items = matrix.shape
        user_idx = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(matrix.indptr))
        item_idx = matrix.indices.astype(np.int64)
        item_order = np.lexsort((user_idx, item_idx))
        item_indptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(item_idx, minlength=n_items), out=item_indptr[1:])
        return cls(user_idx, item_idx, matrix.data, matrix, item_order, item_indptr)

    @property
    def shape(self) -> tuple[int, int]:
        return self.by_user.shape

    def user_counts(self) -> np.ndarray:
        return np.diff(self.by_user.indptr)

    def item_counts(self) -> np.ndarray:
        return np.diff(self.item_indptr)

    def user_major(self, values: np.ndarray) -> sp.csr_matrix:
        """Return a users × items CSR matrix of per-rating values given in user-major order."""
        return sp.csr_matrix(
            (values, self.by_user.indices, self.by_user.indptr), shape=self.shape, copy=False
        )

    def item_major(self, values: np.ndarray) -> sp.csr_matrix:
        """Return an items × users CSR matrix of per-rating values given in user-major order."""
        return sp.csr_matrix(
            (values[self.item_order], self.user_idx[self.item_order], self.item_indptr),
            shape=(self.shape[1], self.shape[0]),
            copy=False,
        )


def fit_baseline_biases(
    triples: RatingTriples,
    user_regularization: float,
    item_regularization: float,
    epochs: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Fit r_ui ≈ mu + b_u + b_i by alternating least squares and return (mu, b_u, b_i).

    mu is the mean training rating. Each epoch first sets every item bias to
    b_i = Σ_u (r_ui - mu - b_u) / (item_regularization + |U(i)|), then every user bias to
    b_u = Σ_i (r_ui - mu - b_i) / (user_regularization + |I(u)|); both start at zero. These
    are the regularized baselines of Koren (2010), "Factor in the neighbors", section 2.1.
    """
    n_users, n_items = triples.shape
    mu = float(triples.values.mean())
    user_bias = np.zeros(n_users)
    item_bias = np.zeros(n_items)
    user_denominator = user_regularization + triples.user_counts()
    item_denominator = item_regularization + triples.item_counts()
    for _ in range(int(epochs)):
        item_residual = triples.values - mu - user_bias[triples.user_idx]
        item_bias = _safe_divide(
            np.bincount(triples.item_idx, item_residual, minlength=n_items), item_denominator
        )
        user_residual = triples.values - mu - item_bias[triples.item_idx]
        user_bias = _safe_divide(
            np.bincount(triples.user_idx, user_residual, minlength=n_users), user_denominator
        )
    return mu, user_bias, item_bias


def residual_item_factors(
    triples: RatingTriples,
    residuals: np.ndarray,
    n_factors: int,
    generator: np.random.Generator,
    fill_scale: float,
    power_iterations: int = 1,
) -> np.ndarray:
    """Return item factors V·√S from a rank-n_factors SVD R ≈ U S Vᵀ of the users × items
    matrix R of `residuals` (one per rating of `triples`, in user-major order).

    The SVD is the randomized one of Halko, Martinsson and Tropp (2011), "Finding structure
    with randomness", algorithms 4.4 and 5.1. It samples the range of R with a Gaussian test
    matrix, sharpens it with `power_iterations` re-orthonormalized products by R Rᵀ, and
    takes the SVD of the small projection. Missing ratings count as zero residuals. Columns
    beyond the numerical rank of R (a tiny or constant data set) get normal(0, fill_scale)
    values instead, so ALS never starts from all-zero factors.
    """
    n_items = triples.shape[1]
    factors = generator.normal(0.0, fill_scale, size=(n_items, n_factors))
    by_user = triples.user_major(residuals)
    by_item = triples.item_major(residuals)
    basis = _orthonormal_basis(by_user @ generator.normal(size=(n_items, n_factors)))
    for _ in range(int(power_iterations)):
        basis = _orthonormal_basis(by_user @ (by_item @ basis))
    # With Q the basis, Rᵀ Q = V S Wᵀ (up to the part of R outside the range of Q), and the
    # eigenvectors W and eigenvalues S² of (Rᵀ Q)ᵀ (Rᵀ Q) give V·√S = Rᵀ Q W S^(-1/2).
    projected = by_item @ basis
    eigenvalues, eigenvectors = np.linalg.eigh(projected.T @ projected)
    order = np.flatnonzero(_numerical_rank_mask(eigenvalues))[::-1]
    scaled = projected @ (eigenvectors[:, order] / eigenvalues[order] ** 0.25)
    factors[:, : order.size] = scaled
    return factors


def _numerical_rank_mask(eigenvalues: np.ndarray) -> np.ndarray:
    """Mark the eigenvalues of a Gram matrix that are not rounding noise: above 1e-10 times
    the largest, i.e. singular values above 1e-5 times the largest."""
    largest = float(eigenvalues.max(initial=0.0))
    return eigenvalues > max(largest * 1e-10, np.finfo(np.float64).tiny)


def _orthonormal_basis(matrix: np.ndarray) -> np.ndarray:
    """Return orthonormal columns spanning the numerical range of an n × k `matrix`.

    The basis comes from the eigendecomposition of the k × k Gram matrix (one n·k² product),
    because NumPy's Householder QR took 5 to 20 times longer for 5,000-7,000 × 50 matrices
    on one thread. The Gram matrix squares the condition number, which only matters for
    directions near the rank cut, and those are dropped.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(matrix.T @ matrix)
    significant = _numerical_rank_mask(eigenvalues)
    return matrix @ (eigenvectors[:, significant] / np.sqrt(eigenvalues[significant]))


def fold_in_user_biases(
    ratings: sp.csr_matrix, mu: float, item_bias: np.ndarray, user_regularization: float
) -> np.ndarray:
    """Return b_u = Σ_i (r_ui - mu - b_i) / (user_regularization + |I(u)|) for each row."""
    matrix = sp.csr_matrix(ratings, dtype=np.float64)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    residual = matrix.data - mu - item_bias[matrix.indices]
    totals = np.bincount(rows, residual, minlength=matrix.shape[0])
    return _safe_divide(totals, user_regularization + np.diff(matrix.indptr))


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    result = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def _bucket_bounds(sorted_counts: np.ndarray) -> list[tuple[int, int, int]]:
    """Split entities sorted by row length into (start, stop, padded_length) buckets whose
    padded length is at most BUCKET_GROWTH times the shortest row in the bucket."""
    bounds = []
    start = int(np.searchsorted(sorted_counts, 1))
    total = sorted_counts.size
    while start < total:
        low = int(sorted_counts[start])
        limit = max(low, int(np.floor(low * BUCKET_GROWTH)))
        stop = int(np.searchsorted(sorted_counts, limit, side="right"))
        bounds.append((start, stop, int(sorted_counts[stop - 1])))
        start = stop
    return bounds


@dataclass(frozen=True)
class _RidgeBlock:
    """Rows of similar length, padded: `columns` indexes the features (the pad row is the
    last one) and `entries` the stored values (the pad entry is the last one)."""

    rows: np.ndarray
    columns: np.ndarray
    entries: np.ndarray
    length: int


class RidgePlan:
    """The padded blocks of one sparsity pattern, built once and reused by every solve.

    ALS solves the same pattern (the ratings of each user, or of each item) every epoch with
    new values and features, so the bucketing and index arithmetic are done here only once.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_columns: int, dimensions: int) -> None:
        self.n_rows = indptr.size - 1
        self.n_columns = int(n_columns)
        self.nnz = int(indices.size)
        counts = np.diff(indptr)
        order = np.argsort(counts, kind="stable")
        self.blocks: list[_RidgeBlock] = []
        for start, stop, length in _bucket_bounds(counts[order]):
            rows_per_block = max(1, RIDGE_BLOCK_VALUES // (length * max(dimensions, 1)))
            offsets = np.arange(length)
            for block in iter_chunks(stop - start, rows_per_block):
                rows = order[start + block.start : start + block.stop]
                positions = indptr[rows][:, None] + offsets[None, :]
                valid = offsets[None, :] < counts[rows][:, None]
                entries = np.where(valid, positions, self.nnz)
                columns = np.where(valid, indices[np.minimum(positions, max(self.nnz - 1, 0))], self.n_columns)
                self.blocks.append(_RidgeBlock(rows, columns.astype(np.int32), entries, int(length)))

    @classmethod
    def from_matrix(cls, matrix: sp.csr_matrix, dimensions: int) -> "RidgePlan":
        return cls(matrix.indptr, matrix.indices, matrix.shape[1], dimensions)

    def solve(
        self,
        values: np.ndarray,
        features: np.ndarray,
        ridge: np.ndarray,
        *,
        use_dual: bool = True,
        initial: np.ndarray | None = None,
        cg_steps: int = 0,
    ) -> np.ndarray:
        """Solve every row's ridge regression for the stored `values` (see `solve_ridge_rows`)."""
        dimensions = features.shape[1]
        if ridge.shape != (self.n_rows, dimensions):
            raise ConfigError(f"ridge must have shape {(self.n_rows, dimensions)}, got {ridge.shape}")
        if features.shape[0] != self.n_columns:
            raise ConfigError(f"features must have {self.n_columns} rows, got {features.shape[0]}")
        solution = np.zeros((self.n_rows, dimensions), dtype=np.float32)
        # float32 systems halve the memory traffic of the gathers and the time of the batched
        # BLAS/LAPACK calls; the ridge keeps them well conditioned.
        padded_features = np.zeros((self.n_columns + 1, dimensions), dtype=np.float32)
        padded_features[:-1] = features
        padded_values = np.zeros(self.nnz + 1, dtype=np.float32)
        padded_values[:-1] = values
        ridge = np.asarray(ridge, dtype=np.float32)
        diagonal = np.arange(dimensions)
        iterate = initial is not None and cg_steps > 0
        if iterate:
            assert initial is not None
            if initial.shape != (self.n_rows, dimensions):
                raise ConfigError(f"initial must have shape {(self.n_rows, dimensions)}, got {initial.shape}")
            initial = np.asarray(initial, dtype=np.float32)

        for block in self.blocks:
            rows = block.rows
            gathered = padded_features[block.columns]
            targets = padded_values[block.entries]
            if iterate:
                assert initial is not None
                start = initial[rows]
                row_ridge = ridge[rows]
                # The first residual t' = Fᵀ(t - F x0) - D x0 needs two products instead of
                # the three of Fᵀ t - (Fᵀ F + D) x0.
                misfit = targets - np.matmul(gathered, start[:, :, None])[:, :, 0]
                residual = np.matmul(misfit[:, None, :], gathered)[:, 0, :] - row_ridge * start

                def gram_times(vectors: np.ndarray, rows_features=gathered, row_ridge=row_ridge) -> np.ndarray:
                    # (Fᵀ F + D) v without forming Fᵀ F: two batched matrix-vector products.
                    projected = np.matmul(rows_features, vectors[:, :, None])
                    product = np.matmul(rows_features.transpose(0, 2, 1), projected)[:, :, 0]
                    return product + row_ridge * vectors

                solution[rows] = _conjugate_gradient(gram_times, residual, start, cg_steps)
            elif use_dual and block.length < dimensions:
                # Fewer entries than dimensions: the dual form solves a length × length system,
                # x = D⁻¹ Fᵀ (F D⁻¹ Fᵀ + I)⁻¹ t with D the ridge; padded entries have zero
                # features and zero targets, so they drop out.
                offsets = np.arange(block.length)
                scaled = gathered / ridge[rows][:, None, :]
                kernel = np.matmul(scaled, gathered.transpose(0, 2, 1))
                kernel[:, offsets, offsets] += 1.0
                dual = np.linalg.solve(kernel, targets[:, :, None])
                solution[rows] = np.matmul(scaled.transpose(0, 2, 1), dual)[:, :, 0]
            else:
                right_side = np.matmul(targets[:, None, :], gathered)[:, 0, :]
                gram = np.matmul(gathered.transpose(0, 2, 1), gathered)
                gram[:, diagonal, diagonal] += ridge[rows]
                solution[rows] = np.linalg.solve(gram, right_side[:, :, None])[:, :, 0]
        return solution.astype(np.float64)


def solve_ridge_rows(
    targets: sp.csr_matrix,
    features: np.ndarray,
    ridge: np.ndarray,
    *,
    use_dual: bool = True,
    initial: np.ndarray | None = None,
    cg_steps: int = 0,
) -> np.ndarray:
    """Solve one ridge regression per row of `targets` and return the solutions (rows × d).

    Row e's stored entries (columns j, values t_ej) ask for x_e with x_e · features[j] ≈ t_ej;
    the solution minimises Σ_j (t_ej - x_e · f_j)² + Σ_k ridge[e, k] x_ek². Rows without
    entries get zeros, and every ridge value must be positive. The systems of rows of
    similar length are built at once, padded to a common length, so the work is a few
    batched BLAS/LAPACK calls instead of a Python loop per row. Rows with fewer entries
    than dimensions use the dual form (`use_dual=False` forces the primal d × d form); both
    give the same solution. With `initial` (a previous solution, as in the later epochs of
    ALS) and `cg_steps` > 0, every system is solved approximately by that many
    conjugate-gradient steps started from `initial`; the steps never form Fᵀ F, so each
    costs about 4 · length · d instead of the length · d² + d³ of the exact solve.
    """
    matrix = sp.csr_matrix(targets)
    plan = RidgePlan.from_matrix(matrix, features.shape[1])
    return plan.solve(matrix.data, features, ridge, use_dual=use_dual, initial=initial, cg_steps=cg_steps)


def _conjugate_gradient(
    multiply: Callable[[np.ndarray], np.ndarray],
    residual: np.ndarray,
    start: np.ndarray,
    steps: int,
) -> np.ndarray:
    """Run `steps` conjugate-gradient steps on a batch of symmetric positive definite systems
    A_m x_m = b_m from `start`, given the first residual b - A start, and return the
    iterates (m × d). `multiply(v)` returns the batch of products A_m v_m for v of shape (m, d).
    """
    solution = start.copy()
    residual = residual.copy()
    direction = residual.copy()
    residual_norm = np.einsum("ij,ij->i", residual, residual)
    tiny = np.finfo(np.float32).tiny
    for step_number in range(steps):
        product = multiply(direction)
        curvature = np.einsum("ij,ij->i", direction, product)
        step = residual_norm / np.maximum(curvature, tiny)
        solution += step[:, None] * direction
        if step_number == steps - 1:
            break
        residual -= step[:, None] * product
        new_norm = np.einsum("ij,ij->i", residual, residual)
        direction = residual + (new_norm / np.maximum(residual_norm, tiny))[:, None] * direction
        residual_norm = new_norm
    return solution


class RatingRecommender(Recommender):
    """Base of the explicit-rating models: fits on `Interactions.ratings` only.

    Subclasses implement `_fit_ratings`, `_predict_pairs` (raw predictions for training
    users), `_user_block` (the state of some training users), `_fold_in` (the same state for
    new people from their ratings, without retraining) and `_predict_block` (raw predictions
    of a state over every item).
    """

    feedback = ("explicit",)

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        if interactions.ratings.nnz == 0:
            raise DataError(
                f"model {self.name!r} needs explicit ratings, but the training data has none "
                "(only watched-but-unrated rows); use an implicit model such as 'als'"
            )
        low, high = self.rating_scale_
        if not low < high:
            raise DataError(f"rating scale must be (low, high) with low < high, got {self.rating_scale_}")
        triples = RatingTriples.from_matrix(interactions.ratings)
        self.trained_items_ = np.asarray(triples.item_counts() > 0)
        self._fit_ratings(triples, interactions)

    def _fit_ratings(self, triples: RatingTriples, interactions: Interactions) -> None:
        raise NotImplementedError

    # --- rating prediction --------------------------------------------------------------

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predict the ratings of (user_idx[k], item_idx[k]) pairs of training users, clipped
        to `rating_scale_` (float32). Items without training ratings get the user's baseline."""
        self.check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        items = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        if users.shape != items.shape:
            raise ConfigError(
                f"user_idx and item_idx must have the same length, got {users.size} and {items.size}"
            )
        if users.size and (users.min() < 0 or users.max() >= len(self.users_)):
            raise ConfigError(f"user_idx must be in 0..{len(self.users_) - 1}")
        if items.size and (items.min() < 0 or items.max() >= len(self.items_)):
            raise ConfigError(f"item_idx must be in 0..{len(self.items_) - 1}")
        predicted = self._predict_pairs(users, items)
        return self.clip(predicted).astype(np.float32)

    def clip(self, predicted: np.ndarray) -> np.ndarray:
        """Clip predictions to the rating scale of the training data."""
        low, high = self.rating_scale_
        return np.clip(predicted, low, high)

    def _predict_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # --- scores for ranking -------------------------------------------------------------

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._scores(self._user_block(user_idx))

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        return self._scores(self._fold_in(histories))

    def _scores(self, block: object) -> np.ndarray:
        scores = self._predict_block(block).astype(np.float32)
        scores[:, ~self.trained_items_] = -np.inf
        return scores

    def _user_block(self, user_idx: np.ndarray) -> object:
        raise NotImplementedError

    def _fold_in(self, histories: Interactions) -> object:
        raise NotImplementedError

    def _predict_block(self, block: object) -> np.ndarray:
        raise NotImplementedError


def check_positive(name: str, value: float, allow_zero: bool = True) -> None:
    """Raise ConfigError unless `value` is a finite number >= 0 (> 0 when allow_zero is False)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """Raise ConfigError unless `value` is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}, got {value!r}")
