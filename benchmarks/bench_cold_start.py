"""Cold-start quality: short histories, anime nobody watched, demographics, franchise collapsing.

Four measurements on the real data under ../shared/data (the script exits with a message
when it is absent):

- `history`: anime-2016, strong generalization (20 % of users with at least 5 titles held
  out, 80 % of each one's titles folded in, the rest the target). Every model is fitted once
  on the training users. Each held-out user is then folded in with only h of their fold-in
  titles (h = 1, 2, 3, 5, drawn at random) and with all of them. The target stays the same,
  and every fold-in title is excluded from the lists whatever h is, so only the information
  given to the model changes. Reports NDCG@10 and recall@20 per h and model.
- `collapse`: the same split with all fold-in titles; NDCG@10 with and without franchise
  collapsing (groups from titles, and from the franchise file when present), and a check
  that no collapsed list holds two titles of one group.
- `new-anime`: anime-2016 with 10 % of the watched anime hidden: their interactions are
  removed from training, so no model has seen anyone watch them. Held-out users are folded
  in without them, and for each user with a hidden title in their target, AUC is the chance
  that a hidden title they watched scores above a hidden title they did not; recall@20 is
  measured on lists restricted to the hidden anime. Random scores are the reference.
- `demographics`: MovieLens 100K, strong generalization as above with h = 0..3 ratings
  folded in. Compares popularity, the hybrid without user features and the hybrid with
  age, gender and occupation (the held-out users' features are passed at fold-in).

- `runner` (not in the default set): the runner's strong generalization on anime-2016 with
  its default settings (test users with 2 or more titles), as `animerec evaluate --seed S`
  runs it: NDCG@10 overall and per fold-in length bucket with bootstrap intervals, then the
  same test users with fold-ins cut to h = 1, 2, 3, 5 titles (`--fold-in-max h`, the rest
  joining the target). Per bucket, the paired difference hybrid − best collaborative model
  (popular, itemknn, als or ease, whichever is highest there) with a 95 % interval.
- `reasons`: milliseconds to build the reasons of one list of 10 (the service's explainer)
  for 100 random people with 20 rated titles, per model fitted in `history`.

Usage: python benchmarks/bench_cold_start.py [history collapse reasons new-anime demographics
runner] [--seed S] (default: all but runner; --seed sets the runner part's split). Results
go to benchmarks/results/cold-start-<UTC time>.json and a table on stdout. Measured on the development machine (2 CPU cores, BLAS limited to 2 threads).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from animerec.data.interactions import Dataset, Interactions
from animerec.evaluation import metrics
from animerec.evaluation.splits import strong_generalization_split
from animerec.franchise import load_franchises
from animerec.models.registry import create_model
from animerec.ranking import Ranker, RankingOptions

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ANIMEREC_TEST_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
SEED = 42
K = 10
RECALL_K = 20
HISTORY_LENGTHS = (1, 2, 3, 5)
ANIME_MODELS: list[tuple[str, dict[str, Any]]] = [
    ("popular", {}),
    ("itemknn", {}),
    ("als", {}),
    ("ease", {}),
    ("content", {}),
    ("hybrid", {}),
]
CF_MODELS = ("itemknn", "als", "ease")
HIDDEN_SHARE = 0.1

logger = logging.getLogger("bench_cold_start")


# --- data and splits -----------------------------------------------------------------------


def load(format_name: str, folder: str) -> Dataset:
    from animerec.data.loaders import load_format

    directory = DATA / folder
    if not directory.is_dir():
        sys.exit(f"real data not found at {directory}; set ANIMEREC_TEST_DATA")
    dataset, _ = load_format(format_name, directory)
    return dataset


def with_interactions(dataset: Dataset, interactions: Interactions) -> Dataset:
    import dataclasses

    return dataclasses.replace(dataset, interactions=interactions)


def truncate(fold_in: Interactions, length: int, rng: np.random.Generator) -> tuple[Interactions, np.ndarray]:
    """Keep `length` random fold-in titles per user (users with fewer keep all of them).

    Returns the truncated fold-in and a mask of the users who had at least `length` titles.
    """
    user_items = sp.csr_matrix(fold_in.user_items)
    ratings = sp.csr_matrix(fold_in.ratings)
    rows, cols, values, kept_ratings = [], [], [], []
    enough = np.diff(user_items.indptr) >= max(length, 1)
    for user in range(user_items.shape[0]):
        start, end = user_items.indptr[user], user_items.indptr[user + 1]
        chosen = rng.permutation(np.arange(start, end))[:length]
        rows.extend([user] * chosen.size)
        cols.extend(user_items.indices[chosen].tolist())
        values.extend(user_items.data[chosen].tolist())
        rated = ratings[user].toarray().ravel()
        kept_ratings.extend(rated[user_items.indices[chosen]].tolist())
    shape = user_items.shape
    new_items = sp.csr_matrix((np.asarray(values, np.float32), (rows, cols)), shape=shape)
    rating_values = np.asarray(kept_ratings, np.float32)
    rated = rating_values > 0
    new_ratings = sp.csr_matrix(
        (rating_values[rated], (np.asarray(rows)[rated], np.asarray(cols)[rated])), shape=shape
    )
    new_items.sort_indices()
    new_ratings.sort_indices()
    return Interactions(fold_in.users, fold_in.items, new_items, new_ratings, fold_in.rating_scale), enough


def rank(
    model,
    histories: Interactions,
    excluded: sp.csr_matrix,
    ranker: Ranker,
    options: RankingOptions,
    user_features=None,
) -> np.ndarray:
    """Return ranked item positions (users × options.n, -1 padded) in batches of 500 users."""
    lists = np.full((histories.n_users, options.n), -1, dtype=np.int64)
    for start in range(0, histories.n_users, 500):
        rows = np.arange(start, min(start + 500, histories.n_users))
        part = histories.select_users(rows)
        if user_features is not None:
            scores = model.score_histories(part, user_features=user_features.iloc[rows])
        else:
            scores = model.score_histories(part)
        for offset, items in enumerate(ranker.rank(scores, options, seen=excluded[rows])):
            positions = [r.item_idx for r in items]
            lists[start + offset, : len(positions)] = positions
    return lists


def per_user_ndcg(lists: np.ndarray, target: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
    if users is not None:
        lists, target = lists[users], target[users]
    return metrics.ndcg_at_k(lists, target, K)


def paired_difference(first: np.ndarray, second: np.ndarray, n_bootstrap: int = 1000) -> dict[str, float]:
    """Mean of first − second over users with a 95 % percentile bootstrap interval."""
    valid = ~(np.isnan(first) | np.isnan(second))
    differences = first[valid] - second[valid]
    rng = np.random.default_rng(SEED)
    means = [differences[rng.integers(0, differences.size, differences.size)].mean() for _ in range(n_bootstrap)]
    return {
        "mean": round(float(differences.mean()), 4),
        "ci95": [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)],
    }


def quality(lists: np.ndarray, target: sp.csr_matrix, users: np.ndarray | None = None) -> dict[str, float]:
    if users is not None:
        lists, target = lists[users], target[users]
    return {
        f"ndcg@{K}": round(metrics.mean(metrics.ndcg_at_k(lists, target, K)), 4),
        f"recall@{RECALL_K}": round(metrics.mean(metrics.recall_at_k(lists, target, RECALL_K)), 4),
        "n_users": int(lists.shape[0]),
    }


def fit_models(dataset: Dataset, train: Interactions, specs) -> dict[str, Any]:
    fitted = {}
    for name, params in specs:
        started = time.perf_counter()
        fitted[name] = create_model(name, **params).fit(with_interactions(dataset, train))
        logger.info("fitted %s in %.1f s", name, time.perf_counter() - started)
    return fitted


# --- measurements --------------------------------------------------------------------------


def measure_history(dataset: Dataset, split, fitted: dict[str, Any]) -> dict[str, Any]:
    ranker = Ranker(dataset.catalog, dataset.interactions.items)
    options = RankingOptions(n=RECALL_K)
    excluded = sp.csr_matrix(split.fold_in.user_items)
    target = sp.csr_matrix(split.target.user_items)
    conditions: dict[str, tuple[Interactions, np.ndarray]] = {}
    rng = np.random.default_rng(SEED)
    for length in HISTORY_LENGTHS:
        conditions[str(length)] = truncate(split.fold_in, length, rng)
    conditions["all"] = (split.fold_in, np.ones(split.n_users, dtype=bool))

    table: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {}
    short_differences = np.full((split.n_users, len(HISTORY_LENGTHS)), np.nan)
    for label, (histories, users) in conditions.items():
        table[label] = {}
        per_user = {}
        for name, model in fitted.items():
            lists = rank(model, histories, excluded, ranker, options)
            table[label][name] = quality(lists, target, np.flatnonzero(users))
            per_user[name] = per_user_ndcg(lists, target, np.flatnonzero(users))
        logger.info("history %s: %s", label, {n: v[f"ndcg@{K}"] for n, v in table[label].items()})
        row = table[label]
        best_cf = max(CF_MODELS, key=lambda n: row[n][f"ndcg@{K}"])
        best_pure = max((n for n in row if n != "hybrid"), key=lambda n: row[n][f"ndcg@{K}"])
        summary[label] = {
            "best_cf": best_cf,
            "best_pure": best_pure,
            "hybrid_vs_best_cf": round(row["hybrid"][f"ndcg@{K}"] / row[best_cf][f"ndcg@{K}"] - 1, 4),
            "hybrid_vs_best_pure": round(row["hybrid"][f"ndcg@{K}"] / row[best_pure][f"ndcg@{K}"] - 1, 4),
            "hybrid_minus_best_cf_ndcg": paired_difference(per_user["hybrid"], per_user[best_cf]),
        }
        if label != "all":
            column = [str(h) for h in HISTORY_LENGTHS].index(label)
            short_differences[np.flatnonzero(users), column] = per_user["hybrid"] - per_user[best_cf]

    # People with at most 5 titles: each user's mean difference over h = 1, 2, 3, 5 (each
    # against that h's best collaborative model), bootstrapped over users.
    pooled = np.nanmean(short_differences, axis=1)
    summary["up_to_5"] = {
        "hybrid_minus_best_cf_ndcg": paired_difference(pooled, np.zeros_like(pooled)),
    }
    return {"by_fold_in_length": table, "summary": summary}


def measure_collapse(dataset: Dataset, split, fitted: dict[str, Any]) -> dict[str, Any]:
    excluded = sp.csr_matrix(split.fold_in.user_items)
    target = sp.csr_matrix(split.target.user_items)
    items = dataset.interactions.items
    sources = {"titles": None}
    collection = DATA / "anime-franchises" / "mal_collection.json"
    if collection.is_file():
        sources["file"] = collection
    result: dict[str, Any] = {}
    for source, path in sources.items():
        groups = load_franchises(dataset.catalog, items, path)
        ranker = Ranker(dataset.catalog, items, groups.franchise_of, groups.start_order)
        rows = {}
        for name, model in fitted.items():
            plain = rank(model, split.fold_in, excluded, ranker, RankingOptions(n=RECALL_K))
            collapsed = rank(
                model, split.fold_in, excluded, ranker, RankingOptions(n=RECALL_K, collapse_franchises=True)
            )
            duplicates = count_duplicate_groups(collapsed[:, :K], groups.franchise_of)
            plain_duplicates = count_duplicate_groups(plain[:, :K], groups.franchise_of)
            before, after = quality(plain, target), quality(collapsed, target)
            rows[name] = {
                f"ndcg@{K}_plain": before[f"ndcg@{K}"],
                f"ndcg@{K}_collapsed": after[f"ndcg@{K}"],
                "change": round(after[f"ndcg@{K}"] / before[f"ndcg@{K}"] - 1, 4) if before[f"ndcg@{K}"] else None,
                "lists_with_repeated_group_plain": plain_duplicates,
                "lists_with_repeated_group_collapsed": duplicates,
            }
        result[source] = {"n_groups": groups.n_groups, "models": rows}
        logger.info("collapse (%s): %s", source, rows)
    return result


def count_duplicate_groups(lists: np.ndarray, franchise_of: np.ndarray) -> int:
    count = 0
    for row in lists:
        groups = franchise_of[row[row >= 0]]
        groups = groups[groups >= 0]
        if groups.size != np.unique(groups).size:
            count += 1
    return count


def measure_new_anime(dataset: Dataset) -> dict[str, Any]:
    interactions = dataset.interactions
    rng = np.random.default_rng(SEED)
    watched = np.flatnonzero(interactions.user_items.getnnz(axis=0) > 0)
    hidden = np.sort(rng.choice(watched, size=int(round(HIDDEN_SHARE * watched.size)), replace=False))
    is_hidden = np.zeros(interactions.n_items, dtype=bool)
    is_hidden[hidden] = True

    split = strong_generalization_split(interactions, test_users=0.2, random_state=SEED)
    keep = sp.diags((~is_hidden).astype(np.float32))
    train = drop_columns(split.train, keep)
    fold_in = drop_columns(split.fold_in, keep)
    full = split.fold_in.user_items + split.target.user_items  # every title of each held-out user
    hidden_target = sp.csr_matrix(full @ sp.diags(is_hidden.astype(np.float32)))
    hidden_target.eliminate_zeros()
    users = np.flatnonzero(np.diff(hidden_target.indptr) > 0)

    fitted = fit_models(dataset, train, [("content", {}), ("hybrid", {}), ("ease", {})])
    ranker = Ranker(dataset.catalog, interactions.items)
    hidden_ids = tuple(int(a) for a in interactions.items.ids[hidden])
    options = RankingOptions(n=RECALL_K, allow=hidden_ids)
    excluded = sp.csr_matrix(fold_in.user_items)
    result: dict[str, Any] = {
        "n_hidden_anime": int(hidden.size),
        "n_users_with_hidden_titles": int(users.size),
    }
    for name, model in [*fitted.items(), ("random", None)]:
        aucs = []
        for start in range(0, users.size, 500):
            rows = users[start:start + 500]
            if model is None:
                scores = rng.random((rows.size, interactions.n_items)).astype(np.float32)
            else:
                scores = model.score_histories(fold_in.select_users(rows))
            for offset, user in enumerate(rows):
                aucs.append(auc(scores[offset, hidden], hidden_target[user].toarray().ravel()[hidden] > 0))
        if model is None:
            lists = np.full((users.size, RECALL_K), -1, dtype=np.int64)
            for row in range(users.size):
                order = rng.permutation(hidden)
                lists[row] = order[:RECALL_K]
        else:
            lists = rank(model, fold_in.select_users(users), excluded[users], ranker, options)
        result[name] = {
            "auc": round(float(np.nanmean(aucs)), 4),
            f"recall@{RECALL_K}_hidden_only": round(
                metrics.mean(metrics.recall_at_k(lists, hidden_target[users], RECALL_K)), 4
            ),
        }
        logger.info("new anime %s: %s", name, result[name])
    return result


def drop_columns(interactions: Interactions, keep: sp.spmatrix) -> Interactions:
    user_items = sp.csr_matrix(interactions.user_items @ keep)
    ratings = sp.csr_matrix(interactions.ratings @ keep)
    user_items.eliminate_zeros()
    ratings.eliminate_zeros()
    return Interactions(interactions.users, interactions.items, user_items, ratings, interactions.rating_scale)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted as one half; NaN without both classes."""
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def measure_demographics() -> dict[str, Any]:
    dataset = load("movielens-100k", "movielens-100k")
    split = strong_generalization_split(dataset.interactions, test_users=0.2, random_state=SEED)
    specs = [
        ("popular", {}),
        ("ease", {}),
        ("hybrid", {"use_user_features": False}),
        ("hybrid", {"use_user_features": True}),
    ]
    fitted = {}
    for name, params in specs:
        label = name
        if name == "hybrid" and params["use_user_features"]:
            label = "hybrid+demographics"
        fitted[label] = create_model(name, **params).fit(with_interactions(dataset, split.train))
    features = dataset.user_features.reindex(split.fold_in.users.ids)

    ranker = Ranker(dataset.catalog, dataset.interactions.items)
    options = RankingOptions(n=RECALL_K)
    excluded = sp.csr_matrix(split.fold_in.user_items)
    target = sp.csr_matrix(split.target.user_items)
    rng = np.random.default_rng(SEED)
    table: dict[str, dict[str, Any]] = {}
    for length in (0, 1, 2, 3):
        histories, _ = truncate(split.fold_in, length, rng)
        table[str(length)] = {}
        per_user = {}
        for label, model in fitted.items():
            with_features = features if label == "hybrid+demographics" else None
            lists = rank(model, histories, excluded, ranker, options, user_features=with_features)
            table[str(length)][label] = quality(lists, target)
            per_user[label] = per_user_ndcg(lists, target)
        table[str(length)]["demographics_minus_popular_ndcg"] = paired_difference(
            per_user["hybrid+demographics"], per_user["popular"]
        )
        logger.info("demographics h=%d: %s", length, table[str(length)])
    return {"n_test_users": int(split.n_users), "by_fold_in_length": table}


