"""Run models side by side under one evaluation protocol and collect their metrics.

Top-n protocols fit each model on the split's training data, score the evaluated users in
batches (fold-in through `score_histories` for strong generalization, `score_users`
otherwise), rank with the shared `Ranker` (fold-in items excluded) and compare the lists
with the targets. Rating protocols fit on each fold's training ratings and compare
`predict_ratings` with the held-out ratings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp

import animerec
from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError
from animerec.evaluation import metrics as m
from animerec.evaluation.splits import (
    DEFAULT_MIN_HISTORY,
    STRONG_MIN_HISTORY,
    CutTime,
    RankingSplit,
    RatingFold,
    leave_k_out_split,
    has_split_files,
    load_split_dir,
    predefined_fold_names,
    predefined_rating_folds,
    rating_holdout_split,
    rating_kfold_splits,
    save_split_dir,
    strong_generalization_split,
    temporal_global_split,
    temporal_split,
    user_holdout_split,
)
from animerec.models.base import Recommender, iter_chunks
from animerec.models.registry import get_model_class
from animerec.ranking import Ranker, RankingOptions

logger = logging.getLogger(__name__)

Protocol = Literal[
    "strong-generalization",
    "user-holdout",
    "leave-k-out",
    "temporal",
    "temporal-global",
    "rating-holdout",
    "rating-kfold",
    "rating-predefined",
]
RANKING_PROTOCOLS = (
    "strong-generalization", "user-holdout", "leave-k-out", "temporal", "temporal-global"
)
RATING_PROTOCOLS = ("rating-holdout", "rating-kfold", "rating-predefined")
PROTOCOLS = RANKING_PROTOCOLS + RATING_PROTOCOLS

# Fold-in history lengths, as (label, smallest, largest) with None for no upper bound.
HISTORY_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2-5", 2, 5),
    ("6-20", 6, 20),
    ("21+", 21, None),
)

# Groups of candidate items with equal shares of training watches, for the long-tail profile.
POPULARITY_GROUPS = 10

# Rows of (user, item) pairs passed to predict_ratings at once.
RATING_BATCH = 200_000


@dataclasses.dataclass(frozen=True)
class RankingContext:
    """Inputs of the top-n metrics besides the lists and targets."""

    k: int
    recall_k: int
    candidates: np.ndarray  # items the ranking filters allow (bool over item positions)
    item_counts: np.ndarray  # training users who watched each item
    n_train_users: int
    item_genres: sp.csr_matrix

    @property
    def n_candidate_items(self) -> int:
        return max(int(np.count_nonzero(self.candidates)), 1)


def ranking_metric_names(k: int, recall_k: int) -> list[str]:
    """Return the top-n metric names in report order."""
    names = [f"recall@{recall_k}", f"ndcg@{k}", f"precision@{k}", f"map@{k}", f"hit_rate@{k}"]
    names += [f"mrr@{k}", f"coverage@{k}", f"novelty@{k}", f"ild@{k}", f"gini@{k}"]
    names += [f"user_coverage@{k}", f"mean_popularity@{k}"]
    if recall_k != k:
        names.insert(1, f"recall@{k}")
    return names


def evaluate(
    dataset: Dataset,
    model_specs: Sequence[tuple[str, dict[str, Any]]],
    protocol: str = "strong-generalization",
    *,
    seed: int = 42,
    test_users: float | int | None = None,
    fold_in_fraction: float = 0.8,
    min_history: int | None = None,
    fold_in_max: int | None = None,
    test_fraction: float = 0.2,
    cut_time: CutTime | None = None,
    leave_k: int = 1,
    n_folds: int = 5,
    fold_set: str = "folds",
    split_dir: str | Path | None = None,
    split_overlap: Literal["raise", "drop"] = "drop",
    k: int = 10,
    recall_k: int = 20,
    include_adult: bool = False,
    batch_size: int = 1000,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    report_dir: str | Path | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate models side by side and return a JSON-ready result.

    `model_specs` lists (registered model name, parameters). A model whose config has a
    `random_state` field and no value for it gets `seed`. Settings by protocol:

    - strong-generalization: `test_users` (fraction of eligible users or a count; default
      0.2), `fold_in_fraction`, `min_history` (default 2: everyone with a fold-in and a
      target) and `fold_in_max` (None; a count caps each fold-in, "given N"). With `split_dir`, the split is read from
      fold_in.csv and target.csv there when they exist (`split_overlap` decides what
      happens to split users that are also in the dataset), else it is drawn and saved
      there so later runs reuse it.
    - user-holdout and temporal: `test_fraction` of each user's history is the target;
      `test_users` (default: all eligible) and `min_history` (default 5).
    - temporal-global: one cut time for all users, `cut_time` (Unix seconds or an ISO 8601
      date, read as UTC) or else the time with about `test_fraction` of all interactions at
      or after it. Training is everything before the cut. Users with `min_history`
      (default 5) interactions before it and one after are evaluated (or `test_users` of
      them). The cut is stored in `protocol.settings`.
    - leave-k-out: `leave_k` items per user are the target.
    - rating-holdout: `test_fraction` of all ratings; rating-kfold: `n_folds`;
      rating-predefined: the folds in `dataset.metadata[fold_set]` (MovieLens 100K: "folds"
      for u1..u5, "folds_ab" for ua/ub).

    Top-n metrics are cut at `k` (recall also at `recall_k`), lists exclude adult titles
    unless `include_adult`, and every metric gets a bootstrap confidence interval over users
    (`n_bootstrap` resamples, seeded from `seed`). With `report_dir`, an HTML report is
    written there too. Returned values that are undefined (no user to average) are None.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    if split_dir is not None and protocol != "strong-generalization":
        raise ConfigError(
            f"split_dir contains a strong-generalization split, so it cannot be combined with protocol {protocol!r}"
        )
    if not model_specs:
        raise ConfigError("no models to evaluate: pass at least one (name, parameters) pair")
    if int(k) < 1 or int(recall_k) < 1:
        raise ConfigError(f"k and recall_k must be at least 1, got {k} and {recall_k}")
    notify = progress or (lambda step: None)
    names = _display_names(model_specs)
    for name, _ in model_specs:
        get_model_class(name)  # an unknown name fails before any work

    if min_history is None:
        min_history = STRONG_MIN_HISTORY if protocol == "strong-generalization" else DEFAULT_MIN_HISTORY
    if fold_in_max is not None and protocol != "strong-generalization":
        raise ConfigError(
            f"fold_in_max applies to strong-generalization only, not to protocol {protocol!r}"
        )
    if cut_time is not None and protocol != "temporal-global":
        raise ConfigError(f"cut_time applies to temporal-global only, not to protocol {protocol!r}")

    started = time.perf_counter()
    if protocol in RATING_PROTOCOLS:
        result = _evaluate_ratings(
            dataset, model_specs, names, protocol, seed=seed, test_fraction=test_fraction,
            n_folds=n_folds, fold_set=fold_set, notify=notify,
        )
    else:
        result = _evaluate_ranking(
            dataset, model_specs, names, protocol, seed=seed, test_users=test_users,
            fold_in_fraction=fold_in_fraction, min_history=min_history, fold_in_max=fold_in_max,
            test_fraction=test_fraction, cut_time=cut_time, leave_k=leave_k, split_dir=split_dir,
            split_overlap=split_overlap, k=int(k), recall_k=int(recall_k),
            include_adult=include_adult, batch_size=batch_size, n_bootstrap=n_bootstrap,
            confidence=confidence, notify=notify,
        )

    interactions = dataset.interactions
    result["dataset"] = {
        "name": dataset.name,
        "format": dataset.format,
        "n_users": interactions.n_users,
        "n_items": interactions.n_items,
        "n_interactions": interactions.nnz,
        "n_ratings": int(interactions.ratings.nnz),
    }
    result["site_aggregates_used_by"] = [
        name for name, data in result["models"].items() if data.get("uses_site_aggregates")
    ]
    call_settings = {
        "seed": seed, "test_users": test_users, "fold_in_fraction": fold_in_fraction,
        "min_history": min_history, "fold_in_max": fold_in_max,
        "test_fraction": test_fraction,
        "cut_time": cut_time.isoformat() if isinstance(cut_time, dt.date) else cut_time,
        "leave_k": leave_k,
        "n_folds": n_folds, "fold_set": fold_set, "split_dir": None if split_dir is None else str(split_dir),
        "split_overlap": split_overlap, "k": k, "recall_k": recall_k,
        "include_adult": include_adult, "n_bootstrap": n_bootstrap, "confidence": confidence,
    }
    result["settings"] = call_settings
    result["command"] = command or _default_command(protocol, model_specs, call_settings)
    result["library_version"] = animerec.__version__
    result["created"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result["total_seconds"] = round(time.perf_counter() - started, 3)
    result = _json_ready(result)

    if report_dir is not None:
        from animerec.evaluation.report import write_report

        result["report"] = str(write_report(result, report_dir))
    return result


# --- model handling ----------------------------------------------------------------------


def _display_names(model_specs: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Name each run by its model; repeated models get their parameters appended."""
    counts: dict[str, int] = {}
    for name, _ in model_specs:
        counts[name] = counts.get(name, 0) + 1
    names = []
    for name, params in model_specs:
        if counts[name] > 1:
            described = ",".join(f"{key}={value}" for key, value in sorted(params.items()))
            label = f"{name}({described})"
        else:
            label = name
        if label in names:
            label = f"{label}#{len(names) + 1}"
        names.append(label)
    return names


