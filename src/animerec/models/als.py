"""Implicit alternating least squares (Hu, Koren and Volinsky 2008), trained by `implicit`.

Every watched pair is a positive preference whose confidence grows with its watch weight and,
when the person rated it, with the rating. Unwatched pairs are preferences of 0 with
confidence 1. In the convention of `implicit` (0.7), the confidence of an observed pair is
`alpha × confidence weight`, where

    confidence weight = watch weight × max(MIN_RATING_FACTOR,
                                           1 + rating_weight × (rating − midpoint) / span)

for a rated pair with a positive watch weight, and the watch weight alone otherwise.
`midpoint` and `span` come from the data's rating scale (5.5 and 9 for ratings 1–10), so with
`rating_weight=1` a 10 counts 1.5 times a plain "watched" and a 1 counts half. A negative
watch weight (negative evidence such as "dropped") stays negative: `implicit` reads it as a
preference of 0 with confidence `alpha × |weight|`. The `-1` of "watched, not rated" never
enters as a number, because unrated pairs are absent from the ratings view.

Fitting uses `implicit.cpu.als.AlternatingLeastSquares` (conjugate-gradient solver). Fold-in
for people outside the training data solves the same least-squares problem for their factor
exactly, with NumPy, for a whole batch at once.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError
from animerec.models.base import ModelConfig, Recommender, untrained_items_mask

logger = logging.getLogger(__name__)

# Lowest rating factor, so a very low rating still counts as weak positive evidence
# (`implicit` would read a negative value as negative evidence).
MIN_RATING_FACTOR = 0.05

# Fold-in groups people by history length. One group gathers at most this many
# (person, item) slots of item factors at once, padding included.
FOLD_IN_SLOTS = 32768
FOLD_IN_MAX_GROUP = 1024


@dataclasses.dataclass(frozen=True)
class ALSConfig(ModelConfig):
    # NOTE: alpha and regularization were picked by a held-out check on the 4,879-user Kaggle
    # 2016 sample (alpha 1–40, regularization 0.05–50 tried); other data may prefer others.
    n_factors: int = 64
    regularization: float = 5.0
    # Confidence scale of observed pairs (see the module docstring).
    alpha: float = 2.0
    epochs: int = 15
    # How strongly a rating raises or lowers a pair's confidence. 0 ignores ratings.
    rating_weight: float = 1.0
    random_state: int = 42
    # Threads `implicit` uses while fitting. 0 means one per CPU core.
    num_threads: int = 0
    # Item–item similarity (similar anime, reasons) is the factors' cosine times
    # n / (n + similarity_shrinkage), n being the item's training users: an anime watched by
    # one or two people has noisy factors that can sit close to anything.
    similarity_shrinkage: float = 20.0

    def __post_init__(self) -> None:
        if int(self.n_factors) < 1:
            raise ConfigError(f"n_factors must be at least 1, got {self.n_factors}")
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if not self.regularization >= 0:
            raise ConfigError(f"regularization must be 0 or more, got {self.regularization}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be positive, got {self.alpha}")
        if not self.rating_weight >= 0:
            raise ConfigError(f"rating_weight must be 0 or more, got {self.rating_weight}")
        if int(self.num_threads) < 0:
            raise ConfigError(f"num_threads must be 0 (all cores) or more, got {self.num_threads}")
        if not self.similarity_shrinkage >= 0:
            raise ConfigError(
                f"similarity_shrinkage must be 0 or more, got {self.similarity_shrinkage}"
            )


def confidence_weights(
    interactions: Interactions, rating_weight: float, rating_scale: tuple[float, float]
) -> sp.csr_matrix:
    """Return the users × items CSR matrix of confidence weights (before `alpha`).

    The formula is in the module docstring. `rating_scale` is the training data's scale, so
    fold-in histories are weighted exactly as the training data was.
    """
    weights = sp.csr_matrix(interactions.user_items, dtype=np.float32, copy=True)
    weights.sum_duplicates()
    weights.sort_indices()
    ratings = interactions.ratings
    if not (sp.isspmatrix_csr(ratings) and ratings.has_canonical_format):
        # Only read below, so a canonical matrix is used as it is.
        ratings = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
        ratings.sum_duplicates()
        ratings.sort_indices()
    if rating_weight == 0 or ratings.nnz == 0:
        return weights

    # Both matrices are canonical CSR, so (row, column) keys are ascending in both and each
    # rated pair can be found in the watched view by binary search.
    n_items = np.int64(weights.shape[1])
    watched_rows = np.repeat(np.arange(weights.shape[0], dtype=np.int64), np.diff(weights.indptr))
    watched_keys = watched_rows * n_items + weights.indices
    rated_rows = np.repeat(np.arange(ratings.shape[0], dtype=np.int64), np.diff(ratings.indptr))
    rated_keys = rated_rows * n_items + ratings.indices
    positions = np.searchsorted(watched_keys, rated_keys)
    found = positions < watched_keys.size
    found[found] = watched_keys[positions[found]] == rated_keys[found]
    if not found.all():
        logger.warning(
            "%d rated pairs have no watched entry and are ignored for confidence",
            int((~found).sum()),
        )

    low, high = rating_scale
    midpoint = (low + high) / 2.0
    span = max(high - low, 1e-9)
    factor = 1.0 + rating_weight * (ratings.data[found] - midpoint) / span
    factor = np.maximum(factor, MIN_RATING_FACTOR).astype(np.float32)
    slots = positions[found]
    positive = weights.data[slots] > 0
    weights.data[slots[positive]] *= factor[positive]
    return weights


def fold_in_factors(
    confidence: sp.csr_matrix,
    item_factors: np.ndarray,
    regularization: float,
    item_gram: np.ndarray | None = None,
) -> np.ndarray:
    """Solve each row's ALS user factor exactly, given fixed item factors.

    `item_gram` is YᵀY of `item_factors` in float64 when the caller has it cached; it is
    computed here otherwise (about 5 ms for 12,000 items × 64 factors).

    `confidence` contains `alpha × confidence weight` per observed pair. For one person with
    observed items I, the factor x minimises the ALS loss, so it solves
        (YᵀY + λI + Σ_{i∈I} (|c_i| − 1) y_i y_iᵀ) x = Σ_{i∈I, c_i>0} c_i y_i,
    the same system `implicit` solves approximately by conjugate gradient. People are grouped
    by history length and each group is solved as one batched NumPy call.
    """
    if not sp.isspmatrix_csr(confidence):
        confidence = sp.csr_matrix(confidence)
    confidence.sort_indices()
    n_people = confidence.shape[0]
    n_factors = item_factors.shape[1]
    if item_gram is None:
        factors_64 = np.asarray(item_factors, dtype=np.float64)
        item_gram = factors_64.T @ factors_64
    gram = item_gram + regularization * np.eye(n_factors)
    result = np.zeros((n_people, n_factors), dtype=np.float32)

    lengths = np.diff(confidence.indptr)
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    start = 0
    while start < n_people:
        # The largest group whose padded size (people × longest history) fits the budget.
        stop_max = min(n_people, start + FOLD_IN_MAX_GROUP)
        candidate_stops = np.arange(start + 1, stop_max + 1)
        padded = (candidate_stops - start) * np.maximum(sorted_lengths[candidate_stops - 1], 1)
        fits = int(np.searchsorted(padded, FOLD_IN_SLOTS, side="right"))
        stop = start + max(fits, 1)
        people = order[start:stop]
        width = int(sorted_lengths[stop - 1])
        if width == 0:
            start = stop  # empty histories keep a zero factor
            continue

        offsets = confidence.indptr[people][:, None] + np.arange(width)[None, :]
        in_history = np.arange(width)[None, :] < lengths[people][:, None]
        offsets = np.where(in_history, offsets, 0)
        item_idx = confidence.indices[offsets]
        values = np.where(in_history, confidence.data[offsets].astype(np.float64), 0.0)

        # (group, width, n_factors); only the history rows are converted to float64.
        gathered = np.asarray(item_factors[item_idx], dtype=np.float64)
        extra = np.where(in_history, np.abs(values) - 1.0, 0.0)
        lhs = gram + np.matmul(gathered.transpose(0, 2, 1), gathered * extra[..., None])
        rhs = np.einsum("gw,gwf->gf", np.maximum(values, 0.0), gathered)
        result[people] = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        start = stop
    return result


class ALSRecommender(Recommender):
    """Implicit-feedback matrix factorization by alternating least squares."""

    name = "als"
    feedback = ("implicit", "explicit")
    config_class = ALSConfig
    description = "Implicit ALS matrix factorization (watched pairs, confidence raised by ratings)."

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return parameters for one Optuna trial (modest sizes, so one trial takes seconds)."""
        return {
            "n_factors": trial.suggest_int("n_factors", 16, 128, log=True),
            "regularization": trial.suggest_float("regularization", 0.05, 50.0, log=True),
            "alpha": trial.suggest_float("alpha", 0.5, 40.0, log=True),
            "epochs": trial.suggest_int("epochs", 5, 20),
            "rating_weight": trial.suggest_float("rating_weight", 0.0, 2.0),
        }

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self._derived: dict[str, np.ndarray] = {}
        config = self.config
        weights = confidence_weights(interactions, config.rating_weight, self.rating_scale_)

        def log_epoch(epoch: int, seconds: float, loss: float | None) -> None:
            logger.debug("ALS epoch %d/%d took %.2f s", epoch + 1, config.epochs, seconds)

        started = time.perf_counter()
        # implicit 0.7 warns that a multi-threaded BLAS slows its fit severely, so BLAS runs
        # single-threaded here and `implicit` parallelises over users itself.
        with threadpool_limits(limits=1, user_api="blas"):
            solver = AlternatingLeastSquares(
                factors=int(config.n_factors),
                regularization=float(config.regularization),
                alpha=float(config.alpha),
                iterations=int(config.epochs),
                dtype=np.float32,
                num_threads=int(config.num_threads),
                random_state=np.random.default_rng(int(config.random_state)),
            )
            solver.fit(weights, show_progress=False, callback=log_epoch)
        logger.info(
            "ALS fitted in %.1f s: %d users, %d items, %d factors",
            time.perf_counter() - started,
            interactions.n_users,
            interactions.n_items,
            config.n_factors,
        )

        self.user_factors_ = np.ascontiguousarray(solver.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(solver.item_factors, dtype=np.float32)
        self.untrained_ = untrained_items_mask(interactions.user_items)
        self.item_support_ = np.asarray(interactions.user_items.getnnz(axis=0), dtype=np.float32)

    def _derived_array(self, name: str) -> np.ndarray:
        """Return an array derived from the item factors, computed on first use.

        Fold-in and explanations run once per request, so YᵀY ("item_gram"), the unit-length
        item factors ("unit_item_factors") and the trained items' positions and factors are
        kept instead of being recomputed every call.
        """
        derived = self.__dict__.setdefault("_derived", {})
        if name not in derived:
            factors = self.item_factors_
            if name == "trained_positions":
                derived[name] = np.flatnonzero(~self.untrained_)
            elif name == "trained_factors":
                derived[name] = np.ascontiguousarray(factors[~self.untrained_])
            elif name == "item_gram":
                factors_64 = np.asarray(factors, dtype=np.float64)
                derived[name] = factors_64.T @ factors_64
            elif name == "support_weight":
                # Bundles saved before item support was stored get no shrinkage.
                support = getattr(self, "item_support_", None)
                shrinkage = float(self.config.similarity_shrinkage)
                if support is None or shrinkage == 0:
                    derived[name] = np.ones(len(factors), dtype=np.float32)
                else:
                    derived[name] = (support / (support + shrinkage)).astype(np.float32)
            else:
                norms = np.linalg.norm(factors, axis=1)
                norms[norms == 0] = 1.0
                derived[name] = (factors / norms[:, None]).astype(np.float32)
        return derived[name]

    def _scores_from_factors(self, person_factors: np.ndarray) -> np.ndarray:
        # Untrained items' factors mean nothing, so only trained items are multiplied.
        scores = np.full((person_factors.shape[0], len(self.item_factors_)), -np.inf, dtype=np.float32)
        scores[:, self._derived_array("trained_positions")] = (
            person_factors @ self._derived_array("trained_factors").T
        )
        return scores

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._scores_from_factors(self.user_factors_[user_idx])

    def fold_in(self, histories: Interactions) -> np.ndarray:
        """Return ALS factors (people × n_factors) for histories, computed without retraining."""
        self.check_fitted()
        weights = confidence_weights(histories, self.config.rating_weight, self.rating_scale_)
        # Items without training interactions have meaningless factors, so they are left out.
        # `confidence_weights` returns a new matrix, so it is changed in place.
        weights.data[self.untrained_[weights.indices]] = 0.0
        weights.data *= np.float32(self.config.alpha)
        weights.eliminate_zeros()
        return fold_in_factors(
            weights,
            self.item_factors_,
            self.config.regularization,
            item_gram=self._derived_array("item_gram"),
        )

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        return self._scores_from_factors(self.fold_in(histories))

    def _similar_items(self, item_idx: int) -> np.ndarray:
        unit_factors = self._derived_array("unit_item_factors")
        similarity = (unit_factors @ unit_factors[item_idx]) * self._derived_array("support_weight")
        similarity[self.untrained_] = -np.inf
        return similarity.astype(np.float32)

    def item_similarities_to(self, item_idx: int, others: np.ndarray) -> np.ndarray:
        self.check_fitted()
        if not 0 <= int(item_idx) < len(self.items_):
            raise ConfigError(f"item_idx must be in 0..{len(self.items_) - 1}, got {item_idx}")
        others = np.asarray(others, dtype=np.int64)
        unit_factors = self._derived_array("unit_item_factors")
        similarity = (unit_factors[others] @ unit_factors[int(item_idx)]).astype(np.float32)
        similarity *= self._derived_array("support_weight")[others]
        similarity[self.untrained_[others]] = -np.inf
        return similarity

    def item_similarity_block(self, items: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Return `item_similarities_to` for several items at once, as one matrix product."""
        self.check_fitted()
        items = np.asarray(items, dtype=np.int64)
        others = np.asarray(others, dtype=np.int64)
        if items.size and not (0 <= items.min() and items.max() < len(self.items_)):
            raise ConfigError(
                f"item positions must be in 0..{len(self.items_) - 1}, got {items.min()}..{items.max()}"
            )
        unit_factors = self._derived_array("unit_item_factors")
        block = (unit_factors[items] @ unit_factors[others].T).astype(np.float32)
        block *= self._derived_array("support_weight")[others]
        block[:, self.untrained_[others]] = -np.inf
        return block

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "untrained": self.untrained_,
            "item_support": self.item_support_,
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.untrained_ = arrays["untrained"].astype(bool)
        if "item_support" in arrays:
            self.item_support_ = arrays["item_support"].astype(np.float32)
        self._derived = {}
