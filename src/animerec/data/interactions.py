"""Interactions (watched and rated pairs) as users × items sparse matrices, and the dataset
that combines them with the catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.idmap import IdMap
from animerec.errors import ConfigError


@dataclass(frozen=True)
class Interactions:
    """Two views of the same interactions, both users × items CSR float32 matrices.

    `user_items` is the implicit "watched" view: one stored value per user–anime pair, the
    pair's watch weight (1.0 for a plain watched row; list statuses of richer data sets
    give other weights, and negative values mean negative evidence such as "dropped").
    `ratings` is the explicit view: only the pairs with a real rating, stored as the rating
    itself. A watched-but-unrated row (the 2016 data's `-1`) is in `user_items` but never in
    `ratings`, so no model ever reads a `-1` as a number.
    `timestamps`, when the source has them (MovieLens), is a users × items int64 CSR matrix
    of Unix seconds with the same stored pairs as `user_items`; None otherwise.
    """

    users: IdMap
    items: IdMap
    user_items: sp.csr_matrix
    ratings: sp.csr_matrix
    rating_scale: tuple[float, float] = (1.0, 10.0)
    timestamps: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        shape = (len(self.users), len(self.items))
        for name in ("user_items", "ratings", "timestamps"):
            matrix = getattr(self, name)
            if matrix is None:
                continue
            if matrix.shape != shape:
                raise ConfigError(
                    f"{name} has shape {matrix.shape} but the id maps say users × items = {shape}"
                )

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def nnz(self) -> int:
        return int(self.user_items.nnz)

    @classmethod
    def from_arrays(
        cls,
        user_ids: np.ndarray,
        anime_ids: np.ndarray,
        ratings: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        users: IdMap | None = None,
        items: IdMap,
        rating_scale: tuple[float, float] = (1.0, 10.0),
        timestamps: np.ndarray | None = None,
    ) -> "Interactions":
        """Build both views from row arrays.

        `ratings` is float with NaN for "watched, not rated"; `weights` is the watch weight
        (default 1.0); `timestamps` (optional) are int64 Unix seconds per row. Pairs must be
        unique: loaders apply the duplicate policy first.
        """
        user_ids = np.asarray(user_ids, dtype=np.int64)
        anime_ids = np.asarray(anime_ids, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float32)
        if weights is None:
            weights = np.ones(user_ids.shape, dtype=np.float32)
        users = users if users is not None else IdMap(user_ids, kind="user_id")
        rows = users.to_idx(user_ids)
        cols = items.to_idx(anime_ids)
        shape = (len(users), len(items))
        user_items = sp.csr_matrix(
            (np.asarray(weights, dtype=np.float32), (rows, cols)), shape=shape
        )
        # Building a CSR matrix sums repeated pairs, so fewer stored values mean duplicates.
        if user_items.nnz != rows.size:
            raise ConfigError(
                f"{rows.size - user_items.nnz} rows repeat a user–anime pair; "
                "apply a duplicate policy before building interactions"
            )
        rated = ~np.isnan(ratings)
        rating_matrix = sp.csr_matrix(
            (ratings[rated], (rows[rated], cols[rated])), shape=shape, dtype=np.float32
        )
        user_items.sort_indices()
        rating_matrix.sort_indices()
        timestamp_matrix = None
        if timestamps is not None:
            # int64 keeps second precision; float32 would round Unix times to about a minute.
            timestamp_matrix = sp.csr_matrix(
                (np.asarray(timestamps, dtype=np.int64), (rows, cols)), shape=shape
            )
            timestamp_matrix.sort_indices()
        return cls(users, items, user_items, rating_matrix, rating_scale, timestamp_matrix)

    def select_users(self, user_idx: np.ndarray) -> "Interactions":
        """Return the interactions of some users (rows in the given order), same item map."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        return Interactions(
            IdMap(self.users.ids[user_idx], kind="user_id") if _is_sorted(user_idx) else _anonymous(len(user_idx)),
            self.items,
            self.user_items[user_idx],
            self.ratings[user_idx],
            self.rating_scale,
            self.timestamps[user_idx] if self.timestamps is not None else None,
        )

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (item_idx, rating) of one user's watched items; rating is NaN where unrated."""
        start, end = self.user_items.indptr[user_idx], self.user_items.indptr[user_idx + 1]
        item_idx = self.user_items.indices[start:end]
        rated_start, rated_end = self.ratings.indptr[user_idx], self.ratings.indptr[user_idx + 1]
        rated_idx = self.ratings.indices[rated_start:rated_end]
        rating = np.full(item_idx.shape, np.nan, dtype=np.float32)
        if rated_idx.size:
            # A rated pair missing from user_items (possible when a caller built the matrices
            # by hand) has no slot here, so it is skipped rather than written to a neighbour.
            positions = np.searchsorted(item_idx, rated_idx)
            inside = positions < item_idx.size
            inside[inside] = item_idx[positions[inside]] == rated_idx[inside]
            rating[positions[inside]] = self.ratings.data[rated_start:rated_end][inside]
        return item_idx, rating


