"""Row policies shared by the loaders: unknown anime ids and duplicate user–anime pairs.

Duplicate policy: for each user–anime pair that appears in several rows, the last row in
file order wins, except that a row without a rating (NaN, the 2016 data's `-1`) never
replaces a row with a real rating. So the kept row is the last rated row of the pair when
there is one, else the last row.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from animerec.data.idmap import IdMap
from animerec.errors import ConfigError

UnknownAnimePolicy = Literal["drop", "error"]
UNKNOWN_ANIME_POLICIES: tuple[str, ...] = ("drop", "error")
EXAMPLE_COUNT = 5


def check_unknown_anime_policy(policy: str) -> None:
    """Raise `ConfigError` when `policy` is not an unknown-anime policy."""
    if policy not in UNKNOWN_ANIME_POLICIES:
        raise ConfigError(
            f"unknown_anime must be one of {', '.join(UNKNOWN_ANIME_POLICIES)}, not {policy!r}"
        )


def unknown_anime_rows(anime_ids: np.ndarray, items: IdMap) -> np.ndarray:
    """Return a bool mask of the rows whose anime id is not in `items`."""
    return items.to_idx(anime_ids, unknown="mask") < 0


def describe_unknown_anime(anime_ids: np.ndarray, unknown: np.ndarray) -> list[str]:
    """Return examples of unknown anime ids with their row counts, most rows first."""
    values, counts = np.unique(anime_ids[unknown], return_counts=True)
    order = np.lexsort((values, -counts))[:EXAMPLE_COUNT]
    return [f"anime_id {int(values[i])} ({int(counts[i])} rows)" for i in order]


def deduplicate(
    user_ids: np.ndarray, anime_ids: np.ndarray, ratings: np.ndarray
) -> tuple[np.ndarray, int, list[str]]:
    """Apply the duplicate policy to row arrays.

    `ratings` is float with NaN for rows without a rating. Returns the indices of the kept
    rows in file order, the number of rows removed, and a few examples of duplicated pairs.
    """
    n_rows = int(user_ids.size)
    all_rows = np.arange(n_rows, dtype=np.int64)
    if n_rows < 2:
        return all_rows, 0, []

    # Files sorted by (user_id, anime_id) without repeats are the common case: one pass.
    user_step = np.diff(user_ids)
    anime_step = np.diff(anime_ids)
    if bool(np.all((user_step > 0) | ((user_step == 0) & (anime_step > 0)))):
        return all_rows, 0, []

    # Otherwise count each pair in a sparse matrix, which sums repeats in linear time, and
    # sort only the rows of repeated pairs (a full sort of millions of rows takes seconds).
    user_idx, n_users = _compact(user_ids)
    item_idx, n_items = _compact(anime_ids)
    counts = sp.csr_matrix(
        (np.ones(n_rows, dtype=np.int32), (user_idx, item_idx)), shape=(n_users, n_items)
    )
    if counts.nnz == n_rows:
        return all_rows, 0, []
    repeated = np.flatnonzero(np.asarray(counts[user_idx, item_idx]).ravel() > 1)

    winners, examples = _resolve_repeats(user_ids[repeated], anime_ids[repeated], ratings[repeated])
    kept = np.ones(n_rows, dtype=bool)
    kept[repeated] = False
    kept[repeated[winners]] = True
    return np.flatnonzero(kept), n_rows - counts.nnz, examples


def _compact(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Number the distinct ids 0..n-1 in id order; return each row's number and n."""
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if span > 4 * ids.size + 2**20:
        distinct, inverse = np.unique(ids, return_inverse=True)
        return inverse.ravel(), int(distinct.size)
    # Dense ids: a presence table avoids sorting millions of rows.
    present = np.zeros(span, dtype=bool)
    present[ids - low] = True
    numbers = np.cumsum(present, dtype=np.int64) - 1
    return numbers[ids - low], int(numbers[-1]) + 1


def _resolve_repeats(
    user_ids: np.ndarray, anime_ids: np.ndarray, ratings: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Return the winning row of each pair (indices into the given rows) and examples.

    Every pair in these rows appears more than once, and the rows are in file order.
    """
    n_rows = int(user_ids.size)
    order = _pair_order(user_ids, anime_ids)
    sorted_users = user_ids[order]
    sorted_anime = anime_ids[order]
    starts_group = np.empty(n_rows, dtype=bool)
    starts_group[0] = True
    starts_group[1:] = (sorted_users[1:] != sorted_users[:-1]) | (sorted_anime[1:] != sorted_anime[:-1])
    group_starts = np.flatnonzero(starts_group)
    group_ends = np.append(group_starts[1:], n_rows) - 1

    # Within a group the rows are in file order, so the last rated position (or, when no
    # row is rated, the last position) is the winner.
    sorted_position = np.arange(n_rows, dtype=np.int64)
    rated_position = np.where(~np.isnan(ratings[order]), sorted_position, -1)
    last_rated = np.maximum.reduceat(rated_position, group_starts)
    winners = np.where(last_rated >= 0, last_rated, group_ends)

    examples = []
    for group in range(min(EXAMPLE_COUNT, group_starts.size)):
        rows = order[group_starts[group] : group_ends[group] + 1]
        shown = ", ".join(_rating_text(ratings[row]) for row in rows)
        winner = order[winners[group]]
        examples.append(
            f"user_id {int(user_ids[rows[0]])}, anime_id {int(anime_ids[rows[0]])}: "
            f"{rows.size} rows with ratings {shown}; kept {_rating_text(ratings[winner])}"
        )
    return order[winners], examples


def _pair_order(user_ids: np.ndarray, anime_ids: np.ndarray) -> np.ndarray:
    """Return a stable order of rows by (user_id, anime_id); ties keep file order."""
    low = int(anime_ids.min())
    span = int(anime_ids.max()) - low + 1
    user_low = int(user_ids.min())
    user_span = int(user_ids.max()) - user_low + 1
    if user_span * span < 2**62:
        key = (user_ids - user_low) * span + (anime_ids - low)
        return np.argsort(key, kind="stable")
    return np.lexsort((anime_ids, user_ids))


def _rating_text(rating: float) -> str:
    return "none" if np.isnan(rating) else f"{rating:g}"
