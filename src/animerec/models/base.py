"""The contract every recommender model follows.

A model only scores. It returns a dense float32 array of scores for a batch of people
(rows) over all items of its item map (columns); -inf marks an item the model cannot score
(for example an anime with no training interactions in a collaborative model). Ranking,
filtering and exclusion of seen items happen in `animerec.ranking`, never here.

Estimator rules, as in scikit-learn: `__init__` only stores a typed config; `fit` validates,
resets every learned attribute (names end in `_`) and returns self; calling a scoring method
before `fit` or `load` raises `NotFittedError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal

import numpy as np
import scipy.sparse as sp

import animerec
from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError, DataError, NotFittedError, NotFoundError

Feedback = Literal["explicit", "implicit", "content"]

BUNDLE_FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
META_FILE = "model.json"

# Rows scored at once by the batch helpers; keeps a score block at about
# SCORE_CHUNK_ROWS × n_items × 4 bytes (about 50 MB for 12,000 anime).
SCORE_CHUNK_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of every model's typed config; subclasses add fields with defaults."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Recommender:
    """Base class: config handling, fitted checks, the id maps, and bundle persistence.

    Subclasses set `name`, `feedback`, `config_class`, implement `_fit`, `_score_users`,
    `_score_histories` and `_similar_items`, and list their learned arrays in
    `_get_arrays` / `_set_arrays`.
    """

    name: ClassVar[str] = ""
    feedback: ClassVar[tuple[Feedback, ...]] = ()
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    description: ClassVar[str] = ""
    # False for models whose item-item similarity carries no meaning (popularity), so that
    # nothing explains a recommendation by it.
    has_item_similarity: ClassVar[bool] = True

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ConfigError("pass either a config object or keyword parameters, not both")
        if config is None:
            config = make_config(self.config_class, params)
        elif not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())
        return f"{type(self).__name__}({params})"

    # --- fitting ----------------------------------------------------------------------

    def fit(self, data: Dataset | Interactions) -> "Recommender":
        """Learn from a dataset (or bare interactions) and return self."""
        interactions = data.interactions if isinstance(data, Dataset) else data
        if interactions.nnz == 0:
            raise DataError("cannot fit on empty interactions: no user watched anything")
        self._reset()
        self.users_ = interactions.users
        self.items_ = interactions.items
        self.rating_scale_ = tuple(float(v) for v in interactions.rating_scale)
        try:
            self._fit(data if isinstance(data, Dataset) else None, interactions)
        except BaseException:
            # A failed fit must not leave a model that claims to be fitted.
            self._reset()
            raise
        return self

    def _reset(self) -> None:
        for attribute in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attribute)

    def _fit(self, dataset: Dataset | None, interactions: Interactions) -> None:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "items_")

    def check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"model {self.name!r} is not fitted: call fit() or load a saved bundle first"
            )

    # --- scoring ----------------------------------------------------------------------

    def score_users(self, user_idx: np.ndarray | list[int]) -> np.ndarray:
        """Return scores (len(user_idx) × n_items, float32) for users of the training data."""
        self.check_fitted()
        user_idx = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        if user_idx.size and (user_idx.min() < 0 or user_idx.max() >= len(self.users_)):
            raise ConfigError(
                f"user_idx must be in 0..{len(self.users_) - 1}; map external ids with IdMap first"
            )
        return self._score_users(user_idx).astype(np.float32, copy=False)

    def score_histories(self, histories: Interactions) -> np.ndarray:
        """Fold in people who are not in the training data and return their scores.

        `histories` rows are people; its item map must be the model's. Nothing is retrained.
        """
        self.check_fitted()
        if histories.items != self.items_:
            raise ConfigError(
                "histories use a different item map than the model; build them with the model's items_"
            )
        return self._score_histories(histories).astype(np.float32, copy=False)

    def similar_items(self, item_idx: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Return (item_idx, similarity) of the n items most similar to one item, best first,
        excluding the item itself."""
        self.check_fitted()
        if not 0 <= int(item_idx) < len(self.items_):
            raise ConfigError(f"item_idx must be in 0..{len(self.items_) - 1}, got {item_idx}")
        similarity = np.asarray(self._similar_items(int(item_idx)), dtype=np.float32).copy()
        similarity[int(item_idx)] = -np.inf
        finite = np.flatnonzero(np.isfinite(similarity))
        order = np.lexsort((finite, -similarity[finite]))[:n]
        chosen = finite[order]
        return chosen.astype(np.int32), similarity[chosen]

    def item_similarities(self, item_idx: int) -> np.ndarray:
        """Return the raw similarities of one item to every item (n_items, float32), the
        item itself included, with -inf where the model has no similarity. Unlike
        `similar_items` it sorts nothing, so explainers can read a few entries cheaply."""
        self.check_fitted()
        if not 0 <= int(item_idx) < len(self.items_):
            raise ConfigError(f"item_idx must be in 0..{len(self.items_) - 1}, got {item_idx}")
        return np.asarray(self._similar_items(int(item_idx)), dtype=np.float32)

    def item_similarities_to(self, item_idx: int, others: np.ndarray) -> np.ndarray:
        """Return the similarities of one item to the items at positions `others` (float32),
        the entries `item_similarities(item_idx)[others]` holds. Models that can compute a
        few entries directly override it, so explaining a list does not cost full rows."""
        return self.item_similarities(item_idx)[np.asarray(others, dtype=np.int64)]

    def item_similarity_block(self, items: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Return the similarities of several items to the items at positions `others`,
        shape (len(items), len(others)), float32; row i is
        `item_similarities_to(items[i], others)`. Explainers read a whole list with one
        call; models that can compute the block as one product override it."""
        items = np.asarray(items, dtype=np.int64)
        others = np.asarray(others, dtype=np.int64)
        block = np.empty((items.size, others.size), dtype=np.float32)
        for row, item_idx in enumerate(items):
            block[row] = self.item_similarities_to(int(item_idx), others)
        return block

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score_histories(self, histories: Interactions) -> np.ndarray:
        raise NotImplementedError

    def _similar_items(self, item_idx: int) -> np.ndarray:
        """Return one row of similarities to every item (n_items,); -inf where unknown."""
        raise NotImplementedError

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predict explicit ratings for (user, item) pairs; only models that use explicit
        feedback implement it."""
        raise ConfigError(f"model {self.name!r} does not predict ratings")

    # --- persistence ------------------------------------------------------------------

    def _get_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as a bundle folder (arrays.npz + model.json), replacing any old one
        atomically: the folder is written beside the target and renamed into place."""
        self.check_fitted()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            arrays = dict(self._get_arrays())
            arrays["__users__"] = np.asarray(self.users_.ids)
            arrays["__items__"] = np.asarray(self.items_.ids)
            np.savez(staging / ARRAYS_FILE, **arrays)
            meta = {
                "format_version": BUNDLE_FORMAT_VERSION,
                "library_version": animerec.__version__,
                "model": self.name,
                "config": self.config.to_dict(),
                "rating_scale": list(self.rating_scale_),
                "extra": self._get_meta(),
            }
            (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
            backup = None
            if target.exists():
                backup = target.with_name(f".{target.name}.old")
                if backup.exists():
                    shutil.rmtree(backup)
                target.rename(backup)
            staging.rename(target)
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def _get_meta(self) -> dict[str, Any]:
        """JSON-serialisable learned state that is not an array (override when needed)."""
        return {}

    def _set_meta(self, meta: dict[str, Any]) -> None:
        pass


def make_config(config_class: type[ModelConfig], params: dict[str, Any]) -> ModelConfig:
    """Build a config from keyword values, converting strings (from the CLI) to field types."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for this model; "
            f"valid ones: {', '.join(sorted(fields)) or 'none'}"
        )
    converted = {}
    for key, value in params.items():
        converted[key] = _convert(key, value, fields[key])
    try:
        return config_class(**converted)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err