def measure_reasons(dataset: Dataset, fitted: dict[str, Any]) -> dict[str, Any]:
    """Time the reasons of one list of 10 for people with 20 titles (the service's explainer)."""
    from animerec.explain import service_reasons
    from animerec.service import RecommenderService

    rng = np.random.default_rng(SEED)
    watched = np.flatnonzero(dataset.interactions.user_items.getnnz(axis=0) > 0)
    result = {}
    for name in ("itemknn", "als", "ease", "content", "hybrid"):
        service = RecommenderService(dataset, fitted[name])
        options = RankingOptions(n=10)
        timings = []
        for _ in range(100):
            history_idx = np.sort(rng.choice(watched, size=20, replace=False)).astype(np.int32)
            ratings = rng.integers(5, 11, size=20).astype(np.float32)
            ranked = service.ranker.rank(fitted[name].item_similarities(int(history_idx[0]))[None, :], options)[0]
            started = time.perf_counter()
            service_reasons(service, history_idx, ratings, ranked, True)
            timings.append((time.perf_counter() - started) * 1000)
        result[name] = {
            "median_ms": round(float(np.median(timings)), 2),
            "p95_ms": round(float(np.percentile(timings, 95)), 2),
        }
        logger.info("reasons %s: %s", name, result[name])
    return result


