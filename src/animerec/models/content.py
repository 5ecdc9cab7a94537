"""Content-based recommendations from catalogue metadata.

Each anime becomes a sparse feature vector built from its catalogue row: whole genre labels,
type, an episode-count band, studios, source material, a premiere-year band, the age rating
and, when the catalogue has synopses, TF-IDF word weights. Categorical features are weighted
by inverse document frequency (a rare genre carries more information than "Comedy"), each block of features
is L2-normalised and scaled by its configured weight, and the whole row is L2-normalised, so
the dot product of two rows is a weighted cosine similarity.

A person's profile is the weighted sum of the rows of the anime in their history: a rating
above the person's own mean counts more, one below it less, and an unrated row counts with
its watch weight (negative for "dropped"). Scores are the profile's dot product with every
anime row. Every anime in the catalogue gets a finite score, including anime that nobody in
the training data has watched.

The catalogue's `score` and `members` columns are site-wide aggregates over all MyAnimeList
users, test users included, so they are not features unless `use_site_aggregates` is set.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError, install_hint
from animerec.models.base import (
    ModelConfig,
    Recommender,
    iter_chunks,
    sparse_from_arrays,
    sparse_to_arrays,
)

logger = logging.getLogger(__name__)

# Upper bounds of the episode-count bands: a movie or single special, a short OVA, one cour,
# two cours, a year, a long run; anything longer falls in the last band.
EPISODE_BANDS = (1, 6, 13, 26, 52, 100)
# Width of a premiere-year band in years.
YEAR_BAND = 5
# Block names in the order the feature matrix lists them, with the label used in reasons.
BLOCK_LABELS = {
    "genre": "genres",
    "type": "type",
    "episodes": "length",
    "studio": "studio",
    "source": "source",
    "year": "era",
    "age_rating": "age rating",
    "word": "synopsis words",
    "aggregate": "site popularity",
}
# Block weights that `ContentRecommender.search_space` searches, and their grid.
SEARCHED_WEIGHTS = (
    "genre_weight",
    "type_weight",
    "episodes_weight",
    "studio_weight",
    "source_weight",
    "year_weight",
    "age_rating_weight",
    "synopsis_weight",
)
SEARCH_MAX_WEIGHT = 2.0
SEARCH_WEIGHT_STEP = 0.1


@dataclasses.dataclass(frozen=True)
class ContentConfig(ModelConfig):
    # Relative weights of the feature blocks (0 turns a block off).
    genre_weight: float = 1.0
    type_weight: float = 0.3
    episodes_weight: float = 0.2
    studio_weight: float = 0.4
    source_weight: float = 0.2
    year_weight: float = 0.2
    age_rating_weight: float = 0.2
    synopsis_weight: float = 0.5
    # Largest synopsis vocabulary kept (most frequent words after stop-word removal).
    synopsis_max_features: int = 5000
    # Adds bands of the catalogue's site-wide mean score and member count as features.
    # They include the activity of any test users, so evaluation flags models that use them.
    use_site_aggregates: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name.endswith("_weight"):
                value = getattr(self, field.name)
                if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                    raise ConfigError(f"{field.name} must be a finite number >= 0, got {value!r}")
        if self.synopsis_max_features < 1:
            raise ConfigError(
                f"synopsis_max_features must be at least 1, got {self.synopsis_max_features}"
            )


@dataclasses.dataclass(frozen=True)
class ItemFeatures:
    """A sparse items × features matrix with one name and one block per feature column."""

    matrix: sp.csr_matrix
    names: tuple[str, ...]
    blocks: tuple[str, ...]


def build_item_features(catalog: Catalog, items: IdMap, config: ContentConfig) -> ItemFeatures:
    """Build the weighted, row-normalised feature matrix of `items` from the catalogue."""
    aligned = catalog.aligned(items)
    block_weights = {
        "genre": config.genre_weight,
        "type": config.type_weight,
        "episodes": config.episodes_weight,
        "studio": config.studio_weight,
        "source": config.source_weight,
        "year": config.year_weight,
        "age_rating": config.age_rating_weight,
    }
    labelled_blocks = {
        "genre": _label_lists(aligned, "genres"),
        "type": _single_labels(aligned, "type"),
        "episodes": [_episode_band(v) for v in _column(aligned, "episodes")],
        "studio": _label_lists(aligned, "studios"),
        "source": _single_labels(aligned, "source"),
        "year": [_year_band(v) for v in _years(aligned)],
        "age_rating": _single_labels(aligned, "age_rating"),
    }
    if config.use_site_aggregates:
        block_weights["aggregate"] = 0.3
        labelled_blocks["aggregate"] = _aggregate_labels(aligned)

    matrices: list[sp.csr_matrix] = []
    names: list[str] = []
    blocks: list[str] = []
    for block, weight in block_weights.items():
        if weight <= 0:
            continue
        matrix, labels = _idf_block(labelled_blocks[block])
        if not labels:
            continue
        matrices.append(_normalise_rows(matrix) * np.float32(math.sqrt(weight)))
        names.extend(f"{block}:{label}" for label in labels)
        blocks.extend([block] * len(labels))

    if config.synopsis_weight > 0 and "synopsis" in aligned.columns:
        words = _synopsis_block(aligned["synopsis"], config.synopsis_max_features)
        if words is not None:
            matrix, vocabulary = words
            matrices.append(matrix * np.float32(math.sqrt(config.synopsis_weight)))
            names.extend(f"word:{w}" for w in vocabulary)
            blocks.extend(["word"] * len(vocabulary))

    if matrices:
        combined = sp.hstack(matrices, format="csr", dtype=np.float32)
    else:
        combined = sp.csr_matrix((len(items), 0), dtype=np.float32)
    combined = _normalise_rows(combined)
    return ItemFeatures(combined, tuple(names), tuple(blocks))


# --- feature extraction helpers --------------------------------------------------------


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    if name not in frame.columns:
        return [None] * len(frame)
    return frame[name].tolist()


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "Unknown")


def _label_lists(frame: pd.DataFrame, name: str) -> list[list[str]]:
    """Return each row's labels: a tuple or list is used as it is, a string is split on commas."""
    rows = []
    for value in _column(frame, name):
        if isinstance(value, (tuple, list)):
            labels = [str(v).strip() for v in value if not _is_missing(v)]
        elif isinstance(value, str) and not _is_missing(value):
            labels = [part.strip() for part in value.split(",") if part.strip()]
        else:
            labels = []
        rows.append([label for label in labels if label and label != "Unknown"])
    return rows