def _create(name: str, params: dict[str, Any], seed: int) -> Recommender:
    model_class = get_model_class(name)
    params = dict(params)
    fields = {f.name for f in dataclasses.fields(model_class.config_class)}
    if "random_state" in fields and "random_state" not in params:
        params["random_state"] = seed
    return model_class(**params)


def _model_info(model: Recommender) -> dict[str, Any]:
    return {
        "model": model.name,
        "params": model.config.to_dict(),
        "uses_site_aggregates": bool(getattr(model, "uses_site_aggregates", False)),
    }


def _with_interactions(dataset: Dataset, interactions: Interactions) -> Dataset:
    """Return the dataset with other interactions, so content models still see the catalogue."""
    return dataclasses.replace(dataset, interactions=interactions)


# --- top-n protocols ---------------------------------------------------------------------


def make_ranking_split(
    dataset: Dataset,
    protocol: str,
    *,
    seed: int,
    test_users: float | int | None,
    fold_in_fraction: float,
    min_history: int,
    test_fraction: float,
    leave_k: int,
    split_dir: str | Path | None,
    split_overlap: Literal["raise", "drop"] = "drop",
    fold_in_max: int | None = None,
    cut_time: CutTime | None = None,
) -> RankingSplit:
    """Build the split of a top-n protocol (see `evaluate` for the settings)."""
    interactions = dataset.interactions
    if split_dir is not None and has_split_files(split_dir):
        return load_split_dir(split_dir, dataset, overlap=split_overlap)
    if protocol == "strong-generalization":
        split = strong_generalization_split(
            interactions,
            test_users=0.2 if test_users is None else test_users,
            fold_in_fraction=fold_in_fraction,
            min_history=min_history,
            fold_in_max=fold_in_max,
            random_state=seed,
        )
        if split_dir is not None:
            save_split_dir(split, split_dir)
            split.settings["saved_to"] = str(Path(split_dir).resolve())
            logger.info("split saved to %s", split_dir)
        return split
    if protocol == "user-holdout":
        return user_holdout_split(
            interactions, test_users=test_users, test_fraction=test_fraction,
            min_history=min_history, random_state=seed,
        )
    if protocol == "leave-k-out":
        return leave_k_out_split(
            interactions, leave_k=leave_k, test_users=test_users, min_history=min_history,
            random_state=seed,
        )
    if protocol == "temporal-global":
        return temporal_global_split(
            interactions, test_fraction=test_fraction, cut_time=cut_time,
            test_users=test_users, min_history=min_history, random_state=seed,
        )
    return temporal_split(
        interactions, test_fraction=test_fraction,
        test_users=test_users, min_history=min_history, random_state=seed,
    )


