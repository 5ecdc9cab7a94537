"""Popularity: every person gets the anime most people watched."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError
from animerec.models.base import ModelConfig, Recommender


@dataclasses.dataclass(frozen=True)
class PopularityConfig(ModelConfig):
    # "users": number of people who watched it; "weight": sum of watch weights.
    measure: Literal["users", "weight"] = "users"

    def __post_init__(self) -> None:
        if self.measure not in ("users", "weight"):
            raise ConfigError(f"measure must be 'users' or 'weight', got {self.measure!r}")


class PopularityRecommender(Recommender):
    """Scores each anime by how many training users watched it; the same list for everyone.

    Only training interactions count, never anime.csv's site-wide `members`, so offline
    evaluation does not leak test users' activity into the scores.
    """

    name = "popular"
    feedback = ("implicit",)
    config_class = PopularityConfig
    description = "Most-watched anime in the training data (a baseline)."
    has_item_similarity = False

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        user_items = interactions.user_items
        if self.config.measure == "users":
            counts = np.asarray(user_items.getnnz(axis=0), dtype=np.float32)
        else:
            counts = np.asarray(user_items.sum(axis=0), dtype=np.float32).ravel()
        popularity = counts.copy()
        popularity[np.asarray(user_items.getnnz(axis=0)) == 0] = -np.inf
        self.popularity_ = popularity

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (user_idx.size, self.popularity_.size)).copy()

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        return np.broadcast_to(
            self.popularity_, (histories.n_users, self.popularity_.size)
        ).copy()

    def _similar_items(self, item_idx: int) -> np.ndarray:
        # Popularity knows nothing about item pairs: "similar" means "also popular".
        return self.popularity_

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]