def _single_labels(frame: pd.DataFrame, name: str) -> list[list[str]]:
    return [[] if _is_missing(v) else [str(v).strip()] for v in _column(frame, name)]


def _episode_band(value: Any) -> list[str]:
    if _is_missing(value):
        return []
    count = int(value)
    if count <= 0:
        return []
    lower = 1
    for upper in EPISODE_BANDS:
        if count <= upper:
            return [f"{lower}" if lower == upper else f"{lower}-{upper}"]
        lower = upper + 1
    return [f"{EPISODE_BANDS[-1] + 1}+"]


def _years(frame: pd.DataFrame) -> list[int | None]:
    """Return each row's premiere year from `premiere_year` or `year` (MovieLens), else from
    `aired_start`."""
    years: list[int | None] = []
    columns = zip(_column(frame, "premiere_year"), _column(frame, "year"), _column(frame, "aired_start"))
    for premiere, release, start in columns:
        year = premiere if not _is_missing(premiere) else release
        if not _is_missing(year):
            years.append(int(year))
        elif isinstance(start, str) and start[:4].isdigit():
            years.append(int(start[:4]))
        else:
            years.append(None)
    return years


def _year_band(year: int | None) -> list[str]:
    if year is None:
        return []
    start = year - year % YEAR_BAND
    return [f"{start}-{start + YEAR_BAND - 1}"]