def _evaluate_ranking(
    dataset: Dataset,
    model_specs: Sequence[tuple[str, dict[str, Any]]],
    names: list[str],
    protocol: str,
    *,
    seed: int,
    test_users: float | int | None,
    fold_in_fraction: float,
    min_history: int,
    fold_in_max: int | None,
    test_fraction: float,
    cut_time: CutTime | None,
    leave_k: int,
    split_dir: str | Path | None,
    split_overlap: Literal["raise", "drop"],
    k: int,
    recall_k: int,
    include_adult: bool,
    batch_size: int,
    n_bootstrap: int,
    confidence: float,
    notify: Callable[[str], None],
) -> dict[str, Any]:
    notify(f"splitting ({'split folder' if split_dir else protocol})")
    split = make_ranking_split(
        dataset, protocol, seed=seed, test_users=test_users, fold_in_fraction=fold_in_fraction,
        min_history=min_history, test_fraction=test_fraction, leave_k=leave_k,
        split_dir=split_dir, split_overlap=split_overlap, fold_in_max=fold_in_max,
        cut_time=cut_time,
    )
    train_dataset = _with_interactions(dataset, split.train)
    list_length = max(k, recall_k)
    options = RankingOptions(n=list_length, exclude_seen=True, include_adult=include_adult)
    ranker = Ranker(dataset.catalog, dataset.interactions.items)

    item_counts = np.asarray(split.train.user_items.getnnz(axis=0), dtype=np.int64)
    candidates = np.array(ranker.candidate_mask(options), dtype=bool)
    context = RankingContext(
        k=k,
        recall_k=recall_k,
        candidates=candidates,
        item_counts=item_counts,
        n_train_users=max(int(np.count_nonzero(np.diff(split.train.user_items.indptr))), 1),
        item_genres=genre_matrix(dataset),
    )
    history_lengths = np.diff(split.fold_in.user_items.indptr)
    popularity_group = popularity_groups(item_counts, candidates)
    target = split.target.user_items
    bootstrap_seed = [int(seed), 1]

    models: dict[str, Any] = {}
    for label, (name, params) in zip(names, model_specs):
        model = _create(name, params, seed)
        notify(f"fitting {label}")
        fit_started = time.perf_counter()
        model.fit(train_dataset)
        fit_seconds = time.perf_counter() - fit_started

        notify(f"ranking for {split.n_users} users with {label}")
        rank_started = time.perf_counter()
        recommended = rank_split(model, split, ranker, options, batch_size)
        rank_seconds = time.perf_counter() - rank_started

        metrics_started = time.perf_counter()
        per_user, aggregate = ranking_metrics(recommended, target, context)
        values = summarize(per_user, aggregate)
        rng = np.random.default_rng(bootstrap_seed)
        intervals = bootstrap_intervals(
            per_user, recommended, context, rng, n_bootstrap, confidence
        )
        buckets = by_history_length(
            per_user, recommended, target, history_lengths, context, rng, n_bootstrap, confidence
        )
        profile = popularity_profile(recommended[:, :k], popularity_group)
        metrics_seconds = time.perf_counter() - metrics_started

        entry: dict[str, Any] = dict(values)
        entry["ci"] = intervals
        entry["by_history_length"] = buckets
        entry["popularity_profile"] = profile
        entry["n_users"] = int(split.n_users)
        entry["timing"] = {
            "fit_seconds": round(fit_seconds, 3),
            "rank_seconds": round(rank_seconds, 3),
            "metrics_seconds": round(metrics_seconds, 3),
        }
        entry.update(_model_info(model))
        models[label] = entry
        logger.info(
            "%s: ndcg@%d=%.4f recall@%d=%.4f (fit %.1fs, rank %.1fs)",
            label, k, values[f"ndcg@{k}"], recall_k, values[f"recall@{recall_k}"],
            fit_seconds, rank_seconds,
        )

    settings = dict(split.settings)
    if split_dir is None:
        settings.setdefault("seed", seed)
    return {
        "kind": "ranking",
        "metrics": ranking_metric_names(k, recall_k),
        "models": models,
        "protocol": {
            "name": split.protocol,
            "seed": int(seed),
            "settings": settings,
            "n_test_users": int(split.n_users),
            # Users with at least one training interaction: under temporal-global the
            # training matrix also has empty rows for users active only after the cut.
            "n_train_users": context.n_train_users,
            "n_target_items": int(target.nnz),
            "k": k,
            "recall_k": recall_k,
            "ranking": {
                "n": list_length,
                "exclude_seen": True,
                "include_adult": include_adult,
                "collapse_franchises": False,
            },
            "coverage_items": int(context.n_candidate_items),
            "target_popularity_profile": popularity_profile(
                _target_lists(target), popularity_group
            ),
            "popularity_groups": POPULARITY_GROUPS,
            "bootstrap": {
                "n_resamples": int(n_bootstrap),
                "confidence": confidence,
                "seed": bootstrap_seed,
                "unit": "user",
                "per_user_metrics": "percentile interval of the mean over resampled users",
                "aggregate_metrics": "full-sample value ± z × bootstrap standard deviation "
                "(coverage, gini, user_coverage)",
            },
            "history_buckets": [label for label, _, _ in HISTORY_BUCKETS],
            "notes": [
                "targets keep items the ranking filters exclude (adult titles unless "
                "include_adult), so such items count as misses",
                "history length is the fold-in size of each evaluated user",
                "coverage and gini count over the coverage_items anime that the ranking "
                "filters allow, including anime no training user watched",
            ],
        },
    }


