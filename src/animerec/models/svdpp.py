"""SVD++: biased matrix factorization whose user vectors also draw on what a person watched.

The prediction is r_ui = mu + b_u + b_i + q_i · (p_u + |N(u)|^-1/2 Σ_{j ∈ N(u)} y_j), where
N(u) is every anime the person watched, rated or not (Koren 2008, "Factorization meets the
neighborhood"). Because the sum over N(u) acts as the centre towards which p_u is
regularized, people with few ratings but a longer watch list get better vectors, and a new
person's unrated titles count too.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from animerec.data.interactions import Interactions
from animerec.models.base import ModelConfig
from animerec.models.biasedmf import BiasedMFRecommender
from animerec.models.explicit import (
    RatingTriples,
    RidgePlan,
    check_count,
    check_positive,
    fit_baseline_biases,
    solve_ridge_rows,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SVDppConfig(ModelConfig):
    n_factors: int = 50
    # L2 strength on p_u and q_i, multiplied by each user's or item's rating count.
    regularization: float = 0.12
    # L2 strength on the biases, a constant.
    bias_regularization: float = 1.0
    # L2 strength on the implicit factors y_j, multiplied by how many people watched j.
    implicit_regularization: float = 1.0
    epochs: int = 10
    init_scale: float = 0.1
    random_state: int = 42
    # Conjugate-gradient steps per solve after the first epoch (see biasedmf).
    cg_steps: int = 2
    # Conjugate-gradient steps on all implicit factors per epoch.
    implicit_cg_steps: int = 3

    def __post_init__(self) -> None:
        check_count("n_factors", self.n_factors)
        check_positive("regularization", self.regularization, allow_zero=False)
        check_positive("bias_regularization", self.bias_regularization, allow_zero=False)
        check_positive("implicit_regularization", self.implicit_regularization, allow_zero=False)
        check_count("epochs", self.epochs)
        check_positive("init_scale", self.init_scale)
        check_count("cg_steps", self.cg_steps, minimum=0)
        check_count("implicit_cg_steps", self.implicit_cg_steps)


def normalized_watched(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Return N with N[u, j] = |N(u)|^-1/2 for every anime j that u watched (positive weight)."""
    watched = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    watched.data = (watched.data > 0).astype(np.float64)
    watched.eliminate_zeros()
    counts = np.diff(watched.indptr)
    scale = np.zeros(counts.size)
    np.divide(1.0, np.sqrt(counts), out=scale, where=counts > 0)
    watched.data *= np.repeat(scale, counts)
    return watched