def _aggregate_labels(frame: pd.DataFrame) -> list[list[str]]:
    labels = []
    for score, members in zip(_column(frame, "score"), _column(frame, "members")):
        row = []
        if not _is_missing(score):
            row.append(f"score {int(float(score))}")
        if not _is_missing(members) and int(members) > 0:
            row.append(f"members 10^{int(math.log10(int(members)))}")
        labels.append(row)
    return labels


def _idf_block(rows: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """One-hot encode label lists with smoothed IDF values: log((1 + n) / (1 + df)) + 1."""
    vocabulary = sorted({label for row in rows for label in row})
    if not vocabulary:
        return sp.csr_matrix((len(rows), 0), dtype=np.float32), []
    column_of = {label: position for position, label in enumerate(vocabulary)}
    indptr = [0]
    indices: list[int] = []
    for row in rows:
        indices.extend(sorted({column_of[label] for label in row}))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), len(vocabulary)))
    document_frequency = np.bincount(matrix.indices, minlength=len(vocabulary))
    idf = np.log((1 + len(rows)) / (1 + document_frequency)) + 1
    return sp.csr_matrix(matrix @ sp.diags(idf.astype(np.float32))), vocabulary


def _synopsis_block(values: pd.Series, max_features: int) -> tuple[sp.csr_matrix, list[str]] | None:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            f"synopsis features need scikit-learn: run {install_hint('content')}, "
            "or set synopsis_weight=0"
        ) from err
    texts = ["" if _is_missing(v) else str(v) for v in values]
    if sum(1 for t in texts if t) < 2:
        return None
    vectorizer = TfidfVectorizer(
        max_features=max_features,
        stop_words="english",
        min_df=2,
        max_df=0.5,
        sublinear_tf=True,
        dtype=np.float32,
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # every word was a stop word or too rare
        return None
    return sp.csr_matrix(matrix, dtype=np.float32), [str(w) for w in vectorizer.get_feature_names_out()]


def _normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


# --- profile weights ---------------------------------------------------------------------


def profile_weights(interactions: Interactions) -> sp.csr_matrix:
    """Return how much each history entry counts towards a person's profile (users × items).

    A rated entry counts 1 + (rating − the person's mean rating) / (scale width / 4), clipped
    to [0, 3]: on a 1–10 scale a rating 2.25 above the person's mean counts double, one 2.25
    below counts nothing. An unrated entry counts its watch weight.
    """
    user_items = sp.csr_matrix(interactions.user_items, dtype=np.float32, copy=True)
    user_items.sort_indices()
    ratings = sp.csr_matrix(interactions.ratings, dtype=np.float32)
    ratings.sort_indices()
    low, high = interactions.rating_scale
    spread = max((high - low) / 4.0, 1e-6)

    counts = np.diff(ratings.indptr)
    sums = np.asarray(ratings.sum(axis=1), dtype=np.float64).ravel()
    means = np.divide(sums, counts, out=np.zeros(len(counts), dtype=np.float64), where=counts > 0)

    weights = user_items.data.copy()
    if ratings.nnz:
        rows = np.repeat(np.arange(ratings.shape[0]), counts)
        centred = (ratings.data - means[rows]) / spread
        rated_values = np.clip(1.0 + centred, 0.0, 3.0).astype(np.float32)
        # Each rated pair is also stored in user_items; find its slot there.
        keys = rows.astype(np.int64) * ratings.shape[1] + ratings.indices
        item_rows = np.repeat(np.arange(user_items.shape[0]), np.diff(user_items.indptr))
        item_keys = item_rows.astype(np.int64) * user_items.shape[1] + user_items.indices
        slots = np.searchsorted(item_keys, keys)
        found = (slots < item_keys.size) & (item_keys[np.minimum(slots, item_keys.size - 1)] == keys)
        weights[slots[found]] = rated_values[found]
    result = sp.csr_matrix((weights, user_items.indices, user_items.indptr), shape=user_items.shape)
    result.eliminate_zeros()
    return result


class ContentRecommender(Recommender):
    """Recommends anime whose catalogue features match the person's liked titles."""

    name = "content"
    feedback = ("content", "explicit", "implicit")
    config_class = ContentConfig
    description = "Content-based: genres, type, length, studio, source, era, synopsis (TF-IDF)."
    uses_site_aggregates: ClassVar[bool] = False

    def __init__(self, config: ContentConfig | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        if self.config.use_site_aggregates:
            # The option adds site-wide aggregates, so evaluation must flag this instance.
            self.uses_site_aggregates = True

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Return block weights for one Optuna trial, each from 0 to 2 in steps of 0.1.

        The step makes 0 a value that trials actually draw, and 0 leaves that block out. Every
        default weight lies on the grid, so the first trial reproduces the defaults. Only
        the ratios between weights matter because each row is L2-normalised. Blocks whose
        catalogue column is missing (synopsis, studio, source, year, age rating in the Kaggle
        2016 file) change nothing. A trial builds the feature matrix once, which takes seconds.
        """
        # Rounding drops float noise from the grid (0.30000000000000004 becomes 0.3).
        return {
            name: round(trial.suggest_float(name, 0.0, SEARCH_MAX_WEIGHT, step=SEARCH_WEIGHT_STEP), 1)
            for name in SEARCHED_WEIGHTS
        }

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        if dataset is None:
            # NOTE: without a catalogue there are no features, so every score is 0.
            logger.warning(
                "content model fitted on bare interactions: no catalogue, so no features; "
                "fit it on a Dataset to get content scores"
            )
            features = ItemFeatures(sp.csr_matrix((interactions.n_items, 0), dtype=np.float32), (), ())
        else:
            features = build_item_features(dataset.catalog, interactions.items, self.config)
        self.features_ = features.matrix
        self.feature_names_ = features.names
        self.feature_blocks_ = features.blocks
        self.user_weights_ = profile_weights(interactions)
        logger.info(
            "content features: %d anime × %d features (%d stored values)",
            self.features_.shape[0],
            self.features_.shape[1],
            self.features_.nnz,
        )

    # --- scoring ----------------------------------------------------------------------

    def profiles(self, weights: sp.csr_matrix) -> np.ndarray:
        """Return dense, L2-normalised profiles (people × features) from profile weights."""
        profiles = np.asarray((weights @ self.features_).todense(), dtype=np.float32)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        return np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)

    def scores_from_weights(self, weights: sp.csr_matrix) -> np.ndarray:
        """Return scores (people × items) for profile weights of the same shape."""
        scores = np.empty((weights.shape[0], len(self.items_)), dtype=np.float32)
        for block in iter_chunks(weights.shape[0]):
            profiles = self.profiles(weights[block])
            scores[block] = (self.features_ @ profiles.T).T
        return scores

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scores_from_weights(self.user_weights_[user_idx])

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        return self.scores_from_weights(profile_weights(histories))

    def _similar_items(self, item_idx: int) -> np.ndarray:
        row = self.features_[item_idx]
        return np.asarray((self.features_ @ row.T).todense(), dtype=np.float32).ravel()

    # --- explanations -----------------------------------------------------------------

    def feature_row(self, item_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (feature columns, values) of one item's row, read without sparse indexing."""
        start, end = self.features_.indptr[int(item_idx)], self.features_.indptr[int(item_idx) + 1]
        return self.features_.indices[start:end], self.features_.data[start:end]

    def history_view(self, history_idx: np.ndarray, history_weights: np.ndarray) -> "HistoryView":
        """Return a view of a history for explaining several items at a low cost per item."""
        self.check_fitted()
        return HistoryView(self, history_idx, history_weights)

    def shared_features(
        self, history_idx: np.ndarray, history_weights: np.ndarray, item_idx: int, n: int = 3
    ) -> list[tuple[str, list[str]]]:
        """Return (block label, feature labels) for the features that contribute most to one
        item's score for a history, grouped by block, strongest block first."""
        return self.history_view(history_idx, history_weights).shared_features(item_idx, n=n)

    def history_contributions(
        self, history_idx: np.ndarray, history_weights: np.ndarray, item_idx: int
    ) -> np.ndarray:
        """Return how much each history entry adds to one item's score (weight × cosine)."""
        return self.history_view(history_idx, history_weights).contributions(item_idx)

    def item_similarities_to(self, item_idx: int, others: np.ndarray) -> np.ndarray:
        """Return the cosine similarities of one item to the items at `others`."""
        self.check_fitted()
        return self.history_view(others, np.ones(len(others))).similarities(item_idx)

    # --- persistence ------------------------------------------------------------------

    def _get_arrays(self) -> dict[str, np.ndarray]:
        arrays = sparse_to_arrays("features", self.features_)
        arrays.update(sparse_to_arrays("user_weights", self.user_weights_))
        arrays["feature_names"] = np.asarray(self.feature_names_, dtype=np.str_)
        arrays["feature_blocks"] = np.asarray(self.feature_blocks_, dtype=np.str_)
        return arrays

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.features_ = sparse_from_arrays(arrays, "features")
        self.user_weights_ = sparse_from_arrays(arrays, "user_weights")
        self.feature_names_ = tuple(str(v) for v in arrays["feature_names"])
        self.feature_blocks_ = tuple(str(v) for v in arrays["feature_blocks"])


class HistoryView:
    """The feature rows of a person's history as one dense block (history × features).

    Explaining a list compares the same history with ten items. Slicing the sparse rows once
    and reading each item's row by its index pointers keeps that to a few dense products.
    """

    def __init__(self, model: ContentRecommender, history_idx: np.ndarray, history_weights: np.ndarray) -> None:
        self.model = model
        self.weights = np.asarray(history_weights, dtype=np.float32)
        self.block = model.features_[np.asarray(history_idx, dtype=np.int64)].toarray()

    def similarities(self, item_idx: int) -> np.ndarray:
        """Return the cosine similarity of one item to each history entry."""
        columns, values = self.model.feature_row(item_idx)
        return (self.block[:, columns] @ values).astype(np.float32)

    def contributions(self, item_idx: int) -> np.ndarray:
        """Return how much each history entry adds to one item's score (weight × cosine)."""
        return self.similarities(item_idx) * self.weights

    def shared_features(
        self, item_idx: int, n: int = 3, rows: np.ndarray | None = None
    ) -> list[tuple[str, list[str]]]:
        """Return (block label, feature labels) of the features that contribute most to one
        item's score, grouped by block, strongest block first. `rows` limits the history to
        some of its entries (positions in the history)."""
        columns, values = self.model.feature_row(item_idx)
        block, weights = self.block, self.weights
        if rows is not None:
            block, weights = block[rows], weights[rows]
        contributions = values * (weights @ block[:, columns])
        positive = np.flatnonzero(contributions > 0)
        if not positive.size:
            return []
        order = positive[np.argsort(-contributions[positive], kind="stable")][: 3 * n]
        by_block: dict[str, tuple[float, list[str]]] = {}
        for position in order:
            feature = int(columns[position])
            name = self.model.feature_blocks_[feature]
            label = self.model.feature_names_[feature].split(":", 1)[1]
            total, labels = by_block.get(name, (0.0, []))
            if len(labels) < n:
                labels.append(label)
            by_block[name] = (total + float(contributions[position]), labels)
        ranked = sorted(by_block.items(), key=lambda kv: -kv[1][0])
        return [(BLOCK_LABELS.get(name, name), labels) for name, (_, labels) in ranked]
