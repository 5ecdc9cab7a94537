"""Hybrid recommendations: a collaborative model, content features, a user-feature prior and
franchise ties, blended with weights that depend on how long the person's history is.

Four components score every anime:

- `cf`: a registered collaborative model (EASE by default). It is strong for people with
  long histories and cannot score anime that have no training interactions.
- `content`: `ContentRecommender` on catalogue features. It scores every anime, including
  anime nobody has watched yet.
- `prior`: item popularity in the training data, conditioned on the number of titles in
  the person's history and on their user features (age, gender, occupation) when the
  dataset has them. People who have listed only a few titles list different anime from
  people with long lists (in the Kaggle 2016 ratings, about 85 % of the titles held out from
  lists of at most 5 are TV series, against 67 % for lists of more than 20), so a short history
  is scored by what other short histories contain. It is a naive-Bayes
  estimate P(item) · Π_f P(feature value | item), with the value shares smoothed towards
  their overall share. It is what a person with almost no history can be told.
- `franchise`: 1 for the anime that share a franchise group with a title in the person's
  history (groups derived from titles, or read from `franchise_file`), else 0. People with
  long lists tend to list a franchise's other seasons and films too, and the collaborative
  scores underrate those entries for long histories. For short histories EASE mostly ranks
  them first already, so validation gives this component little or no weight there.

Each component's scores are standardised per person (z-scores over the finite entries; an
anime a component cannot score gets that person's lowest z-score), then summed with weights
chosen per history-length bucket. `fit` learns those weights: it holds out a random set of
training users (plus the training users whose whole history is short), fits the components
on the rest, folds in part of each held-out user's titles, and for each bucket keeps the
weight combination with the best NDCG@k on the remaining titles. The search covers a grid
of step 0.1 on the simplex of cf, content and prior, then the franchise weights of
FRANCHISE_GRID added to the best simplex row, then, when a franchise weight above 0 wins,
the simplex again with it. Buckets of 1 to 5 titles are tuned on two groups at once: long histories
cut to that length, and people who have only watched a few titles in all; each group's
NDCG is taken relative to its best blend, so neither group's level dominates. Then the
components are refitted on all training users. A small fixed share of the content score (`CONTENT_TIE_BREAK`) is always
added, so anime without interactions stay ordered by content in every bucket.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from animerec.data.interactions import Dataset, Interactions, histories_to_interactions
from animerec.errors import ConfigError
from animerec.franchise import load_franchises
from animerec.models.base import (
    ModelConfig,
    Recommender,
    iter_chunks,
    sparse_from_arrays,
    sparse_to_arrays,
)
from animerec.models.content import ContentConfig, ContentRecommender

logger = logging.getLogger(__name__)

COMPONENTS = ("cf", "content", "prior", "franchise")
# Upper bounds of the history-length buckets (number of titles with a positive weight);
# a longer history falls in the last bucket. Bucket 0 is an empty history.
BUCKET_BOUNDS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)
# Blend used for a bucket that validation could not tune (too few held-out users).
DEFAULT_BLEND = {0: (0.0, 0.0, 1.0), 2: (0.3, 0.3, 0.4), 5: (0.5, 0.2, 0.3), 10_000: (0.8, 0.1, 0.1)}
# Held-out users a bucket needs before its tuned weights are trusted.
MIN_BUCKET_USERS = 15
# Buckets 1..SHORT_BUCKET (histories of 1, 2, 3 and 4-5 titles) are tuned on every held-out
# user cut to that length and on the held-out users who have at most NATURAL_MAX_TITLES
# titles in all.
SHORT_BUCKET = 4
NATURAL_MAX_TITLES = 6
GRID_STEP = 0.1
# Franchise weights tried on top of a bucket's best (cf, content, prior) simplex weights.
FRANCHISE_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
# Weight of the content z-score added to every blend, so that anime no collaborative model
# can score (and the prior cannot either) are still ordered by content when a bucket's
# tuned content weight is 0.
CONTENT_TIE_BREAK = 0.01
# User-feature columns with more distinct values than this (zip codes) are not used.
MAX_FEATURE_VALUES = 50
# A value seen for fewer training users than this is treated as unknown.
MIN_VALUE_USERS = 5
# Name of the derived user feature that bands the number of titles with a positive weight
# in a history (for training users their whole history, for a folded-in person what they
# gave). The bands are fixed, not quantiles, so a person who gave 3 titles is compared with
# training users who have at most 6. When the data has none (MovieLens users all rate 20
# or more films), the band counts as unknown and the prior is plain popularity.
HISTORY_LENGTH_COLUMN = "titles in history"
HISTORY_LENGTH_BANDS = (NATURAL_MAX_TITLES, 20, 60)
# Numeric user features (age) are cut into this many quantile bands.
NUMERIC_BANDS = 5
# Smoothing values tried when `prior_smoothing` is 0, and the one used without tuning.
PRIOR_SMOOTHING_GRID = (3.0, 10.0, 30.0, 100.0)
DEFAULT_PRIOR_SMOOTHING = 30.0


@dataclasses.dataclass(frozen=True)
class HybridConfig(ModelConfig):
    # Registered name of the collaborative component and its parameters as a JSON object.
    cf_model: str = "ease"
    cf_params: str = "{}"
    # Share of training users held out to tune the blend, and a cap on their number.
    validation_fraction: float = 0.2
    max_validation_users: int = 1000
    # List length the blend is tuned for (NDCG@k).
    k: int = 10
    use_user_features: bool = True
    # Condition the prior on the number of titles in the history (HISTORY_LENGTH_COLUMN).
    use_history_length: bool = True
    # Pseudo-count pulling a feature value's share for an item towards its overall share;
    # 0 chooses it from PRIOR_SMOOTHING_GRID on the held-out training users.
    prior_smoothing: float = 0.0
    # Whether to add the franchise component. Its groups come from `franchise_file` (a JSON
    # list of {"name", "ids"} objects, see animerec.franchise), or from titles when it is "".
    use_franchises: bool = True
    franchise_file: str = ""
    random_state: int = 42

    def __post_init__(self) -> None:
        if self.cf_model in ("hybrid", "content"):
            raise ConfigError(f"cf_model must be a collaborative model, got {self.cf_model!r}")
        try:
            params = json.loads(self.cf_params)
        except json.JSONDecodeError as err:
            raise ConfigError(f"cf_params must be a JSON object, got {self.cf_params!r}: {err}") from err
        if not isinstance(params, dict):
            raise ConfigError(f"cf_params must be a JSON object, got {self.cf_params!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.max_validation_users < 0 or self.k < 1:
            raise ConfigError("max_validation_users must be >= 0 and k >= 1")
        if not self.prior_smoothing >= 0:
            raise ConfigError(f"prior_smoothing must be >= 0 (0 tunes it), got {self.prior_smoothing}")


def history_bucket(lengths: np.ndarray) -> np.ndarray:
    """Return the bucket number of each history length."""
    return np.searchsorted(np.asarray(BUCKET_BOUNDS), np.asarray(lengths), side="left").astype(np.int64)


def history_length_labels(lengths: np.ndarray) -> list[str]:
    """Return the HISTORY_LENGTH_BANDS label of each history length ("at most 6", …)."""
    bounds = HISTORY_LENGTH_BANDS
    labels = [f"at most {bounds[0]}"]
    labels += [f"{low + 1} to {high}" for low, high in zip(bounds, bounds[1:])]
    labels.append(f"more than {bounds[-1]}")
    positions = np.searchsorted(np.asarray(bounds), np.asarray(lengths), side="left")
    return [labels[position] for position in positions]


def positive_lengths(user_items: sp.csr_matrix) -> np.ndarray:
    """Return the number of entries with a positive weight in each row."""
    positive = sp.csr_matrix(user_items > 0)
    return np.diff(positive.indptr)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Return per-row z-scores over finite entries; non-finite entries get the row's minimum.

    A row with no spread (or nothing finite) becomes all zeros.
    """
    scores = np.asarray(scores, dtype=np.float32)
    finite = np.isfinite(scores)
    counts = finite.sum(axis=1, keepdims=True)
    safe = np.where(finite, scores, 0.0).astype(np.float64)
    means = safe.sum(axis=1, keepdims=True) / np.maximum(counts, 1)
    squares = np.where(finite, (safe - means) ** 2, 0.0).sum(axis=1, keepdims=True)
    stds = np.sqrt(squares / np.maximum(counts, 1))
    z = np.where(stds > 0, (safe - means) / np.where(stds > 0, stds, 1.0), 0.0)
    lowest = np.where(finite, z, np.inf).min(axis=1, keepdims=True)
    lowest = np.where(np.isfinite(lowest), lowest, 0.0)
    return np.where(finite, z, lowest).astype(np.float32)