class SVDppRecommender(BiasedMFRecommender):
    """SVD++ trained by alternating minimisation.

    Each epoch solves every user's (p_u, b_u) and every item's (q_i, b_i) as biased MF does,
    with the implicit part of the user vector held fixed. Then it improves all implicit
    factors Y together by conjugate-gradient steps on their least-squares problem.
    Training users keep z_u = p_u + implicit part as `user_factors_`.
    """

    name = "svdpp"
    config_class = SVDppConfig
    description = "SVD++: biased MF plus implicit factors of everything a person watched."

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return parameters for one Optuna trial."""
        return {
            "n_factors": trial.suggest_int("n_factors", 5, 100, log=True),
            "regularization": trial.suggest_float("regularization", 0.005, 0.5, log=True),
            "bias_regularization": trial.suggest_float("bias_regularization", 0.1, 50.0, log=True),
            "implicit_regularization": trial.suggest_float(
                "implicit_regularization", 0.001, 1.0, log=True
            ),
            "epochs": trial.suggest_int("epochs", 4, 20),
        }

    def _fit_ratings(self, triples: RatingTriples, interactions: Interactions) -> None:
        config = self.config
        n_users, n_items = triples.shape
        k = int(config.n_factors)
        generator = np.random.default_rng(config.random_state)

        watched = normalized_watched(interactions.user_items)
        watched_by_item = watched.T.tocsr()
        watchers = np.diff(sp.csc_matrix(watched).indptr).astype(np.float64)
        implicit_ridge = config.implicit_regularization * np.maximum(watchers, 1)[:, None]

        mu, user_bias, item_bias = fit_baseline_biases(
            triples, config.bias_regularization, config.bias_regularization, 3
        )
        item_factors = generator.normal(0.0, config.init_scale, size=(n_items, k))
        item_factors[triples.item_counts() == 0] = 0.0
        implicit_factors = np.zeros((n_items, k))
        user_ridge = self._ridge(triples.user_counts())
        item_ridge = self._ridge(triples.item_counts())
        ones_items = np.ones((n_items, 1))
        ones_users = np.ones((n_users, 1))
        user_plan = RidgePlan.from_matrix(triples.by_user, k + 1)
        item_plan = RidgePlan(triples.item_indptr, triples.user_idx[triples.item_order], n_users, k + 1)
        user_solution: np.ndarray | None = None
        item_solution: np.ndarray | None = None
        cg_steps = int(config.cg_steps)

        for epoch in range(int(config.epochs)):
            implicit_part = np.asarray(watched @ implicit_factors)
            implicit_dots = _row_dots(implicit_part, item_factors, triples)
            targets = triples.values - mu - item_bias[triples.item_idx] - implicit_dots
            user_solution = user_plan.solve(
                targets,
                np.hstack([item_factors, ones_items]),
                user_ridge,
                initial=user_solution,
                cg_steps=cg_steps,
            )
            own_factors, user_bias = user_solution[:, :k], user_solution[:, k]
            user_vectors = own_factors + implicit_part

            targets = triples.values - mu - user_bias[triples.user_idx]
            item_solution = item_plan.solve(
                targets[triples.item_order],
                np.hstack([user_vectors, ones_users]),
                item_ridge,
                initial=item_solution,
                cg_steps=cg_steps,
            )
            item_factors, item_bias = item_solution[:, :k], item_solution[:, k]

            implicit_factors = self._update_implicit(
                triples, watched, watched_by_item, implicit_ridge, implicit_factors,
                item_factors, mu, user_bias, item_bias, own_factors,
            )
            logger.debug("svdpp epoch %d of %d done", epoch + 1, config.epochs)

        implicit_part = np.asarray(watched @ implicit_factors)
        self.global_mean_ = mu
        self.user_bias_ = user_bias
        self.item_bias_ = item_bias
        self.user_factors_ = (own_factors + implicit_part).astype(np.float32)
        self.item_factors_ = item_factors.astype(np.float32)
        self.implicit_factors_ = implicit_factors.astype(np.float32)

    def _update_implicit(
        self,
        triples: RatingTriples,
        watched: sp.csr_matrix,
        watched_by_item: sp.csr_matrix,
        implicit_ridge: np.ndarray,
        implicit_factors: np.ndarray,
        item_factors: np.ndarray,
        mu: float,
        user_bias: np.ndarray,
        item_bias: np.ndarray,
        own_factors: np.ndarray,
    ) -> np.ndarray:
        """Improve Y by CG steps on min_Y Σ_ui (e_ui - q_i · (N Y)_u)² + Σ_j ridge_j |y_j|²,
        where e_ui is the rating minus everything but the implicit part."""
        residual = (
            triples.values
            - mu
            - user_bias[triples.user_idx]
            - item_bias[triples.item_idx]
            - _row_dots(own_factors, item_factors, triples)
        )

        def normal_operator(factors: np.ndarray) -> np.ndarray:
            user_vectors = np.asarray(watched @ factors)
            dots = _row_dots(user_vectors, item_factors, triples)
            back = np.asarray(triples.user_major(dots) @ item_factors)
            return np.asarray(watched_by_item @ back) + implicit_ridge * factors

        right_side = np.asarray(
            watched_by_item @ np.asarray(triples.user_major(residual) @ item_factors)
        )
        solution = implicit_factors.copy()
        remainder = right_side - normal_operator(solution)
        direction = remainder.copy()
        norm = float(np.sum(remainder * remainder))
        for _ in range(int(self.config.implicit_cg_steps)):
            if norm <= 1e-12:
                break
            product = normal_operator(direction)
            step = norm / float(np.sum(direction * product))
            solution += step * direction
            remainder -= step * product
            new_norm = float(np.sum(remainder * remainder))
            direction = remainder + (new_norm / norm) * direction
            norm = new_norm
        return solution

    def _fold_in(self, histories: Interactions) -> tuple[np.ndarray, np.ndarray]:
        watched = normalized_watched(histories.user_items)
        implicit_part = np.asarray(watched @ self.implicit_factors_.astype(np.float64))
        ratings = histories.ratings.astype(np.float64).tocsr()
        rows = np.repeat(np.arange(ratings.shape[0]), np.diff(ratings.indptr))
        item_factors = self.item_factors_.astype(np.float64)
        implicit_dots = np.einsum("ij,ij->i", implicit_part[rows], item_factors[ratings.indices])
        targets = ratings.copy()
        targets.data = (
            ratings.data - self.global_mean_ - self.item_bias_[ratings.indices] - implicit_dots
        )
        n_items = len(self.items_)
        features = np.hstack([item_factors, np.ones((n_items, 1))])
        solution = solve_ridge_rows(targets, features, self._ridge(np.diff(ratings.indptr)))
        k = int(self.config.n_factors)
        user_vectors = solution[:, :k] + implicit_part
        return solution[:, k], user_vectors.astype(np.float32)

    def _get_arrays(self) -> dict[str, np.ndarray]:
        arrays = super()._get_arrays()
        arrays["implicit_factors"] = self.implicit_factors_
        return arrays

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_arrays(arrays)
        self.implicit_factors_ = arrays["implicit_factors"]


# Ratings per block in `_row_dots`: 4096 rows × 100 factors × 8 bytes is about 3 MiB per
# gathered block, small enough to stay in cache (one big gather ran several times slower).
DOT_BLOCK_ROWS = 4096


def _row_dots(user_vectors: np.ndarray, item_vectors: np.ndarray, triples: RatingTriples) -> np.ndarray:
    """Return user_vectors[u] · item_vectors[i] for every rating (u, i), user-major order."""
    dots = np.empty(triples.values.size)
    for start in range(0, dots.size, DOT_BLOCK_ROWS):
        stop = min(start + DOT_BLOCK_ROWS, dots.size)
        dots[start:stop] = np.einsum(
            "ij,ij->i",
            user_vectors[triples.user_idx[start:stop]],
            item_vectors[triples.item_idx[start:stop]],
        )
    return dots
