"""Baseline rating predictor: global mean plus regularized user and item biases."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from animerec.data.interactions import Interactions
from animerec.models.base import ModelConfig
from animerec.models.explicit import (
    RatingRecommender,
    RatingTriples,
    check_count,
    check_positive,
    fit_baseline_biases,
    fold_in_user_biases,
)


@dataclasses.dataclass(frozen=True)
class BaselineConfig(ModelConfig):
    # Shrinkage of each user bias towards 0, in ratings: b_u = Σ residual / (this + count).
    user_regularization: float = 15.0
    # The same for item biases.
    item_regularization: float = 10.0
    # Alternating passes (items, then users).
    epochs: int = 10

    def __post_init__(self) -> None:
        check_positive("user_regularization", self.user_regularization)
        check_positive("item_regularization", self.item_regularization)
        check_count("epochs", self.epochs)


class BaselineRecommender(RatingRecommender):
    """Predicts r_ui = mu + b_u + b_i, fitted by alternating least squares.

    A person who is not in the training data gets b_u from their ratings with the item
    biases fixed; a person with no ratings gets b_u = 0, so the list is the item biases.
    """

    name = "baseline"
    config_class = BaselineConfig
    description = "Global mean + regularized user and item biases (rating prediction)."
    has_item_similarity = False

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return parameters for one Optuna trial."""
        return {
            "user_regularization": trial.suggest_float("user_regularization", 0.5, 50.0, log=True),
            "item_regularization": trial.suggest_float("item_regularization", 0.5, 50.0, log=True),
            "epochs": trial.suggest_int("epochs", 3, 20),
        }

    def _fit_ratings(self, triples: RatingTriples, interactions: Interactions) -> None:
        config = self.config
        mu, user_bias, item_bias = fit_baseline_biases(
            triples, config.user_regularization, config.item_regularization, config.epochs
        )
        self.global_mean_ = mu
        self.user_bias_ = user_bias
        self.item_bias_ = item_bias

    def _predict_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[user_idx] + self.item_bias_[item_idx]

    def _user_block(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_bias_[user_idx]

    def _fold_in(self, histories: Interactions) -> np.ndarray:
        return fold_in_user_biases(
            histories.ratings, self.global_mean_, self.item_bias_, self.config.user_regularization
        )

    def _predict_block(self, block: np.ndarray) -> np.ndarray:
        return self.global_mean_ + block[:, None] + self.item_bias_[None, :]

    def _similar_items(self, item_idx: int) -> np.ndarray:
        # Biases say nothing about item pairs: "similar" means "also highly rated".
        similarity = self.item_bias_.astype(np.float32)
        similarity[~self.trained_items_] = -np.inf
        return similarity

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {
            "global_mean": np.asarray([self.global_mean_]),
            "user_bias": self.user_bias_,
            "item_bias": self.item_bias_,
            "trained_items": self.trained_items_,
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.global_mean_ = float(arrays["global_mean"][0])
        self.user_bias_ = arrays["user_bias"]
        self.item_bias_ = arrays["item_bias"]
        self.trained_items_ = arrays["trained_items"].astype(bool)
