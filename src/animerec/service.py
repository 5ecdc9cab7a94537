"""Recommendations for people, the one entry point that the CLI and the HTTP API both call.

A `RecommenderService` pairs a dataset (catalogue plus training interactions) with one
trained model. It resolves titles, scores known users or folds in new people, ranks through
the shared `animerec.ranking.Ranker`, attaches reasons and returns plain JSON-friendly dicts.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.interactions import Dataset, histories_to_interactions
from animerec.data.malexport import MalExport
from animerec.data.watch_status import WatchStatus
from animerec.errors import ConfigError, NotFoundError, UnknownIdError
from animerec.explain import service_reasons
from animerec.franchise import load_franchises, prefer_watched
from animerec.models.base import META_FILE, Recommender, load_model
from animerec.ranking import Ranker, RankingOptions, Recommendation

logger = logging.getLogger(__name__)

HistoryEntry = tuple[int | str, float | None]

# An explainer returns one list of reasons per recommendation. It receives the service, the
# person's history as model item positions with their ratings (NaN where unrated), the
# ranked recommendations, and whether an unrated history entry was named as liked (a request
# from titles) or only watched (training data).
Explainer = Callable[
    ["RecommenderService", np.ndarray, np.ndarray, Sequence[Recommendation], bool],
    list[list[str]],
]

# Loaded datasets and models kept per process, so that a long-running server or repeated
# service construction does not read the store again. Entries are keyed by a stamp that
# changes when the data or the bundle is rewritten.
CACHE_SIZE = 4
_cache_lock = threading.Lock()
_dataset_cache: OrderedDict[tuple, Dataset] = OrderedDict()
_model_cache: OrderedDict[tuple, Recommender] = OrderedDict()
# Titles a service remembers after resolving them (a request names up to thousands).
RESOLVED_TITLES_KEPT = 20_000


class RecommenderService:
    """Recommendations, similar anime and title search over one dataset and one model.

    `model` may be None for a service that only searches and describes the catalogue; the
    methods that need scores then raise `NotFoundError`.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: Recommender | None,
        store: object | None = None,
        *,
        explainer: Explainer | None = None,
        blas_threads: int | None = 1,
        franchises: str | Path | None = None,
    ) -> None:
        self.dataset = dataset
        # One request scores one person, so BLAS threads cost more to wake than they save:
        # a 12,294 × 64 float32 matrix-vector product took 8 ms with two OpenBLAS threads
        # and 0.2 ms with one on a 2-core machine. None leaves the BLAS settings alone.
        self.blas_threads = blas_threads
        self.catalog: Catalog = dataset.catalog
        self.model = model
        self.store = store
        self.explainer: Explainer = explainer or service_reasons
        # A franchise JSON file for collapsing; None derives the groups from titles.
        self.franchise_file = franchises
        # Titles already resolved to anime ids; the catalogue does not change under a service.
        self._resolved_titles: dict[str, int] = {}
        self.ranker: Ranker | None = None
        if model is not None:
            model.check_fitted()
            self.ranker = self._build_ranker(model)
            aligned = self.catalog.aligned(model.items_)
            self._titles = aligned["title"].to_numpy(dtype=object)
            self._types = aligned["type"].to_numpy(dtype=object)
            self._episodes = aligned["episodes"].to_numpy(dtype=object)
            self._genres = aligned["genres"].to_numpy(dtype=object)

    # --- construction ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        home: Path | None = None,
        dataset: str | None = None,
        model: str | None = None,
        *,
        with_model: bool = True,
        franchises: str | Path | None = None,
    ) -> "RecommenderService":
        """Open the store under `home`, load a dataset (default: the most recently ingested)
        and a trained model for it (default: see `default_model_name`).

        With `with_model=False` no model is loaded, which is enough for `search` and `anime`.
        `franchises` is a franchise JSON file for collapsing (default: groups from titles).
        """
        store = open_store(home)
        try:
            loaded = load_dataset_cached(store, dataset)
            if not with_model:
                return cls(loaded, None, store)
            model_name = model if model is not None else default_model_name(store, loaded.name)
            recommender = load_model_cached(store, loaded.name, model_name)
        except BaseException:
            store.close()
            raise
        return cls(loaded, recommender, store, franchises=franchises)

    def _build_ranker(self, model: Recommender) -> Ranker:
        # Franchise groups are built on the first request that collapses them.
        return Ranker(self.catalog, model.items_)

    def _ensure_franchises(self) -> None:
        """Give the ranker franchise groups (from the file, else from titles) once."""
        assert self.ranker is not None and self.model is not None
        if self.ranker.franchise_of is not None:
            return
        groups = load_franchises(self.catalog, self.model.items_, self.franchise_file)
        self.ranker.start_order = prefer_watched(groups.start_order, self._watched_items())
        self.ranker.franchise_of = groups.franchise_of

    def _watched_items(self) -> np.ndarray:
        """Return a mask over the model's items of the anime someone in the data watched."""
        assert self.model is not None
        interactions = self.dataset.interactions
        counts = interactions.user_items.getnnz(axis=0)
        if interactions.items == self.model.items_:
            return counts > 0
        positions = interactions.items.to_idx(self.model.items_.ids, unknown="mask")
        return np.where(positions >= 0, counts[np.maximum(positions, 0)] > 0, False)

    def close(self) -> None:
        """Close the store this service was opened with, if any."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "RecommenderService":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- recommendations --------------------------------------------------------------

    def recommend_user(self, user_id: int, options: RankingOptions) -> list[dict]:
        """Recommend for a user of the training data, excluding what they watched."""
        with self._blas_limit():
            return self._recommend_user(user_id, options)

    def _recommend_user(self, user_id: int, options: RankingOptions) -> list[dict]:
        model = self._require_model()
        try:
            user_idx = model.users_.index(int(user_id))
        except UnknownIdError:
            raise UnknownIdError(
                f"unknown user_id {user_id}: dataset {self.dataset.name!r} has no such user. "
                "For a person who is not in the data, recommend from titles they liked instead"
            ) from None
        scores = model.score_users(np.array([user_idx]))
        history_idx, history_ratings = self._training_history(int(user_id))
        seen = _single_row(history_idx, len(model.items_))
        return self._ranked(
            scores, seen, options, history_idx, history_ratings, unrated_liked=False
        )

    def recommend_history(
        self,
        history: Sequence[HistoryEntry],
        options: RankingOptions,
        weights: Sequence[float] | None = None,
    ) -> list[dict]:
        """Recommend for a person who is not in the training data, from the anime they
        watched (ids or titles) with optional ratings, without retraining.

        `weights`, when given, has one watch weight per history entry (a list status's
        weight, negative for a dropped title) in place of the default 1.0.
        """
        with self._blas_limit():
            return self._recommend_history(history, options, weights)

    def recommend_export(self, export: MalExport, options: RankingOptions) -> list[dict]:
        """Recommend from a MyAnimeList list export.

        Watching, completed, on-hold and dropped entries form the history with their status
        weights (dropped titles count against similar anime). Plan-to-watch entries are not
        viewing evidence, so they stay out of the history and out of the list. Entries the
        model does not know are left out and logged.
        """
        history: list[HistoryEntry] = []
        weights: list[float] = []
        planned: list[int] = []
        unknown = 0
        for entry in export.entries:
            if self.model is not None and entry.anime_id not in self.model.items_:
                unknown += 1
                continue
            if entry.status is WatchStatus.PLAN_TO_WATCH:
                planned.append(entry.anime_id)
                continue
            history.append((entry.anime_id, entry.rating))
            weights.append(entry.weight)
        logger.info(
            "list export: %d entries, %d in the history, %d planned, %d unknown to the model",
            len(export.entries), len(history), len(planned), unknown,
        )
        if planned:
            options = options.replace(deny=tuple(options.deny) + tuple(planned))
        return self.recommend_history(history, options, weights)

    def _recommend_history(
        self,
        history: Sequence[HistoryEntry],
        options: RankingOptions,
        weights: Sequence[float] | None = None,
    ) -> list[dict]:
        model = self._require_model()
        if weights is not None and len(weights) != len(history):
            raise ConfigError(
                f"weights has {len(weights)} values but the history has {len(history)} entries"
            )
        entries, kept = self._resolve_history(history)
        folded = histories_to_interactions(
            [entries],
            model.items_,
            rating_scale=model.rating_scale_,
            weights=[[float(weights[i]) for i in kept]] if weights is not None else None,
        )
        scores = model.score_histories(folded)
        history_idx, history_ratings = folded.history(0)
        return self._ranked(
            scores, folded.user_items, options, history_idx, history_ratings, unrated_liked=True
        )

    def similar(self, anime: int | str, n: int = 10, include_adult: bool = False) -> list[dict]:
        """Return the anime most similar to one anime (an id or a title) under the model."""
        with self._blas_limit():
            return self._similar(anime, n, include_adult)

    def _similar(self, anime: int | str, n: int, include_adult: bool) -> list[dict]:
        model = self._require_model()
        anime_id = self.resolve(anime)
        item_idx = self._model_item(anime_id)
        scores = model.item_similarities(item_idx).copy()
        scores[item_idx] = -np.inf
        options = RankingOptions(n=n, include_adult=include_adult, exclude_seen=False)
        assert self.ranker is not None
        ranked = self.ranker.rank(scores[np.newaxis, :], options)[0]
        reasons = self._similar_reasons(item_idx, ranked)
        return [
            self._result(rank, rec, rec_reasons)
            for rank, (rec, rec_reasons) in enumerate(zip(ranked, reasons), start=1)
        ]

    def _similar_reasons(self, item_idx: int, ranked: Sequence[Recommendation]) -> list[list[str]]:
        """Explain each similar anime by the people who watched both and the genres shared
        with the anime asked about."""
        anchor_title = self.title_of_item(item_idx)
        anchor_genres = self._genres[item_idx]
        anchor_genres = anchor_genres if isinstance(anchor_genres, tuple) else ()
        item_users = self._item_users()
        anchor_users = item_users.indices[item_users.indptr[item_idx]:item_users.indptr[item_idx + 1]]
        reasons = []
        for rec in ranked:
            found = []
            other = rec.item_idx
            other_users = item_users.indices[item_users.indptr[other]:item_users.indptr[other + 1]]
            both = np.intersect1d(anchor_users, other_users, assume_unique=True).size
            if both:
                people = "person" if both == 1 else "people"
                found.append(f"{both:,} {people} who watched {anchor_title} also watched it")
            genres = self._genres[other]
            shared = [g for g in anchor_genres if isinstance(genres, tuple) and g in genres]
            if shared:
                found.append(f"shares genres with {anchor_title}: {', '.join(shared[:3])}")
            reasons.append(found)
        return reasons

    def _item_users(self) -> sp.csc_matrix:
        """Return the dataset's watched matrix in column form over the model's items, built
        once (who watched each anime, for the reasons of similar lists)."""
        cached = self.__dict__.get("_item_users_cache")
        if cached is None:
            assert self.model is not None
            interactions = self.dataset.interactions
            columns = interactions.items.to_idx(self.model.items_.ids, unknown="mask")
            user_items = interactions.user_items.tocsc()
            keep = np.where(columns >= 0, columns, 0)
            # Model items the dataset lacks get empty columns.
            known = sp.diags((columns >= 0).astype(np.float32))
            cached = sp.csc_matrix(user_items[:, keep] @ known)
            cached.eliminate_zeros()
            cached.sort_indices()
            self._item_users_cache = cached
        return cached

    # --- catalogue --------------------------------------------------------------------

    def search(self, text: str, n: int = 10) -> list[dict]:
        """Return anime whose titles match `text`, best match first.

        `score` is the catalogue's mean user score of the anime (NaN becomes None).
        """
        if not 1 <= int(n) <= 1000:
            raise ConfigError(f"n must be between 1 and 1000, got {n}")
        results = []
        for rank, anime_id in enumerate(self.catalog.search(text, n=int(n)), start=1):
            row = self.anime(anime_id)
            row["rank"] = rank
            results.append(row)
        return results

    def anime(self, anime_id: int) -> dict:
        """Return one anime's catalogue record in the result-dict shape (no reasons)."""
        record = self.catalog.row(int(anime_id))
        return {
            "anime_id": int(record["anime_id"]),
            "title": record.get("title"),
            "score": record.get("score"),
            "type": record.get("type"),
            "episodes": record.get("episodes"),
            "genres": list(record.get("genres") or []),
            "members": record.get("members"),
            "rank": None,
            "reasons": [],
        }

    def resolve(self, reference: int | str) -> int:
        """Resolve an anime id or a title to an anime id.

        Titles match case-insensitively, with or without HTML entities; an unknown or
        ambiguous title raises `NotFoundError` listing the closest matches.
        """
        if not isinstance(reference, str):
            return self.catalog.resolve(reference)
        anime_id = self._resolved_titles.get(reference)
        if anime_id is None:
            anime_id = self.catalog.resolve(reference)
            if len(self._resolved_titles) >= RESOLVED_TITLES_KEPT:
                self._resolved_titles.clear()
            self._resolved_titles[reference] = anime_id
        return anime_id

    # --- helpers ----------------------------------------------------------------------

    def _blas_limit(self) -> ContextManager[object]:
        if self.blas_threads is None:
            return contextlib.nullcontext()
        return _threadpool_controller().limit(limits=self.blas_threads, user_api="blas")

    def _require_model(self) -> Recommender:
        if self.model is None:
            raise NotFoundError(
                "no model is loaded: run `animerec train MODEL` and open the service with it"
            )
        return self.model

    def _model_item(self, anime_id: int) -> int:
        assert self.model is not None
        if anime_id not in self.model.items_:
            raise UnknownIdError(
                f"anime_id {anime_id} ({self.catalog.title(anime_id)}) is not in model "
                f"{self.model.name!r}: retrain it with `animerec train {self.model.name}`"
            )
        return self.model.items_.index(anime_id)

    def _resolve_history(
        self, history: Sequence[HistoryEntry]
    ) -> tuple[list[tuple[int, float | None]], list[int]]:
        """Return the resolved entries in the model's item map and their positions in
        `history`."""
        assert self.model is not None
        if not history:
            raise ConfigError("the history is empty: name at least one anime the person watched")
        low, high = self.model.rating_scale_
        entries: list[tuple[int, float | None]] = []
        kept: list[int] = []
        for position, (reference, rating) in enumerate(history):
            anime_id = self.resolve(reference)
            if rating is not None and not (low <= float(rating) <= high):
                raise ConfigError(
                    f"rating {rating} for {self.catalog.title(anime_id)!r} is outside "
                    f"the rating scale {low:g}..{high:g}"
                )
            if anime_id not in self.model.items_:
                logger.warning(
                    "anime_id %d is not in model %r; it is left out of the history",
                    anime_id,
                    self.model.name,
                )
                continue
            entries.append((anime_id, rating))
            kept.append(position)
        if not entries:
            raise ConfigError(
                f"none of the {len(history)} anime in the history is known to model "
                f"{self.model.name!r}"
            )
        return entries, kept

    def _training_history(self, user_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the user's training history as (model item_idx, rating) arrays."""
        assert self.model is not None
        interactions = self.dataset.interactions
        if user_id not in interactions.users:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        item_idx, ratings = interactions.history(interactions.users.index(user_id))
        if interactions.items != self.model.items_:
            anime_ids = interactions.items.ids[item_idx]
            mapped = self.model.items_.to_idx(anime_ids, unknown="mask")
            keep = mapped >= 0
            order = np.argsort(mapped[keep], kind="stable")
            item_idx, ratings = mapped[keep][order], ratings[keep][order]
        return np.asarray(item_idx, dtype=np.int32), np.asarray(ratings, dtype=np.float32)

    def _ranked(
        self,
        scores: np.ndarray,
        seen: sp.csr_matrix,
        options: RankingOptions,
        history_idx: np.ndarray,
        history_ratings: np.ndarray,
        *,
        unrated_liked: bool,
    ) -> list[dict]:
        assert self.ranker is not None
        if options.collapse_franchises:
            self._ensure_franchises()
        ranked = self.ranker.rank(scores, options, seen=seen)[0]
        reasons = self.explainer(self, history_idx, history_ratings, ranked, unrated_liked)
        return [
            self._result(rank, rec, reasons[rank - 1])
            for rank, rec in enumerate(ranked, start=1)
        ]

    def _result(self, rank: int, rec: Recommendation, reasons: list[str]) -> dict:
        position = rec.item_idx
        title = self._titles[position]
        genres = self._genres[position]
        episodes = self._episodes[position]
        kind = self._types[position]
        return {
            "anime_id": rec.anime_id,
            "title": str(title) if isinstance(title, str) else f"anime {rec.anime_id}",
            "score": float(rec.score),
            "type": kind if isinstance(kind, str) else None,
            "episodes": None if _is_missing(episodes) else int(episodes),
            "genres": list(genres) if isinstance(genres, tuple) else [],
            "rank": rank,
            "reasons": list(reasons),
        }

    def title_of_item(self, item_idx: int) -> str:
        """Return the title of a model item position (for explainers)."""
        title = self._titles[item_idx]
        return str(title) if isinstance(title, str) else f"anime {self.model.items_.ids[item_idx]}"


# --- reasons ---------------------------------------------------------------------------


def similar_history_reasons(
    service: RecommenderService,
    history_idx: np.ndarray,
    history_ratings: np.ndarray,
    recommendations: Sequence[Recommendation],
    unrated_liked: bool = False,
) -> list[list[str]]:
    """Explain each recommendation by the liked history item the model finds most similar.

    A history item counts when it is unrated or rated at least the middle of the rating
    scale. The reason says "liked" for rated items and for unrated ones when
    `unrated_liked` is true, else "watched". Models without a meaningful item-item
    similarity (popularity) get no reasons. Cost: one similarity row per recommendation,
    whatever the history length.
    """
    model = service.model
    empty: list[list[str]] = [[] for _ in recommendations]
    if model is None or not getattr(model, "has_item_similarity", True) or not len(history_idx):
        return empty
    low, high = model.rating_scale_
    middle = (low + high) / 2
    liked = np.isnan(history_ratings) | (history_ratings >= middle)
    liked_idx = np.asarray(history_idx)[liked]
    liked_rated = ~np.isnan(np.asarray(history_ratings)[liked])
    if not liked_idx.size:
        return empty

    reasons = []
    for rec in recommendations:
        similarity = model.item_similarities(rec.item_idx)[liked_idx]
        best = int(np.argmax(similarity))
        if not np.isfinite(similarity[best]) or similarity[best] <= 0:
            reasons.append([])
            continue
        verb = "liked" if liked_rated[best] or unrated_liked else "watched"
        reasons.append([f"because you {verb} {service.title_of_item(int(liked_idx[best]))}"])
    return reasons


# --- store, dataset and model loading ----------------------------------------------------


def open_store(home: Path | str | None = None):
    """Open the SQLite store under `home` (default: `animerec.config.animerec_home()`)."""
    from animerec.data.store import Store

    if home is None:
        return Store()
    folder = Path(home).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return Store(folder / "animerec.sqlite")


def default_model_name(store, dataset_name: str) -> str:
    """Return the model to use when none is named: the default model when it is trained for
    this dataset, else the most recently trained one."""
    from animerec.models.registry import DEFAULT_MODEL, model_names

    default_path = Path(store.model_path(dataset_name, DEFAULT_MODEL))
    if (default_path / META_FILE).is_file():
        return DEFAULT_MODEL
    trained = []
    for name in model_names():
        meta = Path(store.model_path(dataset_name, name)) / META_FILE
        if meta.is_file():
            trained.append((meta.stat().st_mtime_ns, name))
    if not trained:
        raise NotFoundError(
            f"no model is trained for dataset {dataset_name!r}: run `animerec train {DEFAULT_MODEL}`"
        )
    return max(trained)[1]


def load_dataset_cached(store, name: str | None = None) -> Dataset:
    """Load a dataset from the store, reusing the copy loaded before when it is unchanged."""
    dataset_name = name if name is not None else store.current_dataset_name()
    key = (str(getattr(store, "path", id(store))), dataset_name, _dataset_stamp(store, dataset_name))
    with _cache_lock:
        cached = _dataset_cache.get(key)
        if cached is not None:
            _dataset_cache.move_to_end(key)
            return cached
    dataset = store.load_dataset(dataset_name)
    _remember(_dataset_cache, key, dataset)
    return dataset


def load_model_cached(store, dataset_name: str, model_name: str) -> Recommender:
    """Load a trained model bundle, reusing the copy loaded before when the bundle is unchanged."""
    from animerec.models.registry import get_model_class

    get_model_class(model_name)  # raises ConfigError naming the registered models
    path = Path(store.model_path(dataset_name, model_name))
    meta = path / META_FILE
    if not meta.is_file():
        raise NotFoundError(
            f"model {model_name!r} is not trained for dataset {dataset_name!r}: "
            f"run `animerec train {model_name}`"
        )
    stat = meta.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _model_cache.get(key)
        if cached is not None:
            _model_cache.move_to_end(key)
            return cached
    model = load_model(path)
    _remember(_model_cache, key, model)
    return model


def clear_caches() -> None:
    """Forget every cached dataset and model."""
    with _cache_lock:
        _dataset_cache.clear()
        _model_cache.clear()


def _dataset_stamp(store, dataset_name: str) -> object:
    """Return a value that changes whenever the named dataset is written again."""
    for info in store.list_datasets():
        if info.get("name") == dataset_name:
            return tuple(sorted((k, str(v)) for k, v in info.items()))
    return None  # load_dataset raises NotFoundError for it


def _remember(cache: OrderedDict, key: tuple, value: object) -> None:
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)


# --- small helpers -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _threadpool_controller():
    # Building a controller inspects every loaded library (about 1 ms), so build it once.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _single_row(item_idx: np.ndarray, n_items: int) -> sp.csr_matrix:
    item_idx = np.asarray(item_idx, dtype=np.int32)
    data = np.ones(item_idx.size, dtype=np.float32)
    indptr = np.array([0, item_idx.size], dtype=np.int32)
    return sp.csr_matrix((data, item_idx, indptr), shape=(1, n_items))


def _is_missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))