def measure_runner(seed: int = SEED, n_bootstrap: int = 1000) -> dict[str, Any]:
    """Strong generalization exactly as `animerec evaluate --seed SEED` runs it (default
    settings: test users with 2 or more titles, 80 % folded in), plus the same test users
    with fold-ins cut to 1, 2, 3 and 5 titles (`--fold-in-max`).

    Keeps NDCG@10 overall and per fold-in length bucket with the runner's bootstrap
    intervals. Per bucket it also keeps the paired difference hybrid − best collaborative
    model (the one with the highest NDCG@10 in that bucket), with a percentile bootstrap
    interval over the bucket's users. "1-5" pools the two short buckets.
    """
    from animerec.evaluation import runner

    dataset = load("kaggle-2016", "anime-2016")
    splits = {
        cap: runner.make_ranking_split(
            dataset, "strong-generalization", seed=seed, test_users=None, fold_in_fraction=0.8,
            min_history=2, test_fraction=0.2, leave_k=1, split_dir=None, fold_in_max=cap,
        )
        for cap in (None, *HISTORY_LENGTHS)
    }
    base = splits[None]
    train_dataset = with_interactions(dataset, base.train)
    options = RankingOptions(n=RECALL_K, exclude_seen=True, include_adult=False)
    ranker = Ranker(dataset.catalog, dataset.interactions.items)
    item_counts = np.asarray(base.train.user_items.getnnz(axis=0), dtype=np.int64)
    context = runner.RankingContext(
        k=K, recall_k=RECALL_K, candidates=np.array(ranker.candidate_mask(options), dtype=bool),
        item_counts=item_counts,
        n_train_users=max(int(np.count_nonzero(np.diff(base.train.user_items.indptr))), 1),
        item_genres=runner.genre_matrix(dataset),
    )
    ndcg: dict[str, dict[Any, np.ndarray]] = {}
    table: dict[str, Any] = {}
    for name, params in ANIME_MODELS:
        if name == "content":
            continue
        model = runner._create(name, params, seed)  # the seed goes where the runner puts it
        started = time.perf_counter()
        model.fit(train_dataset)
        fit_seconds = time.perf_counter() - started
        ndcg[name] = {}
        for cap, split in splits.items():
            recommended = runner.rank_split(model, split, ranker, options)
            per_user, aggregate = runner.ranking_metrics(recommended, split.target.user_items, context)
            ndcg[name][cap] = per_user[f"ndcg@{K}"]
            if cap is not None:
                continue
            rng = np.random.default_rng([seed, 1])
            intervals = runner.bootstrap_intervals(per_user, recommended, context, rng, n_bootstrap, 0.95)
            buckets = runner.by_history_length(
                per_user, recommended, split.target.user_items,
                np.diff(split.fold_in.user_items.indptr), context, rng, n_bootstrap, 0.95,
            )
            table[name] = {
                f"ndcg@{K}": round(float(np.nanmean(per_user[f"ndcg@{K}"])), 4),
                "ci": [round(v, 4) for v in intervals[f"ndcg@{K}"]],
                "fit_seconds": round(fit_seconds, 1),
                "by_history_length": {
                    label: {
                        "n_users": bucket["n_users"],
                        f"ndcg@{K}": None if not bucket["n_users"] else round(bucket[f"ndcg@{K}"], 4),
                        "ci": None if not bucket["n_users"] else [round(v, 4) for v in bucket["ci"][f"ndcg@{K}"]],
                    }
                    for label, bucket in buckets.items()
                },
            }
        logger.info("runner %s: %s", name, table[name])

    groups = {"1": (1, 1), "2-5": (2, 5), "1-5": (1, 5), "6-20": (6, 20), "21+": (21, None), "all": (0, None)}
    comparisons: dict[str, Any] = {}
    for cap, split in splits.items():
        lengths = np.diff(split.fold_in.user_items.indptr)
        label = "natural" if cap is None else f"fold_in_max={cap}"
        comparisons[label] = {}
        for group, (low, high) in groups.items():
            rows = np.flatnonzero((lengths >= low) & (lengths <= (high if high is not None else lengths.max())))
            if rows.size == 0:
                continue
            means = {name: float(np.nanmean(values[cap][rows])) for name, values in ndcg.items()}
            best = max((name for name in means if name != "hybrid"), key=lambda name: means[name])
            difference = paired_difference(ndcg["hybrid"][cap][rows], ndcg[best][cap][rows])
            comparisons[label][group] = {
                "n_users": int(rows.size),
                "ndcg": {name: round(value, 4) for name, value in means.items()},
                "best_cf": best,
                "hybrid_minus_best": difference,
            }
            logger.info("%s %s: %s", label, group, comparisons[label][group])
    return {"seed": seed, "models": table, "comparisons": comparisons}


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "parts", nargs="*", default=["history", "collapse", "reasons", "new-anime", "demographics"]
    )
    parser.add_argument("--threads", type=int, default=2, help="BLAS and OpenMP threads")
    parser.add_argument("--seed", type=int, default=SEED, help="split seed of the runner part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("animerec").setLevel(logging.WARNING)

    started = time.perf_counter()
    result: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": SEED,
        "threads": args.threads,
        "command": " ".join(["python", "benchmarks/bench_cold_start.py", *sys.argv[1:]]),
    }
    with threadpool_limits(args.threads):
        if {"history", "collapse", "reasons"} & set(args.parts):
            dataset = load("kaggle-2016", "anime-2016")
            # Users with 5 or more titles, so that every h = 1, 2, 3, 5 is a real cut.
            split = strong_generalization_split(
                dataset.interactions, test_users=0.2, min_history=5, random_state=SEED
            )
            fitted = fit_models(dataset, split.train, ANIME_MODELS)
            if "history" in args.parts:
                result["history"] = measure_history(dataset, split, fitted)
            if "collapse" in args.parts:
                result["collapse"] = measure_collapse(dataset, split, fitted)
            if "reasons" in args.parts:
                result["reasons"] = measure_reasons(with_interactions(dataset, split.train), fitted)
        if "new-anime" in args.parts:
            result["new_anime"] = measure_new_anime(load("kaggle-2016", "anime-2016"))
        if "demographics" in args.parts:
            result["demographics"] = measure_demographics()
        if "runner" in args.parts:
            result["runner"] = measure_runner(args.seed)
    result["total_seconds"] = round(time.perf_counter() - started, 1)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"cold-start-{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