_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number"}


def _convert(key: str, value: Any, spec: dataclasses.Field) -> Any:
    if not isinstance(value, str):
        return value
    default = spec.default
    kind = type(default) if default is not dataclasses.MISSING and default is not None else str
    try:
        if kind is bool:
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError as err:
        raise ConfigError(
            f"parameter {key} needs {_TYPE_NAMES.get(kind, kind.__name__)} value, got {value!r}"
        ) from err
    return value


def load_model(path: str | os.PathLike[str]) -> Recommender:
    """Load a bundle written by `Recommender.save`. No pickle is ever loaded."""
    from animerec.models.registry import get_model_class

    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise NotFoundError(f"no model bundle at {folder}: run `animerec train MODEL` first")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise DataError(
            f"model bundle format {meta.get('format_version')} is not supported "
            f"(this animerec reads format {BUNDLE_FORMAT_VERSION}); retrain the model",
            path=str(meta_path),
        )
    model_class = get_model_class(meta["model"])
    model = model_class(**meta["config"])
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    model.users_ = IdMap(arrays.pop("__users__"), kind="user_id")
    model.items_ = IdMap(arrays.pop("__items__"), kind="anime_id")
    model.rating_scale_ = tuple(meta.get("rating_scale", (1.0, 10.0)))
    model._set_arrays(arrays)
    model._set_meta(meta.get("extra", {}))
    return model


def iter_chunks(count: int, size: int = SCORE_CHUNK_ROWS) -> Iterator[slice]:
    """Yield slices that cover range(count) in blocks of at most `size`."""
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def untrained_items_mask(user_items) -> np.ndarray:
    """Boolean mask of items with no training interaction (columns that are all zero)."""
    return np.asarray(user_items.getnnz(axis=0) == 0)


def sparse_to_arrays(prefix: str, matrix: sp.spmatrix | sp.sparray) -> dict[str, np.ndarray]:
    """Split a CSR matrix into plain arrays for a bundle, under keys starting with `prefix`."""
    csr = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": csr.data,
        f"{prefix}_indices": csr.indices,
        f"{prefix}_indptr": csr.indptr,
        f"{prefix}_shape": np.asarray(csr.shape, dtype=np.int64),
    }


def sparse_from_arrays(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    """Rebuild a CSR matrix saved by `sparse_to_arrays`."""
    shape = tuple(int(v) for v in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=shape,
    )