def weight_grid(step: float = GRID_STEP) -> np.ndarray:
    """Return every (cf, content, prior) weight triple on the simplex with the given step."""
    count = int(round(1 / step))
    rows = [
        (a * step, b * step, (count - a - b) * step)
        for a in range(count + 1)
        for b in range(count + 1 - a)
    ]
    return np.asarray(rows, dtype=np.float32)


def default_blend() -> np.ndarray:
    """Return the untuned blend weights, one (cf, content, prior) row per bucket."""
    rows = []
    for bound in (*BUCKET_BOUNDS, BUCKET_BOUNDS[-1] + 1):
        for limit, weights in DEFAULT_BLEND.items():
            if bound <= limit:
                rows.append(weights)
                break
    return np.asarray(rows, dtype=np.float32)


class FeaturePrior:
    """Item popularity conditioned on categorical user features (a naive-Bayes prior).

    score(u, i) = log(n_i + 1) + Σ_f log((n_{i,v_f} + m · share(v_f)) / (n_i + m)), where n_i
    counts training users with a positive entry for item i, n_{i,v} those of them with value
    v, share(v) the share of training users with value v, and m the smoothing pseudo-count.
    Features whose value is unknown for a person are left out of the sum.
    """

    def __init__(self, smoothing: float) -> None:
        self.smoothing = smoothing
        self.columns: list[dict[str, Any]] = []
        self.item_counts = np.zeros(0, dtype=np.float32)
        self.value_counts: list[np.ndarray] = []
        self.value_shares: list[np.ndarray] = []

    def fit(self, user_items: sp.csr_matrix, features: pd.DataFrame | None) -> "FeaturePrior":
        positive = sp.csr_matrix((user_items > 0).astype(np.float32))
        self.item_counts = np.asarray(positive.sum(axis=0), dtype=np.float32).ravel()
        self.columns = describe_columns(features) if features is not None else []
        self.value_counts = []
        self.value_shares = []
        if self.columns:
            codes = self.encode(features)
            for position, column in enumerate(self.columns):
                n_values = len(column["values"])
                known = codes[:, position] >= 0
                indicator = sp.csr_matrix(
                    (np.ones(int(known.sum()), dtype=np.float32),
                     (codes[known, position], np.flatnonzero(known))),
                    shape=(n_values, positive.shape[0]),
                )
                self.value_counts.append(np.asarray((indicator @ positive).todense(), dtype=np.float32))
                shares = np.bincount(codes[known, position], minlength=n_values).astype(np.float32)
                self.value_shares.append(shares / max(float(shares.sum()), 1.0))
        return self

    def encode(self, features: pd.DataFrame | None, n_rows: int | None = None) -> np.ndarray:
        """Return value codes (rows × used columns, int32, -1 for unknown) of a feature frame."""
        if features is None:
            return np.full((n_rows or 0, len(self.columns)), -1, dtype=np.int32)
        codes = np.full((len(features), len(self.columns)), -1, dtype=np.int32)
        for position, column in enumerate(self.columns):
            if column["name"] not in features.columns:
                continue
            labels = feature_labels(features[column["name"]], column)
            lookup = {value: code for code, value in enumerate(column["values"])}
            codes[:, position] = [lookup.get(label, -1) for label in labels]
        return codes

    def score(self, codes: np.ndarray) -> np.ndarray:
        """Return log-prior scores (rows × items); items no training user had are -inf."""
        with np.errstate(divide="ignore"):
            base = np.where(self.item_counts > 0, np.log1p(self.item_counts), -np.inf).astype(np.float32)
        scores = np.broadcast_to(base, (codes.shape[0], base.size)).copy()
        smoothing = np.float32(self.smoothing)
        denominator = np.log(self.item_counts + smoothing)
        for position in range(len(self.columns)):
            # A value no training user had (a length band with no training history in it)
            # carries no evidence, so it counts as unknown.
            shares = self.value_shares[position]
            column_codes = codes[:, position]
            known = column_codes >= 0
            known[known] = shares[column_codes[known]] > 0
            if not known.any():
                continue
            values = column_codes[known]
            numerator = self.value_counts[position][values] + smoothing * shares[values, None]
            scores[known] += np.log(numerator) - denominator
        return scores

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"item_counts": self.item_counts}
        for position in range(len(self.columns)):
            arrays[f"counts_{position}"] = self.value_counts[position]
            arrays[f"shares_{position}"] = self.value_shares[position]
        return arrays

    def load(self, arrays: dict[str, np.ndarray], columns: list[dict[str, Any]]) -> None:
        self.columns = columns
        self.item_counts = arrays["item_counts"]
        self.value_counts = [arrays[f"counts_{p}"] for p in range(len(columns))]
        self.value_shares = [arrays[f"shares_{p}"] for p in range(len(columns))]


