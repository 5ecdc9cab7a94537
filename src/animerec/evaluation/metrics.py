"""Top-n and rating-prediction metrics, each with its formula pinned down.

Conventions shared by the top-n metrics:

- A recommendation list is a row of item positions, best first, padded with -1 when it is
  shorter than k. Only the first k entries count. A padded slot is never a hit, so a list
  shorter than k is scored as if its missing slots were misses.
- Relevance is binary: an item is relevant when it is in the user's target set.
- The order of the list is taken as given. Ties between equal scores were already broken
  by the ranking step (smaller anime_id first), so metrics never reorder anything.
- Per-user metrics return one float64 value per user. A user with an empty target has no
  defined value and gets NaN; `mean` skips NaN, so such users do not count in averages.
- Aggregate metrics (coverage, Gini, user coverage) return one number for all users.
"""

from __future__ import annotations

from typing import Collection, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.stats

from animerec.errors import ConfigError

Recommended = np.ndarray | Sequence[Sequence[int]]
Target = sp.csr_matrix | Sequence[Collection[int]]


# --- inputs ------------------------------------------------------------------------------


def as_padded(recommended: Recommended, k: int) -> np.ndarray:
    """Return the first k entries of each list as an int64 array (n_users × k), -1 padded."""
    _check_k(k)
    if isinstance(recommended, np.ndarray):
        array = np.asarray(recommended, dtype=np.int64)
        if array.ndim != 2:
            raise ConfigError(f"recommended must be a 2-d array (users × list), got {array.ndim}-d")
        padded = np.full((array.shape[0], k), -1, dtype=np.int64)
        width = min(k, array.shape[1])
        padded[:, :width] = array[:, :width]
        return padded
    padded = np.full((len(recommended), k), -1, dtype=np.int64)
    for row, items in enumerate(recommended):
        head = list(items)[:k]
        padded[row, : len(head)] = head
    return padded


