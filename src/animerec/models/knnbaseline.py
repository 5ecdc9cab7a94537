"""Item-based neighbourhood rating model on top of baselines, with shrunk Pearson-baseline
similarities (Koren 2010, "Factor in the neighbors", sections 2.1–2.2)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from animerec.data.interactions import Interactions
from animerec.models.base import ModelConfig, iter_chunks
from animerec.models.explicit import (
    RatingRecommender,
    RatingTriples,
    check_count,
    check_positive,
    fit_baseline_biases,
    fold_in_user_biases,
)

logger = logging.getLogger(__name__)

# Columns of one dense similarity block (n_items × columns float64 values, three of them).
SIMILARITY_BLOCK_COLUMNS = 256
# (person, item) pairs scored per block; each expands to at most stored_neighbors entries.
PAIR_BLOCK = 4096


@dataclasses.dataclass(frozen=True)
class ItemKNNBaselineConfig(ModelConfig):
    # Neighbours used for one prediction: the most similar anime the person has rated.
    n_neighbors: int = 40
    # Most similar anime kept per anime (positive similarities only); predictions look for
    # the person's rated anime among these.
    stored_neighbors: int = 400
    # Pearson-baseline correlations over n common raters are multiplied by
    # (n - 1) / (n - 1 + shrinkage).
    shrinkage: float = 100.0
    user_regularization: float = 15.0
    item_regularization: float = 10.0
    baseline_epochs: int = 10

    def __post_init__(self) -> None:
        check_count("n_neighbors", self.n_neighbors)
        check_count("stored_neighbors", self.stored_neighbors)
        check_positive("shrinkage", self.shrinkage)
        check_positive("user_regularization", self.user_regularization)
        check_positive("item_regularization", self.item_regularization)
        check_count("baseline_epochs", self.baseline_epochs)


class ItemKNNBaselineRecommender(RatingRecommender):
    """Predicts r_ui = b_ui + Σ_j s_ij (r_uj - b_uj) / Σ_j s_ij over the `n_neighbors` anime j
    most similar to i among those u rated, positive similarities only, where
    b_ui = mu + b_u + b_i. With no such neighbour the prediction is b_ui.

    s_ij is the Pearson correlation of the baseline residuals r - b over the users who rated
    both, shrunk by (n_ij - 1) / (n_ij - 1 + shrinkage). Each anime keeps its
    `stored_neighbors` best neighbours, so memory is n_items × stored_neighbors, never
    n_items². NOTE: scoring every anime for a person costs n_items × stored_neighbors
    operations, so ranking many people at once is slow compared with factor models.
    """

    name = "itemknn-baseline"
    config_class = ItemKNNBaselineConfig
    description = "Item-based kNN with baselines and shrunk Pearson-baseline similarity (ratings)."

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return parameters for one Optuna trial."""
        return {
            "n_neighbors": trial.suggest_int("n_neighbors", 5, 200, log=True),
            "shrinkage": trial.suggest_float("shrinkage", 1.0, 1000.0, log=True),
            "user_regularization": trial.suggest_float("user_regularization", 0.5, 50.0, log=True),
            "item_regularization": trial.suggest_float("item_regularization", 0.5, 50.0, log=True),
        }

    def _fit_ratings(self, triples: RatingTriples, interactions: Interactions) -> None:
        config = self.config
        mu, user_bias, item_bias = fit_baseline_biases(
            triples, config.user_regularization, config.item_regularization, config.baseline_epochs
        )
        residual = triples.values - mu - user_bias[triples.user_idx] - item_bias[triples.item_idx]
        self.global_mean_ = mu
        self.user_bias_ = user_bias
        self.item_bias_ = item_bias
        self.residuals_ = triples.user_major(residual).astype(np.float64)
        self.neighbor_indptr_, self.neighbor_idx_, self.neighbor_similarity_ = (
            pearson_baseline_neighbors(self.residuals_, config.shrinkage, config.stored_neighbors)
        )

    # --- prediction ---------------------------------------------------------------------

    def _predict_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        baseline = self.global_mean_ + self.user_bias_[user_idx] + self.item_bias_[item_idx]
        return baseline + self._neighborhood(self.residuals_, user_idx, item_idx)

    def _user_block(self, user_idx: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        return self.user_bias_[user_idx], self.residuals_[user_idx]

    def _fold_in(self, histories: Interactions) -> tuple[np.ndarray, sp.csr_matrix]:
        ratings = sp.csr_matrix(histories.ratings, dtype=np.float64)
        ratings.sort_indices()
        user_bias = fold_in_user_biases(
            ratings, self.global_mean_, self.item_bias_, self.config.user_regularization
        )
        rows = np.repeat(np.arange(ratings.shape[0]), np.diff(ratings.indptr))
        residuals = ratings.copy()
        residuals.data = (
            ratings.data - self.global_mean_ - user_bias[rows] - self.item_bias_[ratings.indices]
        )
        return user_bias, residuals

    def _predict_block(self, block: tuple[np.ndarray, sp.csr_matrix]) -> np.ndarray:
        user_bias, residuals = block
        n_people, n_items = residuals.shape
        scores = np.empty((n_people, n_items), dtype=np.float32)
        items = np.arange(n_items)
        for person in range(n_people):
            adjustment = self._neighborhood(residuals, np.full(n_items, person), items)
            scores[person] = self.global_mean_ + user_bias[person] + self.item_bias_ + adjustment
        return scores

    def _neighborhood(
        self, residuals: sp.csr_matrix, person_idx: np.ndarray, item_idx: np.ndarray
    ) -> np.ndarray:
        """Return Σ s_ij r_pj / Σ s_ij over the n_neighbors best rated neighbours j of each
        (person p, item i) pair, 0 where p rated none of i's stored neighbours."""
        n_items = residuals.shape[1]
        rated_keys = (
            np.repeat(np.arange(residuals.shape[0], dtype=np.int64), np.diff(residuals.indptr))
            * n_items
            + residuals.indices
        )
        rated_values = residuals.data
        adjustment = np.zeros(person_idx.size)
        if rated_keys.size == 0:
            return adjustment
        limit = int(self.config.n_neighbors)
        indptr = self.neighbor_indptr_
        for block in iter_chunks(person_idx.size, PAIR_BLOCK):
            people = person_idx[block].astype(np.int64)
            items = item_idx[block].astype(np.int64)
            starts = indptr[items]
            lengths = indptr[items + 1] - starts
            total = int(lengths.sum())
            if total == 0:
                continue
            pair = np.repeat(np.arange(people.size), lengths)
            offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            entry = starts[pair] + offsets
            neighbors = self.neighbor_idx_[entry]
            keys = people[pair] * n_items + neighbors
            position = np.minimum(np.searchsorted(rated_keys, keys), rated_keys.size - 1)
            found = rated_keys[position] == keys
            # Neighbours are stored best first, so the first `limit` found ones are the k
            # most similar rated anime of each pair.
            found_so_far = np.cumsum(found)
            before_pair = np.repeat(np.concatenate([[0], found_so_far])[np.cumsum(lengths) - lengths], lengths)
            rank = found_so_far - before_pair
            used = found & (rank <= limit)
            weights = self.neighbor_similarity_[entry[used]].astype(np.float64)
            numerator = np.bincount(pair[used], weights * rated_values[position[used]], people.size)
            denominator = np.bincount(pair[used], weights, people.size)
            result = np.zeros(people.size)
            np.divide(numerator, denominator, out=result, where=denominator > 0)
            adjustment[block] = result
        return adjustment

    def _similar_items(self, item_idx: int) -> np.ndarray:
        similarity = np.full(len(self.items_), -np.inf, dtype=np.float32)
        start, stop = self.neighbor_indptr_[item_idx], self.neighbor_indptr_[item_idx + 1]
        similarity[self.neighbor_idx_[start:stop]] = self.neighbor_similarity_[start:stop]
        return similarity

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {
            "global_mean": np.asarray([self.global_mean_]),
            "user_bias": self.user_bias_,
            "item_bias": self.item_bias_,
            "residual_data": self.residuals_.data,
            "residual_indices": self.residuals_.indices,
            "residual_indptr": self.residuals_.indptr,
            "neighbor_indptr": self.neighbor_indptr_,
            "neighbor_idx": self.neighbor_idx_,
            "neighbor_similarity": self.neighbor_similarity_,
            "trained_items": self.trained_items_,
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.global_mean_ = float(arrays["global_mean"][0])
        self.user_bias_ = arrays["user_bias"]
        self.item_bias_ = arrays["item_bias"]
        self.trained_items_ = arrays["trained_items"].astype(bool)
        shape = (len(self.users_), len(self.items_))
        self.residuals_ = sp.csr_matrix(
            (arrays["residual_data"], arrays["residual_indices"], arrays["residual_indptr"]),
            shape=shape,
        )
        self.neighbor_indptr_ = arrays["neighbor_indptr"]
        self.neighbor_idx_ = arrays["neighbor_idx"]
        self.neighbor_similarity_ = arrays["neighbor_similarity"]


def pearson_baseline_neighbors(
    residuals: sp.csr_matrix, shrinkage: float, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each item's `keep` most similar items as (indptr, item_idx, similarity) arrays,
    rows sorted by similarity, best first (ties by smaller item_idx); positive values only.

    `residuals` holds r_ui - b_ui at the rated pairs. The similarity of items i and j over
    the users U_ij who rated both is
    (|U_ij| - 1) / (|U_ij| - 1 + shrinkage) · Σ x_ui x_uj / sqrt(Σ x_ui² · Σ x_uj²),
    every sum over U_ij, and 0 when |U_ij| < 2 or a sum of squares is 0.
    """
    n_items = residuals.shape[1]
    values = sp.csc_matrix(residuals, dtype=np.float64)
    rated = values.copy()
    rated.data = np.ones_like(rated.data)
    squares = values.copy()
    squares.data = squares.data**2
    values_t = values.T.tocsr()
    rated_t = rated.T.tocsr()
    squares_t = squares.T.tocsr()

    indptr = np.zeros(n_items + 1, dtype=np.int64)
    chosen_items: list[np.ndarray] = []
    chosen_values: list[np.ndarray] = []
    for block in iter_chunks(n_items, SIMILARITY_BLOCK_COLUMNS):
        products = (values_t @ values[:, block]).toarray()
        common = (rated_t @ rated[:, block]).toarray()
        own_squares = (squares_t @ rated[:, block]).toarray()  # Σ x_ui² over common users (row i)
        other_squares = (rated_t @ squares[:, block]).toarray()  # Σ x_uj² over common users
        denominator = np.sqrt(own_squares * other_squares)
        similarity = np.zeros_like(products)
        np.divide(products, denominator, out=similarity, where=denominator > 0)
        shrunk = np.maximum(common - 1.0, 0.0)
        similarity *= shrunk / (shrunk + shrinkage) if shrinkage > 0 else (shrunk > 0)
        columns = np.arange(block.start, block.stop)
        similarity[columns, columns - block.start] = 0.0

        for offset, item in enumerate(columns):
            column = similarity[:, offset]
            candidates = np.flatnonzero(column > 0)
            if candidates.size > keep:
                top = np.argpartition(-column[candidates], keep - 1)[:keep]
                candidates = candidates[top]
            order = np.lexsort((candidates, -column[candidates]))
            chosen_items.append(candidates[order].astype(np.int32))
            chosen_values.append(column[candidates[order]].astype(np.float32))
            indptr[item + 1] = candidates.size
    np.cumsum(indptr, out=indptr)
    neighbor_idx = np.concatenate(chosen_items) if chosen_items else np.zeros(0, np.int32)
    neighbor_similarity = (
        np.concatenate(chosen_values) if chosen_values else np.zeros(0, np.float32)
    )
    return indptr, neighbor_idx, neighbor_similarity