def _is_sorted(values: np.ndarray) -> bool:
    return bool(values.size < 2 or np.all(np.diff(values) > 0))


def _anonymous(count: int) -> IdMap:
    return IdMap(np.arange(count, dtype=np.int64), kind="person")


def histories_to_interactions(
    histories: Sequence[Iterable[tuple[int, float | None]]],
    items: IdMap,
    rating_scale: tuple[float, float] = (1.0, 10.0),
    weights: Sequence[Iterable[float]] | None = None,
) -> Interactions:
    """Build fold-in interactions for people who are not in the training data.

    Each history is a sequence of (anime_id, rating or None). Anime that `items` does not
    contain raise `UnknownIdError`; callers drop those first when they want to. Row i is
    history i; the user ids are 0..len(histories)-1.
    """
    user_ids: list[int] = []
    anime_ids: list[int] = []
    ratings: list[float] = []
    weight_values: list[float] = []
    for person, history in enumerate(histories):
        person_weights = list(weights[person]) if weights is not None else None
        seen: dict[int, int] = {}
        for position, (anime_id, rating) in enumerate(history):
            value = float("nan") if rating is None else float(rating)
            weight = person_weights[position] if person_weights is not None else 1.0
            if anime_id in seen:  # the later entry wins, as in the loaders
                slot = seen[anime_id]
                ratings[slot] = value
                weight_values[slot] = weight
                continue
            seen[anime_id] = len(anime_ids)
            user_ids.append(person)
            anime_ids.append(int(anime_id))
            ratings.append(value)
            weight_values.append(weight)
    # Fold-ins are small (often one person), so the rows are built straight into CSR arrays:
    # the COO route of `Interactions.from_arrays` costs more than the scoring that follows.
    # Pairs are unique already and rows are grouped by person in order.
    cols = items.to_idx(np.asarray(anime_ids, dtype=np.int64)).astype(np.int32)
    rows = np.asarray(user_ids, dtype=np.int64)
    order = np.lexsort((cols, rows))
    cols, rows = cols[order], rows[order]
    rating_values = np.asarray(ratings, dtype=np.float32)[order]
    weight_array = np.asarray(weight_values, dtype=np.float32)[order]
    rated = ~np.isnan(rating_values)
    shape = (len(histories), len(items))
    user_items = _sorted_csr(weight_array, cols, rows, shape)
    rating_matrix = _sorted_csr(rating_values[rated], cols[rated], rows[rated], shape)
    return Interactions(_anonymous(len(histories)), items, user_items, rating_matrix, rating_scale)


def _sorted_csr(
    data: np.ndarray, cols: np.ndarray, rows: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Return a CSR matrix from entries already sorted by (row, column) with no repeats."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    matrix = sp.csr_matrix((data, cols, indptr), shape=shape)
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


@dataclass(frozen=True)
class Dataset:
    """A catalogue and the interactions over it, under a name.

    `interactions.items` equals `catalog.items`: every catalogue anime has a column, even
    anime nobody has watched, so content-based models can rank them. Collaborative models
    score such columns as -inf (they cannot know them).
    """

    name: str
    catalog: Catalog
    interactions: Interactions
    format: str = "unknown"
    user_features: "object | None" = None  # a pandas DataFrame indexed by user_id, when present
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactions.items != self.catalog.items:
            raise ConfigError("interactions and catalogue must share one item map")