def rank_split(
    model: Recommender,
    split: RankingSplit,
    ranker: Ranker,
    options: RankingOptions,
    batch_size: int = 1000,
) -> np.ndarray:
    """Return the ranked item positions per evaluated user (n_users × options.n, -1 padded).

    Scores are computed for `batch_size` users at a time, so memory stays at one batch ×
    n_items block whatever the number of users.
    """
    recommended = np.full((split.n_users, options.n), -1, dtype=np.int64)
    for rows in iter_chunks(split.n_users, max(1, int(batch_size))):
        if split.train_user_idx is None:
            histories = split.fold_in.select_users(np.arange(rows.start, rows.stop))
            scores = model.score_histories(histories)
        else:
            scores = model.score_users(split.train_user_idx[rows])
        seen = split.fold_in.user_items[rows]
        lists = ranker.rank(scores, options, seen=seen)
        for offset, items in enumerate(lists):
            positions = [recommendation.item_idx for recommendation in items]
            recommended[rows.start + offset, : len(positions)] = positions
    return recommended


def genre_matrix(dataset: Dataset) -> sp.csr_matrix:
    """Return an items × genres 0/1 matrix in the dataset's item order."""
    aligned = dataset.catalog.aligned(dataset.interactions.items)
    labels = dataset.catalog.genre_labels()
    column = {label: number for number, label in enumerate(labels)}
    rows: list[int] = []
    cols: list[int] = []
    for position, genres in enumerate(aligned["genres"]):
        if isinstance(genres, tuple):
            for genre in genres:
                rows.append(position)
                cols.append(column[genre])
    shape = (len(aligned), max(len(labels), 1))
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=shape)