def describe_columns(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Choose the usable user-feature columns and their value labels.

    A numeric column is cut into quantile bands. A text column keeps the values seen for at
    least MIN_VALUE_USERS users, and it is dropped when fewer than two or more than
    MAX_FEATURE_VALUES remain.
    """
    columns = []
    for name in features.columns:
        series = features[name]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            values = pd.to_numeric(series, errors="coerce").dropna()
            if values.nunique() < 2:
                continue
            edges = np.unique(np.quantile(values, np.linspace(0, 1, NUMERIC_BANDS + 1)[1:-1]))
            column = {"name": str(name), "kind": "numeric", "edges": [float(e) for e in edges]}
            column["values"] = [f"band {b}" for b in range(len(edges) + 1)]
        else:
            counts = series.dropna().astype(str).value_counts()
            kept = sorted(str(v) for v in counts[counts >= MIN_VALUE_USERS].index)
            # A single usable value carries no information (every training history in one band).
            if len(kept) < 2 or len(kept) > MAX_FEATURE_VALUES:
                logger.info("user feature %r not used: %d usable values", name, len(kept))
                continue
            column = {"name": str(name), "kind": "category", "values": kept}
        columns.append(column)
    return columns


def feature_labels(series: pd.Series, column: dict[str, Any]) -> list[str | None]:
    if column["kind"] == "numeric":
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        bands = np.searchsorted(np.asarray(column["edges"]), numbers, side="right")
        return [None if math.isnan(x) else f"band {b}" for x, b in zip(numbers, bands)]
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in series]


class HybridRecommender(Recommender):
    """Blends a collaborative model, content features and a user-feature prior by history length."""

    name = "hybrid"
    feedback = ("implicit", "content")
    config_class = HybridConfig
    description = "Hybrid: CF + content + demographic prior, blend tuned per history length."
    uses_site_aggregates: ClassVar[bool] = False

    # --- tuning -----------------------------------------------------------------------

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return `cf_params` and `validation_fraction` for one Optuna trial.

        `fit` already tunes the blend weights, so the outer search covers the collaborative
        component, through that model's own `search_space` written into `cf_params` as
        JSON, and the share of training users that tunes the blend. `search_defaults` gives
        the collaborative parameters' defaults, so the first trial reproduces the defaults.
        Each trial is a full hybrid fit, which takes one to two minutes on the Kaggle 2016
        sample (4,879 users).

        NOTE: the space follows the default `cf_model` ("ease"). To tune with another
        `cf_model`, fix `cf_params` too, and only `validation_fraction` is searched.
        """
        cf_params = cls._default_cf_class().search_space(trial)
        return {
            "cf_params": json.dumps(cf_params),
            # Rounding drops float noise from the grid (0.15000000000000002 becomes 0.15).
            "validation_fraction": round(trial.suggest_float("validation_fraction", 0.1, 0.3, step=0.05), 2),
        }

    @classmethod
    def search_defaults(cls) -> dict[str, Any]:
        """Return the default collaborative parameters, under the names `search_space` draws."""
        defaults = cls._default_cf_class().config_class().to_dict()
        defaults.update(json.loads(HybridConfig().cf_params))
        return {
            name: value
            for name, value in defaults.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }

    @staticmethod
    def _default_cf_class() -> type[Recommender]:
        from animerec.models.registry import get_model_class

        return get_model_class(HybridConfig().cf_model)

    # --- fitting ----------------------------------------------------------------------

    def _make_cf(self) -> Recommender:
        from animerec.models.registry import create_model, get_model_class

        params = json.loads(self.config.cf_params)
        model_class = get_model_class(self.config.cf_model)
        fields = {f.name for f in dataclasses.fields(model_class.config_class)}
        if "random_state" in fields and "random_state" not in params:
            params["random_state"] = self.config.random_state
        return create_model(self.config.cf_model, **params)

    def _user_features(self, dataset: Dataset | None, users_ids: np.ndarray) -> pd.DataFrame | None:
        if dataset is None or not self.config.use_user_features:
            return None
        features = dataset.user_features
        if not isinstance(features, pd.DataFrame) or features.empty:
            return None
        return features.reindex(users_ids)

    def _with_lengths(
        self, features: pd.DataFrame | None, lengths: np.ndarray
    ) -> pd.DataFrame | None:
        """Return the user features, one row per length, with HISTORY_LENGTH_COLUMN set to
        the band labels of `lengths` (or the features unchanged when `use_history_length`
        is off)."""
        if not self.config.use_history_length:
            return features
        if features is None:
            frame = pd.DataFrame(index=pd.RangeIndex(len(lengths)))
        else:
            frame = features.reset_index(drop=True).copy()
        frame[HISTORY_LENGTH_COLUMN] = history_length_labels(lengths)
        return frame

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        rng = np.random.default_rng(self.config.random_state)
        features = self._with_lengths(
            self._user_features(dataset, interactions.users.ids), positive_lengths(interactions.user_items)
        )

        self.content_ = None
        if dataset is not None:
            self.content_ = ContentRecommender(ContentConfig()).fit(dataset)

        self.prior_smoothing_ = self.config.prior_smoothing or DEFAULT_PRIOR_SMOOTHING
        self.franchise_of_ = self._franchise_groups(dataset, interactions)
        self._franchise_members = None
        self.franchise_weight_ = np.zeros(len(default_blend()), dtype=np.float32)
        self.blend_ = self._tune_blend(dataset, interactions, features, rng)

        self.cf_ = self._make_cf().fit(interactions)
        self.prior_ = FeaturePrior(self.prior_smoothing_).fit(interactions.user_items, features)
        self.user_codes_ = self.prior_.encode(features, interactions.n_users)
        self.user_lengths_ = positive_lengths(interactions.user_items)
        self.user_groups_ = self._touched_groups(interactions.user_items)
        trained = np.flatnonzero(interactions.user_items.getnnz(axis=0) > 0)
        self.similarity_scale_ = self._similarity_scale(trained)

    def _franchise_groups(self, dataset: Dataset | None, interactions: Interactions) -> np.ndarray:
        """Return the franchise group of each item (-1 for none), or all -1 when unused."""
        none = np.full(interactions.n_items, -1, dtype=np.int32)
        if not self.config.use_franchises or dataset is None:
            return none
        groups = load_franchises(dataset.catalog, interactions.items, self.config.franchise_file or None)
        return groups.franchise_of.astype(np.int32)

    def _members(self) -> sp.csr_matrix:
        """Return the items × groups membership matrix of `franchise_of_` (built once)."""
        if self._franchise_members is None:
            grouped = np.flatnonzero(self.franchise_of_ >= 0)
            n_groups = int(self.franchise_of_.max()) + 1 if grouped.size else 0
            self._franchise_members = sp.csr_matrix(
                (np.ones(grouped.size, dtype=np.float32), (grouped, self.franchise_of_[grouped])),
                shape=(self.franchise_of_.size, n_groups),
            )
        return self._franchise_members

    def _touched_groups(self, user_items: sp.spmatrix) -> sp.csr_matrix:
        """Return users × groups, 1 where a positive history entry belongs to the group."""
        positive = sp.csr_matrix(sp.csr_matrix(user_items) > 0, dtype=np.float32)
        return sp.csr_matrix((positive @ self._members()) > 0, dtype=np.float32)

    def _siblings_of(self, touched: sp.csr_matrix) -> np.ndarray:
        """Return users × items, 1 for the members of each user's touched groups."""
        return (touched @ self._members().T).toarray().astype(np.float32, copy=False)

    def _siblings(self, user_items: sp.spmatrix) -> np.ndarray:
        """Return 1 where an item shares a franchise group with a positive history entry."""
        return self._siblings_of(self._touched_groups(user_items))

    def _tune_blend(
        self,
        dataset: Dataset | None,
        interactions: Interactions,
        features: pd.DataFrame | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Learn one (cf, content, prior) weight row per bucket on held-out training users."""
        blend = default_blend()
        if self.content_ is None:
            blend[:, 0] += blend[:, 1]
            blend[:, 1] = 0.0
        lengths = positive_lengths(interactions.user_items)
        eligible = np.flatnonzero(lengths >= 2)
        n_validation = min(
            self.config.max_validation_users,
            int(round(self.config.validation_fraction * interactions.n_users)),
            eligible.size,
        )
        if n_validation < MIN_BUCKET_USERS or interactions.n_users - n_validation < 2:
            logger.info("hybrid: too few users to tune the blend; using the default weights")
            return blend

        validation = rng.choice(eligible, size=n_validation, replace=False)
        # People whose whole history is short are rare and are exactly who the short buckets
        # serve, so they all join the held-out users (at most n_validation more of them).
        natural_pool = np.setdiff1d(
            np.flatnonzero((lengths >= 2) & (lengths <= NATURAL_MAX_TITLES)), validation
        )
        if natural_pool.size > n_validation:
            natural_pool = rng.choice(natural_pool, size=n_validation, replace=False)
        validation = np.union1d(validation, natural_pool)
        training = np.setdiff1d(np.arange(interactions.n_users), validation)
        if training.size < 2:
            return blend
        train_part = interactions.select_users(training)
        if train_part.nnz == 0:
            return blend
        cf = self._make_cf().fit(train_part)
        train_features = features.iloc[training] if features is not None else None
        if features is not None and not self.config.prior_smoothing:
            # The held-out users are scored with an empty history, so they have 0 titles.
            validation_features = features.iloc[validation].copy()
            if HISTORY_LENGTH_COLUMN in validation_features.columns:
                validation_features[HISTORY_LENGTH_COLUMN] = history_length_labels(np.zeros(len(validation)))
            self.prior_smoothing_ = self._tune_smoothing(
                train_part, train_features, validation_features, interactions.select_users(validation)
            )
        prior = FeaturePrior(self.prior_smoothing_).fit(train_part.user_items, train_features)

        samples = self._tuning_samples(validation, lengths, rng)
        grid = weight_grid()
        if self.content_ is None:
            grid = grid[grid[:, 1] == 0]

        use_franchises = bool((self.franchise_of_ >= 0).any())
        tuned = blend.copy()
        trusted = np.zeros(len(blend), dtype=bool)
        for bucket, groups in samples.items():
            evaluated = []
            for users, sizes in groups:
                if users.size < MIN_BUCKET_USERS:
                    continue
                folds, targets = self._fold_in(interactions, users, sizes, rng)
                rows_features = features.iloc[users].copy() if features is not None else None
                if rows_features is not None and HISTORY_LENGTH_COLUMN in rows_features.columns:
                    rows_features[HISTORY_LENGTH_COLUMN] = history_length_labels(positive_lengths(folds.user_items))
                z_scores = [
                    standardise(cf.score_histories(folds)),
                    standardise(self.content_.score_histories(folds)) if self.content_ is not None
                    else np.zeros((folds.n_users, folds.n_items), dtype=np.float32),
                    standardise(prior.score(prior.encode(rows_features, users.size))),
                    standardise(self._siblings(folds.user_items)) if use_franchises
                    else np.zeros((folds.n_users, folds.n_items), dtype=np.float32),
                ]
                evaluated.append((z_scores, sp.csr_matrix(folds.user_items), targets))
            if not evaluated:
                continue
            weights, scores = self._search_bucket(evaluated, grid, use_franchises)
            tuned[bucket] = weights[:3]
            self.franchise_weight_[bucket] = weights[3]
            trusted[bucket] = True
            logger.info(
                "hybrid bucket %d (%s users): weights %s, franchise %.2f, ndcg@%d %s",
                bucket, "+".join(str(users.size) for users, _ in groups),
                tuned[bucket].round(2).tolist(), weights[3], self.config.k,
                "/".join(f"{value:.4f}" for value in scores),
            )
            del evaluated

        # An untuned bucket takes the weights of the nearest tuned one.
        if trusted.any():
            tuned_positions = np.flatnonzero(trusted)
            for bucket in np.flatnonzero(~trusted):
                if bucket == 0:
                    continue
                nearest = tuned_positions[np.argmin(np.abs(tuned_positions - bucket))]
                tuned[bucket] = tuned[nearest]
                self.franchise_weight_[bucket] = self.franchise_weight_[nearest]
        return tuned

    def _search_bucket(
        self,
        evaluated: list[tuple[list[np.ndarray], sp.csr_matrix, sp.csr_matrix]],
        grid: np.ndarray,
        use_franchises: bool,
    ) -> tuple[np.ndarray, list[float]]:
        """Return a bucket's best (cf, content, prior, franchise) weights and each group's
        NDCG@k with them.

        The simplex grid is searched with no franchise weight, then the franchise weights
        of FRANCHISE_GRID with the best simplex row, then, when a franchise weight won, the
        simplex again with it. Each group's NDCG is taken relative to the best value seen
        for that group and the groups count equally, so a few dozen short-history people
        weigh as much as the many long histories cut short, whatever their NDCG levels.
        """
        results: dict[tuple[float, ...], list[float]] = {}

        def run(candidates: np.ndarray) -> None:
            for row in candidates:
                key = tuple(float(v) for v in row)
                if key not in results:
                    results[key] = [self._ndcg(z, row, seen, targets) for z, seen, targets in evaluated]

        def best() -> np.ndarray:
            keys = list(results)
            table = np.asarray([results[key] for key in keys])
            top = table.max(axis=0, keepdims=True)
            quality = np.mean(table / np.where(top > 0, top, 1.0), axis=1)
            return np.asarray(keys[int(np.argmax(quality))], dtype=np.float32)

        with_zero = np.hstack([grid, np.zeros((len(grid), 1), dtype=np.float32)])
        run(with_zero)
        chosen = best()
        if use_franchises:
            run(np.asarray([[*chosen[:3], weight] for weight in FRANCHISE_GRID], dtype=np.float32))
            chosen = best()
            if chosen[3] > 0:
                run(np.hstack([grid, np.full((len(grid), 1), chosen[3], dtype=np.float32)]))
                chosen = best()
        return chosen, results[tuple(float(v) for v in chosen)]

    def _tuning_samples(
        self, validation: np.ndarray, lengths: np.ndarray, rng: np.random.Generator
    ) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
        """Return, per bucket, groups of (held-out users, fold-in sizes) to tune it on.

        Short buckets (up to SHORT_BUCKET) get two groups: every held-out user with enough
        titles, cut to a random length inside the bucket (a long history told only a few
        titles), and the held-out users whose whole history has at most
        NATURAL_MAX_TITLES titles, told a random 1..n-1 of them that falls in the bucket
        (people who really have watched little). A longer bucket gets one group: each
        held-out user not short is assigned one random bucket their history allows.
        """
        lower = np.asarray((1,) + tuple(b + 1 for b in BUCKET_BOUNDS[1:]))
        upper = np.asarray(BUCKET_BOUNDS[1:] + (10**9,))
        users_by_bucket: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        available = lengths[validation] - 1  # titles that can be folded in, keeping a target

        for bucket in range(1, SHORT_BUCKET + 1):
            able = validation[available >= lower[bucket - 1]]
            high = np.minimum(upper[bucket - 1], lengths[able] - 1)
            sizes = rng.integers(lower[bucket - 1], high + 1)
            users_by_bucket[bucket] = [(able, sizes)]

        natural = validation[lengths[validation] <= NATURAL_MAX_TITLES]
        natural_sizes = rng.integers(1, lengths[natural])
        natural_buckets = history_bucket(natural_sizes)
        for bucket in range(1, SHORT_BUCKET + 1):
            inside = natural_buckets == bucket
            users_by_bucket[bucket].append((natural[inside], natural_sizes[inside]))

        long_lower = lower[SHORT_BUCKET:]
        assigned_users: dict[int, list[int]] = {}
        assigned_sizes: dict[int, list[int]] = {}
        for user in validation[available >= long_lower[0]]:
            allowed = np.flatnonzero(long_lower <= lengths[user] - 1) + SHORT_BUCKET
            position = int(rng.choice(allowed))
            high = min(int(upper[position]), int(lengths[user]) - 1)
            size = int(rng.integers(lower[position], high + 1))
            assigned_users.setdefault(position + 1, []).append(int(user))
            assigned_sizes.setdefault(position + 1, []).append(size)
        for bucket in sorted(assigned_users):
            users_by_bucket[bucket] = [
                (np.asarray(assigned_users[bucket], dtype=np.int64),
                 np.asarray(assigned_sizes[bucket], dtype=np.int64))
            ]
        return users_by_bucket

    def _tune_smoothing(
        self,
        train_part: Interactions,
        train_features: pd.DataFrame,
        validation_features: pd.DataFrame,
        validation_part: Interactions,
    ) -> float:
        """Choose the prior's smoothing by NDCG@k of the prior alone on the held-out users'
        positive titles (the situation of a person with no history)."""
        targets = sp.csr_matrix(validation_part.user_items > 0, dtype=np.float32)
        no_history = sp.csr_matrix(targets.shape, dtype=np.float32)
        quality = []
        for smoothing in PRIOR_SMOOTHING_GRID:
            prior = FeaturePrior(smoothing).fit(train_part.user_items, train_features)
            scores = prior.score(prior.encode(validation_features, validation_part.n_users))
            # Zeros, not the scores, in the unweighted slots: 0 × -inf would be NaN.
            zeros = np.zeros_like(scores)
            quality.append(self._ndcg([scores, zeros, zeros], np.array([1.0, 0.0, 0.0]), no_history, targets))
        chosen = PRIOR_SMOOTHING_GRID[int(np.argmax(quality))]
        logger.info("hybrid prior smoothing %g (ndcg@%d by value: %s)", chosen, self.config.k,
                    [round(q, 4) for q in quality])
        return chosen

    def _fold_in(
        self,
        interactions: Interactions,
        users: np.ndarray,
        sizes: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[Interactions, sp.csr_matrix]:
        """Split each user's positive titles at random into a fold-in of the given size and a
        target of the rest."""
        histories: list[list[tuple[int, float | None]]] = []
        weights: list[list[float]] = []
        target_rows: list[np.ndarray] = []
        for user, size in zip(users, sizes):
            item_idx, ratings = interactions.history(int(user))
            start, end = interactions.user_items.indptr[user], interactions.user_items.indptr[user + 1]
            values = interactions.user_items.data[start:end]
            chosen = rng.permutation(np.flatnonzero(values > 0))
            fold, target = chosen[: int(size)], chosen[int(size):]
            histories.append([
                (int(interactions.items.ids[item_idx[p]]), None if np.isnan(ratings[p]) else float(ratings[p]))
                for p in fold
            ])
            weights.append([float(values[p]) for p in fold])
            target_rows.append(item_idx[target])
        folds = histories_to_interactions(
            histories, interactions.items, interactions.rating_scale, weights=weights
        )
        indptr = np.concatenate([[0], np.cumsum([t.size for t in target_rows])])
        indices = np.concatenate(target_rows) if target_rows else np.empty(0, np.int32)
        targets = sp.csr_matrix(
            (np.ones(indices.size, dtype=np.float32), indices, indptr),
            shape=(len(users), interactions.n_items),
        )
        return folds, targets

    def _ndcg(
        self,
        z_scores: list[np.ndarray],
        weights: np.ndarray,
        seen: sp.csr_matrix,
        targets: sp.csr_matrix,
    ) -> float:
        from animerec.evaluation.metrics import mean, ndcg_at_k

        content_weight = weights[1] + CONTENT_TIE_BREAK
        combined = weights[0] * z_scores[0] + content_weight * z_scores[1] + weights[2] * z_scores[2]
        if len(weights) > 3 and weights[3] > 0:
            combined += weights[3] * z_scores[3]
        rows, columns = seen.nonzero()
        combined[rows, columns] = -np.inf
        k = min(self.config.k, combined.shape[1])
        top = np.argpartition(-combined, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(combined, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-order, axis=1, kind="stable"), axis=1)
        return mean(ndcg_at_k(top, targets, k))

    # --- scoring ----------------------------------------------------------------------

    def _blend(
        self, parts: list[np.ndarray], lengths: np.ndarray, siblings: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """Sum the standardised (cf, content, prior) parts and the franchise part with each
        row's bucket weights. `siblings` builds the dense franchise part, and it is called
        only when some row's bucket gives the franchise a weight."""
        buckets = history_bucket(lengths)
        weights = self.blend_[buckets].copy()
        weights[:, 1] += CONTENT_TIE_BREAK
        combined = np.zeros(parts[0].shape, dtype=np.float32)
        for position, part in enumerate(parts):
            combined += weights[:, position, None] * standardise(part)
        franchise = self.franchise_weight_[buckets]
        if franchise.any():
            combined += franchise[:, None] * standardise(siblings())
        return combined

    def _content_part(self, shape: tuple[int, int], scorer) -> np.ndarray:
        if self.content_ is None:
            return np.zeros(shape, dtype=np.float32)
        return scorer()

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        scores = np.empty((user_idx.size, len(self.items_)), dtype=np.float32)
        for block in iter_chunks(user_idx.size):
            users = user_idx[block]
            shape = (users.size, len(self.items_))
            parts = [
                self.cf_.score_users(users),
                self._content_part(shape, lambda: self.content_.score_users(users)),
                self.prior_.score(self.user_codes_[users]),
            ]
            scores[block] = self._blend(
                parts, self.user_lengths_[users], lambda: self._siblings_of(self.user_groups_[users])
            )
        return scores

    def score_histories(
        self, histories: Interactions, user_features: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Fold in people who are not in the training data and return their scores.

        `user_features`, when given, has one row per history row (in the same order) with
        the dataset's user-feature columns; the prior then uses them.
        """
        self.check_fitted()
        if histories.items != self.items_:
            raise ConfigError(
                "histories use a different item map than the model; build them with the model's items_"
            )
        if user_features is not None and len(user_features) != histories.n_users:
            raise ConfigError(
                f"user_features has {len(user_features)} rows but there are {histories.n_users} histories"
            )
        return self._blend_histories(histories, user_features)

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        return self._blend_histories(histories, None)

    def _blend_histories(self, histories: Interactions, user_features: pd.DataFrame | None) -> np.ndarray:
        lengths = positive_lengths(histories.user_items)
        codes = self.prior_.encode(
            self._with_lengths(
                user_features.reset_index(drop=True) if user_features is not None else None, lengths
            ),
            histories.n_users,
        )
        shape = (histories.n_users, len(self.items_))
        parts = [
            self.cf_.score_histories(histories),
            self._content_part(shape, lambda: self.content_.score_histories(histories)),
            self.prior_.score(codes),
        ]
        return self._blend(parts, lengths, lambda: self._siblings(histories.user_items))

    # Item similarity: content cosine + similarity_scale_ × the CF similarity, where the scale
    # matches the spread of the two (an entry the CF model cannot score adds nothing). Each
    # entry depends only on its pair, so explanations can read a few without full rows.

    def combine_similarities(self, cf: np.ndarray, content: np.ndarray | None) -> np.ndarray:
        """Return content + similarity_scale_ × cf for aligned similarity entries."""
        if content is None:
            return cf
        scaled = np.where(np.isfinite(cf), cf, 0.0) * np.float32(self.similarity_scale_)
        return (content + scaled).astype(np.float32)

    def _similar_items(self, item_idx: int) -> np.ndarray:
        content = self.content_.item_similarities(item_idx) if self.content_ is not None else None
        return self.combine_similarities(self.cf_.item_similarities(item_idx), content)

    def item_similarities_to(self, item_idx: int, others: np.ndarray) -> np.ndarray:
        """Return the similarities of one item to the items at `others` (see `_similar_items`)."""
        self.check_fitted()
        others = np.asarray(others, dtype=np.int64)
        content = (
            self.content_.item_similarities_to(item_idx, others) if self.content_ is not None else None
        )
        return self.combine_similarities(self.cf_.item_similarities_to(item_idx, others), content)

    def _similarity_scale(self, trained: np.ndarray) -> float:
        """Return std(content similarity) / std(CF similarity) over rows of up to 50 trained
        items (a fixed sample), so neither term dominates the combined similarity."""
        if self.content_ is None or trained.size == 0:
            return 1.0
        sample = np.random.default_rng(self.config.random_state).choice(
            trained, size=min(50, trained.size), replace=False
        )
        cf_values, content_values = [], []
        for item in sample:
            cf_row = self.cf_.item_similarities(int(item))
            finite = np.isfinite(cf_row)
            finite[int(item)] = False
            cf_values.append(cf_row[finite])
            content_values.append(self.content_.item_similarities(int(item))[finite])
        cf_spread = float(np.std(np.concatenate(cf_values)))
        content_spread = float(np.std(np.concatenate(content_values)))
        return content_spread / cf_spread if cf_spread > 0 and content_spread > 0 else 1.0

    # --- persistence ------------------------------------------------------------------

    def _get_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "blend": self.blend_,
            "user_codes": self.user_codes_,
            "user_lengths": self.user_lengths_,
            "similarity_scale": np.asarray([self.similarity_scale_], dtype=np.float64),
            "franchise_of": self.franchise_of_,
            "franchise_weight": self.franchise_weight_,
        }
        arrays.update(sparse_to_arrays("user_groups", self.user_groups_))
        for key, value in self.cf_._get_arrays().items():
            arrays[f"cf__{key}"] = value
        if self.content_ is not None:
            for key, value in self.content_._get_arrays().items():
                arrays[f"content__{key}"] = value
        for key, value in self.prior_.to_arrays().items():
            arrays[f"prior__{key}"] = value
        return arrays

    def _get_meta(self) -> dict[str, Any]:
        return {
            "cf": self.cf_._get_meta(),
            "has_content": self.content_ is not None,
            "content": self.content_._get_meta() if self.content_ is not None else {},
            "prior_columns": self.prior_.columns,
            "prior_smoothing": self.prior_smoothing_,
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._loaded_arrays = arrays

    def _set_meta(self, meta: dict[str, Any]) -> None:
        # Called by load_model after _set_arrays; sub-models need both arrays and metadata.
        arrays = self.__dict__.pop("_loaded_arrays")
        self.blend_ = arrays["blend"]
        self.user_codes_ = arrays["user_codes"]
        self.user_lengths_ = arrays["user_lengths"]
        self.similarity_scale_ = float(arrays["similarity_scale"][0])
        # Models saved before the franchise component have no franchise arrays.
        self.franchise_of_ = arrays.get("franchise_of", np.full(len(self.items_), -1, dtype=np.int32))
        self.franchise_weight_ = arrays.get("franchise_weight", np.zeros(len(self.blend_), dtype=np.float32))
        self._franchise_members = None
        if "user_groups_indptr" in arrays:
            self.user_groups_ = sparse_from_arrays(arrays, "user_groups")
        else:
            self.user_groups_ = sp.csr_matrix((len(self.users_), 0), dtype=np.float32)

        self.cf_ = self._make_cf()
        self._attach(self.cf_, _prefixed(arrays, "cf__"), meta.get("cf", {}))
        self.content_ = None
        if meta.get("has_content"):
            self.content_ = ContentRecommender(ContentConfig())
            self._attach(self.content_, _prefixed(arrays, "content__"), meta.get("content", {}))
        self.prior_smoothing_ = float(meta.get("prior_smoothing", DEFAULT_PRIOR_SMOOTHING))
        self.prior_ = FeaturePrior(self.prior_smoothing_)
        self.prior_.load(_prefixed(arrays, "prior__"), list(meta.get("prior_columns", [])))

    def _attach(self, model: Recommender, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        model.users_ = self.users_
        model.items_ = self.items_
        model.rating_scale_ = self.rating_scale_
        model._set_arrays(arrays)
        model._set_meta(meta)


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
