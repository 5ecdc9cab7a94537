"""Item-based k-nearest neighbours on the implicit "watched" view.

Two anime are similar when the same people watched them: the cosine of their columns in
`user_items`, optionally shrunk towards zero for pairs with little support. Each anime keeps
only its `n_neighbors` most similar anime, so the similarity matrix stays sparse
(n_items × n_neighbors values). A person's score for an anime is the sum of the similarities
between it and the anime in their history, weighted by their watch weights.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError
from animerec.models.base import (
    ModelConfig,
    Recommender,
    iter_chunks,
    sparse_from_arrays,
    sparse_to_arrays,
    untrained_items_mask,
)

logger = logging.getLogger(__name__)

# Upper bound on the values of one dense similarity block (items in a chunk × all items):
# 2**24 float32 values are 64 MiB.
BLOCK_VALUES = 2**24


@dataclasses.dataclass(frozen=True)
class ItemKNNConfig(ModelConfig):
    # Neighbours kept per anime.
    n_neighbors: int = 100
    # Added to the cosine denominator: sim = dot / (|a| |b| + shrinkage). 0 is plain cosine.
    shrinkage: float = 0.0

    def __post_init__(self) -> None:
        if int(self.n_neighbors) < 1:
            raise ConfigError(f"n_neighbors must be at least 1, got {self.n_neighbors}")
        if not self.shrinkage >= 0:
            raise ConfigError(f"shrinkage must be 0 or more, got {self.shrinkage}")


def positive_part(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Return a float32 copy of `user_items` without its negative (for example "dropped") values."""
    matrix = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    matrix.data = np.maximum(matrix.data, 0.0)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def item_neighbors(
    user_items: sp.csr_matrix, n_neighbors: int, shrinkage: float = 0.0
) -> sp.csr_matrix:
    """Return the items × items CSR matrix whose row i contains item i's top `n_neighbors`
    cosine similarities (positive values only, the item itself excluded).

    Only items with training interactions take part. Similarities are computed one block
    of rows at a time: a block is dense (rows in block × trained items) and holds at most
    `BLOCK_VALUES` values, never a full items × items matrix.
    """
    n_items = user_items.shape[1]
    trained_idx = np.flatnonzero(user_items.getnnz(axis=0) > 0)
    compact = user_items[:, trained_idx].tocsr()
    n_trained = trained_idx.size
    item_users = compact.T.tocsr()
    norms = np.sqrt(np.asarray(item_users.multiply(item_users).sum(axis=1)).ravel())
    norms = norms.astype(np.float32)
    keep = min(int(n_neighbors), max(n_trained - 1, 1))
    chunk_rows = max(1, BLOCK_VALUES // max(n_trained, 1))

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for chunk in iter_chunks(n_trained, chunk_rows):
        block = (item_users[chunk] @ compact).toarray()
        denominator = norms[chunk, None] * norms[None, :] + np.float32(shrinkage)
        np.divide(block, denominator, out=block, where=denominator > 0)
        block[denominator <= 0] = 0.0
        local = np.arange(block.shape[0])
        block[local, local + chunk.start] = 0.0

        if keep < n_trained:
            top = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
        else:
            top = np.broadcast_to(np.arange(n_trained), (block.shape[0], n_trained))
        top_values = np.take_along_axis(block, top, axis=1)
        positive = top_values > 0
        rows.append(np.broadcast_to(local[:, None] + chunk.start, top.shape)[positive])
        cols.append(top[positive])
        values.append(top_values[positive])

    # Back from compact positions to item_idx.
    neighbors = sp.csr_matrix(
        (
            np.concatenate(values),
            (trained_idx[np.concatenate(rows)], trained_idx[np.concatenate(cols)]),
        ),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    neighbors.sort_indices()
    return neighbors


class ItemKNNRecommender(Recommender):
    """Item-kNN with cosine similarity over who watched what.

    Only positive watch weights count: negative evidence (such as "dropped") is ignored by
    the similarity and by the scores. Ratings are not used.
    """

    name = "itemknn"
    feedback = ("implicit",)
    config_class = ItemKNNConfig
    description = "Item-based nearest neighbours: anime watched by the same people (cosine)."

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return parameters for one Optuna trial."""
        return {
            "n_neighbors": trial.suggest_int("n_neighbors", 10, 500, log=True),
            "shrinkage": trial.suggest_float("shrinkage", 0.0, 200.0),
        }

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        user_items = positive_part(interactions.user_items)
        self.similarity_ = item_neighbors(
            user_items, self.config.n_neighbors, self.config.shrinkage
        )
        self.similarity_columns_ = self.similarity_.tocsc()
        self.user_items_ = user_items
        self.untrained_ = untrained_items_mask(user_items)
        logger.info(
            "item-kNN fitted: %d items, %d neighbour pairs kept",
            user_items.shape[1],
            self.similarity_.nnz,
        )

    def _score_rows(self, history: sp.csr_matrix) -> np.ndarray:
        scores = (history @ self.similarity_).toarray().astype(np.float32, copy=False)
        scores[:, self.untrained_] = -np.inf
        return scores

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._score_rows(self.user_items_[user_idx])

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        return self._score_rows(positive_part(histories.user_items))

    def _similar_items(self, item_idx: int) -> np.ndarray:
        # Row i keeps i's own neighbours and column i the items that kept i, so an
        # explanation finds every pair that added to a score. Both store the same cosine.
        similarity = np.full(self.similarity_.shape[1], -np.inf, dtype=np.float32)
        for matrix in (self.similarity_columns_, self.similarity_):
            start, end = matrix.indptr[item_idx], matrix.indptr[item_idx + 1]
            similarity[matrix.indices[start:end]] = matrix.data[start:end]
        return similarity

    def _get_arrays(self) -> dict[str, np.ndarray]:
        arrays = sparse_to_arrays("similarity", self.similarity_)
        arrays.update(sparse_to_arrays("user_items", self.user_items_))
        return arrays

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.similarity_ = sparse_from_arrays(arrays, "similarity")
        self.similarity_columns_ = self.similarity_.tocsc()
        self.user_items_ = sparse_from_arrays(arrays, "user_items")
        self.untrained_ = untrained_items_mask(self.user_items_)