def relevance(
    recommended: Recommended, target: Target, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (hits, n_relevant): hits[u, j] is true when the j-th item of user u's list is in
    u's target (n_users × k bool), and n_relevant[u] is the size of u's target."""
    padded = as_padded(recommended, k)
    if sp.issparse(target):
        return _relevance_sparse(padded, sp.csr_matrix(target))
    if len(target) != padded.shape[0]:
        raise ConfigError(
            f"recommended has {padded.shape[0]} lists but target has {len(target)} sets"
        )
    hits = np.zeros(padded.shape, dtype=bool)
    n_relevant = np.zeros(padded.shape[0], dtype=np.int64)
    for row, items in enumerate(target):
        relevant = set(int(i) for i in items)
        n_relevant[row] = len(relevant)
        hits[row] = [int(i) >= 0 and int(i) in relevant for i in padded[row]]
    return hits, n_relevant


def _relevance_sparse(padded: np.ndarray, target: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    if target.shape[0] != padded.shape[0]:
        raise ConfigError(
            f"recommended has {padded.shape[0]} lists but target has {target.shape[0]} rows"
        )
    target = target.copy()
    target.sort_indices()
    n_items = np.int64(target.shape[1])
    rows = np.repeat(np.arange(target.shape[0], dtype=np.int64), np.diff(target.indptr))
    # Row-major keys of a CSR with sorted indices are sorted, so searchsorted finds members.
    target_keys = rows * n_items + target.indices.astype(np.int64)
    list_keys = np.arange(padded.shape[0], dtype=np.int64)[:, None] * n_items + padded
    positions = np.searchsorted(target_keys, list_keys)
    clipped = np.minimum(positions, max(target_keys.size - 1, 0))
    valid = (padded >= 0) & (padded < n_items)
    if target_keys.size == 0:
        hits = np.zeros(padded.shape, dtype=bool)
    else:
        hits = valid & (target_keys[clipped] == list_keys)
    return hits, np.diff(target.indptr).astype(np.int64)


def _check_k(k: int) -> None:
    if int(k) < 1:
        raise ConfigError(f"k must be at least 1, got {k}")


def _undefined_where_empty(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    values[n_relevant == 0] = np.nan
    return values


# --- per-user metrics from hits ----------------------------------------------------------


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def precision_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    return _undefined_where_empty(hits.sum(axis=1) / k, n_relevant)


def recall_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = hits.sum(axis=1) / np.maximum(n_relevant, 1)
    return _undefined_where_empty(values, n_relevant)


def ndcg_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    discounts = _discounts(k)
    dcg = hits.astype(np.float64) @ discounts
    ideal_cumulative = np.cumsum(discounts)
    ideal_length = np.clip(n_relevant, 1, k)
    idcg = ideal_cumulative[ideal_length - 1]
    return _undefined_where_empty(dcg / idcg, n_relevant)


def average_precision_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    summed = (precision_at_rank * hits).sum(axis=1)
    values = summed / np.clip(n_relevant, 1, k)
    return _undefined_where_empty(values, n_relevant)


def hit_rate_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return _undefined_where_empty(hits.any(axis=1).astype(np.float64), n_relevant)


def reciprocal_rank_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    first = np.argmax(hits, axis=1)
    values = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _undefined_where_empty(values, n_relevant)


# --- per-user metrics: public, documented entry points ------------------------------------


def precision_at_k(recommended: Recommended, target: Target, k: int) -> np.ndarray:
    """Precision@k per user: |top-k ∩ target| / k.

    The denominator is always k, also when the list has fewer than k items or the target
    has fewer than k items, so a short list is penalised. Empty target: NaN. Empty list
    with a non-empty target: 0.
    """
    hits, n_relevant = relevance(recommended, target, k)
    return precision_from_hits(hits, n_relevant)


def recall_at_k(recommended: Recommended, target: Target, k: int) -> np.ndarray:
    """Recall@k per user: |top-k ∩ target| / |target|.

    The denominator is the full target size, not min(k, |target|), so a user with more than
    k target items cannot reach 1. Empty target: NaN. Empty list: 0.
    """
    hits, n_relevant = relevance(recommended, target, k)
    return recall_from_hits(hits, n_relevant)


def ndcg_at_k(recommended: Recommended, target: Target, k: int) -> np.ndarray:
    """NDCG@k per user with binary relevance and a log2 discount.

    DCG = sum over ranks i = 1..k of rel_i / log2(i + 1), where rel_i is 1 when the i-th
    item is in the target. IDCG is the DCG of a list that puts min(k, |target|) relevant
    items first: sum over i = 1..min(k, |target|) of 1 / log2(i + 1). NDCG = DCG / IDCG, in
    [0, 1]. Empty target: NaN. Empty list: 0.
    """
    hits, n_relevant = relevance(recommended, target, k)
    return ndcg_from_hits(hits, n_relevant)


def average_precision_at_k(recommended: Recommended, target: Target, k: int) -> np.ndarray:
    """AP@k per user (the per-user term of MAP@k).

    AP@k = (1 / min(k, |target|)) × sum over ranks i = 1..k with rel_i = 1 of precision@i,
    where precision@i = (hits in the first i items) / i. Dividing by min(k, |target|) makes a
    list that puts every reachable relevant item first score 1. Empty target: NaN. Empty
    list: 0. MAP@k is the mean of AP@k over users with a non-empty target.
    """
    hits, n_relevant = relevance(recommended, target, k)
    return average_precision_from_hits(hits, n_relevant)


def hit_rate_at_k(recommended: Recommended, target: Target, k: int) -> np.ndarray:
    """Hit rate@k per user: 1 when at least one of the top-k items is in the target, else 0.

    Empty target: NaN. Empty list: 0.
    """
    hits, n_relevant = relevance(recommended, target, k)
    return hit_rate_from_hits(hits, n_relevant)


def reciprocal_rank_at_k(recommended: Recommended, target: Target, k: int) -> np.ndarray:
    """Reciprocal rank@k per user (the per-user term of MRR@k).

    1 / r, where r is the 1-based rank of the first target item in the top k; 0 when none of
    the top k is in the target. Empty target: NaN. Empty list: 0.
    """
    hits, n_relevant = relevance(recommended, target, k)
    return reciprocal_rank_from_hits(hits, n_relevant)


def mean(values: np.ndarray) -> float:
    """Return the mean over users with a defined value (NaN entries skipped); NaN if none."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


# --- beyond accuracy ---------------------------------------------------------------------


def coverage_at_k(recommended: Recommended, k: int, n_items: int) -> float:
    """Catalogue coverage@k: distinct items in anyone's top k / n_items.

    `n_items` is the number of items a list could contain (the runner passes the items that
    the ranking filters allow, so a model that cannot score unwatched items cannot reach 1).
    No lists or only empty lists give 0.
    """
    if int(n_items) < 1:
        raise ConfigError(f"n_items must be at least 1 for coverage, got {n_items}")
    padded = as_padded(recommended, k)
    distinct = np.unique(padded[padded >= 0])
    return float(distinct.size / n_items)


def user_coverage_at_k(recommended: Recommended, k: int) -> float:
    """User coverage@k: the share of users whose list has at least one item.

    A model that cannot score anything for a person (an empty fold-in history for a
    collaborative model, say) leaves that person with an empty list. No users: NaN.
    """
    padded = as_padded(recommended, k)
    if padded.shape[0] == 0:
        return float("nan")
    return float((padded >= 0).any(axis=1).mean())


def gini_at_k(
    recommended: Recommended, k: int, n_items: int, candidates: np.ndarray | None = None
) -> float:
    """Gini coefficient of how often each item appears in the top-k lists (popularity bias).

    `candidates`, a boolean mask over the `n_items` item positions, restricts the count to
    the items a list could contain (default: all n_items). Over the n counted items, with
    their counts sorted x_1 <= ... <= x_n and zeros included:
    G = sum over i = 1..n of (2i - n - 1) × x_i / (n × sum of x). 0 means every item is
    recommended equally often, values near 1 mean a few items fill every list. No
    recommended items at all: NaN.
    """
    if int(n_items) < 1:
        raise ConfigError(f"n_items must be at least 1 for the Gini coefficient, got {n_items}")
    padded = as_padded(recommended, k)
    items = padded[padded >= 0]
    if items.size and items.max() >= n_items:
        raise ConfigError(f"item position {items.max()} is outside 0..{n_items - 1}")
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    if candidates is not None:
        counts = counts[np.asarray(candidates, dtype=bool)]
    return gini(counts)


def gini(counts: np.ndarray) -> float:
    """Return the Gini coefficient of non-negative counts (NaN when they sum to 0)."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    total = values.sum()
    n = values.size
    if n == 0 or total <= 0:
        return float("nan")
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * ranks - n - 1) * values).sum() / (n * total))


def novelty_at_k(
    recommended: Recommended, k: int, item_counts: np.ndarray, n_users: int
) -> np.ndarray:
    """Novelty@k per user: the mean self-information of the listed items, in bits.

    For item i watched by c_i of the n training users, p_i = max(c_i, 1) / n and the item's
    self-information is -log2(p_i); an item that no training user watched counts as watched once, so it
    gets the highest finite value log2(n). A user's novelty is the mean over the items in
    the top k (padding skipped). Empty list: NaN.
    """
    if int(n_users) < 1:
        raise ConfigError(f"n_users must be at least 1 for novelty, got {n_users}")
    padded = as_padded(recommended, k)
    counts = np.asarray(item_counts, dtype=np.float64)
    information = -np.log2(np.maximum(counts, 1.0) / float(n_users))
    valid = padded >= 0
    values = np.where(valid, information[np.where(valid, padded, 0)], 0.0)
    lengths = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths > 0, values.sum(axis=1) / lengths, np.nan)


def mean_popularity_at_k(
    recommended: Recommended, k: int, item_counts: np.ndarray, n_users: int
) -> np.ndarray:
    """Average recommendation popularity@k per user: the mean of c_i / n over listed items,
    where c_i is how many of the n training users watched item i. Empty list: NaN."""
    if int(n_users) < 1:
        raise ConfigError(f"n_users must be at least 1, got {n_users}")
    padded = as_padded(recommended, k)
    share = np.asarray(item_counts, dtype=np.float64) / float(n_users)
    valid = padded >= 0
    values = np.where(valid, share[np.where(valid, padded, 0)], 0.0)
    lengths = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths > 0, values.sum(axis=1) / lengths, np.nan)


def intra_list_diversity_at_k(
    recommended: Recommended, k: int, item_genres: np.ndarray | sp.spmatrix
) -> np.ndarray:
    """Genre-based intra-list diversity@k per user.

    ILD = mean over the m(m-1)/2 unordered pairs of listed items of (1 - Jaccard(G_a, G_b)),
    where G is an item's genre set and Jaccard(A, B) = |A ∩ B| / |A ∪ B|. Two items without
    any genre count as identical (distance 0); an item without genres and one with genres
    are at distance 1. `item_genres` is an items × genres 0/1 matrix. Lists with fewer than
    two items: NaN.
    """
    padded = as_padded(recommended, k)
    genres = item_genres.toarray() if sp.issparse(item_genres) else np.asarray(item_genres)
    genres = (genres > 0).astype(np.float32)
    valid = padded >= 0
    listed = genres[np.where(valid, padded, 0)] * valid[..., None]
    intersection = np.einsum("ukg,ulg->ukl", listed, listed)
    sizes = listed.sum(axis=2)
    union = sizes[:, :, None] + sizes[:, None, :] - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(union > 0, intersection / union, 1.0)
    distance = 1.0 - similarity
    pair_mask = valid[:, :, None] & valid[:, None, :]
    upper = np.triu(np.ones((padded.shape[1], padded.shape[1]), dtype=bool), k=1)
    pair_mask &= upper[None]
    n_pairs = pair_mask.sum(axis=(1, 2))
    total = np.where(pair_mask, distance, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, total / n_pairs, np.nan).astype(np.float64)


# --- rating prediction -------------------------------------------------------------------


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error: sqrt(mean((predicted - actual)^2)). No pairs: NaN."""
    predicted, actual = _paired(predicted, actual)
    if predicted.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error: mean(|predicted - actual|). No pairs: NaN."""
    predicted, actual = _paired(predicted, actual)
    if predicted.size == 0:
        return float("nan")
    return float(np.mean(np.abs(predicted - actual)))


def _paired(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    actual = np.asarray(actual, dtype=np.float64).ravel()
    if predicted.shape != actual.shape:
        raise ConfigError(
            f"predicted has {predicted.size} values but actual has {actual.size}"
        )
    if np.isnan(predicted).any():
        raise ConfigError("predicted ratings contain NaN; a model must predict every pair")
    return predicted, actual


# --- uncertainty -------------------------------------------------------------------------


def bootstrap_mean_ci(
    values: np.ndarray,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over users.

    Users with NaN (undefined) values are left out first; the remaining values are resampled
    with replacement `n_resamples` times. No defined values: (NaN, NaN).
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0 or n_resamples < 1:
        return float("nan"), float("nan")
    means = np.empty(n_resamples, dtype=np.float64)
    # Resample in blocks so memory stays at about 4M indices whatever the user count.
    block = max(1, 4_000_000 // values.size)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        picks = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[picks].mean(axis=1)
    return _percentile_interval(means, confidence)


def bootstrap_statistic_ci(
    statistic,
    n_users: int,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Normal-approximation bootstrap interval of an aggregate `statistic(user_rows) -> float`,
    where `user_rows` is an array of resampled user rows (with repeats).

    The interval is statistic(all users) ± z × (standard deviation of the resampled values),
    with z the normal quantile for `confidence`. It is centred on the full-sample value
    because aggregates such as coverage grow with the number of distinct users, which
    resampling with replacement lowers (to about 63 %), so percentile intervals of such
    statistics sit below the estimate. No users: (NaN, NaN).
    """
    if n_users == 0 or n_resamples < 1:
        return float("nan"), float("nan")
    estimate = float(statistic(np.arange(n_users)))
    values = np.array(
        [statistic(rng.integers(0, n_users, size=n_users)) for _ in range(n_resamples)],
        dtype=np.float64,
    )
    return normal_interval(estimate, values, confidence)


def normal_interval(
    estimate: float, resampled: np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Return estimate ± z × standard deviation of the resampled values, NaN ones skipped.

    The result is (NaN, NaN) when the estimate is NaN or fewer than two values are defined."""
    _check_confidence(confidence)
    values = np.asarray(resampled, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size < 2 or np.isnan(estimate):
        return float("nan"), float("nan")
    spread = float(scipy.stats.norm.ppf(0.5 + confidence / 2.0)) * float(values.std(ddof=1))
    return estimate - spread, estimate + spread


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    _check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