def popularity_groups(item_counts: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Return each item's popularity group, 0 (most watched) .. POPULARITY_GROUPS - 1.

    Candidate items are sorted by training watch count (descending, ties by position) and
    cut where the running share of all their watches crosses 1/G, 2/G, ... for G groups. So
    each group contains about the same number of watches. The first group has a few hit
    titles, and the last one the long tail. Items outside the candidates get -1.
    """
    groups = np.full(item_counts.size, -1, dtype=np.int64)
    positions = np.flatnonzero(candidates)
    if positions.size == 0:
        return groups
    order = positions[np.lexsort((positions, -item_counts[positions]))]
    counts = item_counts[order].astype(np.float64)
    total = counts.sum()
    if total <= 0:
        groups[order] = POPULARITY_GROUPS - 1
        return groups
    share_before = (np.cumsum(counts) - counts) / total
    groups[order] = np.minimum((share_before * POPULARITY_GROUPS).astype(np.int64), POPULARITY_GROUPS - 1)
    return groups


def popularity_profile(lists: np.ndarray, groups: np.ndarray) -> list[float]:
    """Return the share of listed items in each popularity group.

    The shares sum to 1, or are all 0 when no item is listed. Items outside every group are
    left out."""
    items = lists[lists >= 0]
    grouped = groups[items]
    grouped = grouped[grouped >= 0]
    counts = np.bincount(grouped, minlength=POPULARITY_GROUPS).astype(np.float64)
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * POPULARITY_GROUPS


def _target_lists(target: sp.csr_matrix) -> np.ndarray:
    """Return the target items as one padded row, for `popularity_profile`."""
    return target.indices.astype(np.int64)[None, :]


def ranking_metrics(
    recommended: np.ndarray, target: sp.csr_matrix, context: RankingContext
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Return (per-user metric arrays, aggregate metric values) for padded lists."""
    k, recall_k = context.k, context.recall_k
    hits_k, n_relevant = m.relevance(recommended, target, k)
    hits_recall, _ = m.relevance(recommended, target, recall_k)
    per_user = {
        f"recall@{recall_k}": m.recall_from_hits(hits_recall, n_relevant),
        f"ndcg@{k}": m.ndcg_from_hits(hits_k, n_relevant),
        f"precision@{k}": m.precision_from_hits(hits_k, n_relevant),
        f"map@{k}": m.average_precision_from_hits(hits_k, n_relevant),
        f"hit_rate@{k}": m.hit_rate_from_hits(hits_k, n_relevant),
        f"mrr@{k}": m.reciprocal_rank_from_hits(hits_k, n_relevant),
        f"novelty@{k}": m.novelty_at_k(recommended, k, context.item_counts, context.n_train_users),
        f"ild@{k}": m.intra_list_diversity_at_k(recommended, k, context.item_genres),
        f"mean_popularity@{k}": m.mean_popularity_at_k(
            recommended, k, context.item_counts, context.n_train_users
        ),
    }
    if recall_k != k:
        per_user[f"recall@{k}"] = m.recall_from_hits(hits_k, n_relevant)
    aggregate = _aggregate_metrics(recommended, context)
    return per_user, aggregate


def _aggregate_metrics(recommended: np.ndarray, context: RankingContext) -> dict[str, float]:
    k = context.k
    return {
        f"coverage@{k}": m.coverage_at_k(recommended, k, context.n_candidate_items),
        f"gini@{k}": m.gini_at_k(
            recommended, k, int(context.candidates.size), context.candidates
        ),
        f"user_coverage@{k}": m.user_coverage_at_k(recommended, k),
    }


def summarize(per_user: dict[str, np.ndarray], aggregate: dict[str, float]) -> dict[str, float]:
    """Average the per-user metrics (users with undefined values skipped) and add aggregates."""
    values = {name: m.mean(array) for name, array in per_user.items()}
    values.update(aggregate)
    return values


def bootstrap_intervals(
    per_user: dict[str, np.ndarray],
    recommended: np.ndarray,
    context: RankingContext,
    rng: np.random.Generator,
    n_resamples: int,
    confidence: float,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals over users for every top-n metric."""
    intervals: dict[str, list[float]] = {}
    for name in sorted(per_user):
        intervals[name] = list(m.bootstrap_mean_ci(per_user[name], rng, n_resamples, confidence))
    n_users = recommended.shape[0]
    estimates = _aggregate_metrics(recommended, context)
    resampled: dict[str, list[float]] = {name: [] for name in estimates}
    for _ in range(n_resamples if n_users else 0):
        rows = rng.integers(0, n_users, size=n_users)
        for name, value in _aggregate_metrics(recommended[rows], context).items():
            resampled[name].append(value)
    for name, estimate in estimates.items():
        intervals[name] = list(
            m.normal_interval(estimate, np.array(resampled[name]), confidence)
        )
    return intervals


def by_history_length(
    per_user: dict[str, np.ndarray],
    recommended: np.ndarray,
    target: sp.csr_matrix,
    history_lengths: np.ndarray,
    context: RankingContext,
    rng: np.random.Generator | None = None,
    n_resamples: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Return the metrics of each fold-in length bucket (empty buckets: n_users 0 only).

    The "0" bucket appears only when some evaluated user has an empty fold-in history.
    With `rng` and `n_resamples`, each non-empty bucket also gets `ci`: percentile
    bootstrap intervals over its users for the per-user metrics (a bucket of few users gets
    a wide interval, which is the point).
    """
    buckets: dict[str, dict[str, Any]] = {}
    for label, low, high in HISTORY_BUCKETS:
        inside = history_lengths >= low
        if high is not None:
            inside &= history_lengths <= high
        rows = np.flatnonzero(inside)
        if label == "0" and rows.size == 0:
            continue
        entry: dict[str, Any] = {"n_users": int(rows.size)}
        if rows.size:
            subset = {name: array[rows] for name, array in per_user.items()}
            entry.update(summarize(subset, _aggregate_metrics(recommended[rows], context)))
            if rng is not None and n_resamples > 0:
                entry["ci"] = {
                    name: list(m.bootstrap_mean_ci(subset[name], rng, n_resamples, confidence))
                    for name in sorted(subset)
                }
        buckets[label] = entry
    return buckets


# --- rating protocols --------------------------------------------------------------------


def _predicts_ratings(model_class: type) -> bool:
    return getattr(model_class, "predict_ratings", None) is not Recommender.predict_ratings


def _evaluate_ratings(
    dataset: Dataset,
    model_specs: Sequence[tuple[str, dict[str, Any]]],
    names: list[str],
    protocol: str,
    *,
    seed: int,
    test_fraction: float,
    n_folds: int,
    fold_set: str,
    notify: Callable[[str], None],
) -> dict[str, Any]:
    interactions = dataset.interactions
    notify(f"splitting ({protocol})")
    if protocol == "rating-holdout":
        folds = [rating_holdout_split(interactions, test_fraction=test_fraction, random_state=seed)]
        settings: dict[str, Any] = {"test_fraction": float(test_fraction)}
        fold_names = ["holdout"]
    elif protocol == "rating-kfold":
        folds = rating_kfold_splits(interactions, n_folds=n_folds, random_state=seed)
        settings = {"n_folds": int(n_folds)}
        fold_names = [f"fold {number}" for number in range(1, len(folds) + 1)]
    else:
        folds = predefined_rating_folds(dataset, fold_set)
        fold_names = predefined_fold_names(dataset, fold_set)
        settings = {"fold_set": fold_set, "fold_names": fold_names}

    models: dict[str, Any] = {}
    for label, (name, params) in zip(names, model_specs):
        model_class = get_model_class(name)
        if not _predicts_ratings(model_class):
            models[label] = {"skipped": f"model {name!r} does not predict ratings"}
            models[label].update(_model_info(_create(name, params, seed)))
            logger.info("skipping %s: it does not predict ratings", label)
            continue
        per_fold = []
        model: Recommender | None = None
        for number, fold in enumerate(folds, start=1):
            model = _create(name, params, seed)
            notify(f"fitting {label} on fold {number}/{len(folds)}")
            fit_started = time.perf_counter()
            model.fit(_with_interactions(dataset, fold.train))
            fit_seconds = time.perf_counter() - fit_started
            predict_started = time.perf_counter()
            predicted = predict_fold(model, fold)
            per_fold.append(
                {
                    "name": fold_names[number - 1],
                    "rmse": m.rmse(predicted, fold.ratings),
                    "mae": m.mae(predicted, fold.ratings),
                    "n_test": int(fold.ratings.size),
                    "fit_seconds": round(fit_seconds, 3),
                    "predict_seconds": round(time.perf_counter() - predict_started, 3),
                }
            )
        entry: dict[str, Any] = {}
        for metric in ("rmse", "mae"):
            values = np.array([fold_result[metric] for fold_result in per_fold])
            entry[metric] = float(values.mean())
            # Sample standard deviation over folds (ddof=1); undefined for a single fold.
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else None
        entry["folds"] = per_fold
        entry["timing"] = {
            "fit_seconds": round(sum(f["fit_seconds"] for f in per_fold), 3),
            "predict_seconds": round(sum(f["predict_seconds"] for f in per_fold), 3),
        }
        assert model is not None
        entry.update(_model_info(model))
        models[label] = entry

    return {
        "kind": "rating",
        "metrics": ["rmse", "mae"],
        "models": models,
        "protocol": {
            "name": protocol,
            "seed": int(seed),
            "settings": settings,
            "n_folds": len(folds),
            "n_test_ratings": [int(fold.ratings.size) for fold in folds],
            "notes": [
                "rmse and mae are means over folds; *_std is the sample standard deviation "
                "over folds (ddof=1)",
                "test pairs are removed from both the rating and the watched view of training",
            ],
        },
    }


def predict_fold(model: Recommender, fold: RatingFold) -> np.ndarray:
    """Predict the held-out ratings of a fold in batches."""
    predicted = np.empty(fold.ratings.size, dtype=np.float64)
    for rows in iter_chunks(fold.ratings.size, RATING_BATCH):
        predicted[rows] = np.asarray(
            model.predict_ratings(fold.user_idx[rows], fold.item_idx[rows]), dtype=np.float64
        )
    return predicted


# --- output ------------------------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    """Convert numpy scalars to Python numbers and NaN/inf to None, recursively."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return [_json_ready(item) for item in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _default_command(
    protocol: str, model_specs: Sequence[tuple[str, dict[str, Any]]], settings: dict[str, Any]
) -> str:
    """Return the command line when run from the animerec CLI, else the equivalent Python call."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is not None and program.name == "animerec":
        return " ".join(shlex.quote(part) for part in ["animerec", *sys.argv[1:]])
    if program is not None and program.name == "__main__.py" and program.parent.name == "animerec":
        return " ".join(shlex.quote(part) for part in ["python", "-m", "animerec", *sys.argv[1:]])
    arguments = ", ".join(f"{key}={value!r}" for key, value in sorted(settings.items()))
    specs = [(name, dict(params)) for name, params in model_specs]
    return (
        "animerec.evaluation.runner.evaluate(dataset, "
        f"{specs!r}, protocol={protocol!r}, {arguments})"
    )
