"""Train/test splits for offline evaluation.

Top-n protocols produce a `RankingSplit`: the interactions models are fitted on, and for
each evaluated user a fold-in history (known when the list is made, excluded from it) and a
target (what the list should find). Rating protocols produce `RatingFold`s: training
interactions and held-out (user, item, rating) triples.

Every random choice comes from `numpy.random.default_rng(random_state)`, so the same seed
and the same data give the same split.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp

from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

DEFAULT_MIN_HISTORY = 5
# Strong generalization evaluates every user who can have a fold-in and a target, so the
# short-history buckets hold the people they describe instead of none of them.
STRONG_MIN_HISTORY = 2

# A cut time of the temporal-global protocol: Unix seconds, an ISO 8601 string, a date or a datetime.
CutTime = Union[int, float, str, dt.date, dt.datetime]


@dataclass(frozen=True)
class RankingSplit:
    """One split for top-n evaluation.

    `fold_in` and `target` have one row per evaluated user, in the same order, over the
    dataset's item map. `train_user_idx` is None for strong generalization: the evaluated
    users are not in `train`, and models fold them in with `score_histories`. Otherwise it
    contains each evaluated user's row number in `train`. That row is exactly the user's
    fold-in history, and models score it with `score_users`.
    """

    protocol: str
    train: Interactions
    fold_in: Interactions
    target: Interactions
    train_user_idx: np.ndarray | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.fold_in.n_users

    @property
    def user_ids(self) -> np.ndarray:
        return self.fold_in.users.ids


@dataclass(frozen=True)
class RatingFold:
    """One split for rating prediction.

    `train` keeps the dataset's user and item maps, with the test pairs removed from both
    views (the watched view too, because a watched pair reveals that the user rated it).
    `user_idx`, `item_idx` and `ratings` are the held-out triples in those maps.
    """

    train: Interactions
    user_idx: np.ndarray
    item_idx: np.ndarray
    ratings: np.ndarray


def resolve_rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Return a Generator for a seed, or the Generator itself."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


# --- sparse helpers ----------------------------------------------------------------------


def _entry_rows(matrix: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def _keep_entries(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """Return a CSR with only the stored entries where `keep` is true (same shape)."""
    rows = _entry_rows(matrix)[keep]
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=matrix.shape[0]), out=indptr[1:])
    result = sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape
    )
    result.has_sorted_indices = matrix.has_sorted_indices
    return result


def _pair_keys(matrix: sp.csr_matrix) -> np.ndarray:
    return _entry_rows(matrix) * np.int64(matrix.shape[1]) + matrix.indices.astype(np.int64)


def split_entries(
    interactions: Interactions, taken: np.ndarray
) -> tuple[Interactions, Interactions]:
    """Split interactions by a mask over the stored entries of `user_items`.

    Returns (kept, taken) with the same maps. A pair's rating and timestamp follow its
    watched entry, so every view of one pair lands on the same side. The timestamp matrix
    stores the same pairs as `user_items`, so the same mask applies to it.
    """
    user_items = interactions.user_items
    user_items.sort_indices()
    taken = np.asarray(taken, dtype=bool)
    if taken.shape != (user_items.nnz,):
        raise ConfigError(f"mask has shape {taken.shape}, expected ({user_items.nnz},)")
    ratings = interactions.ratings
    ratings.sort_indices()
    rating_taken = np.isin(
        _pair_keys(ratings), _pair_keys(user_items)[taken], assume_unique=True
    )
    timestamps = interactions.timestamps
    if timestamps is not None:
        timestamps.sort_indices()
    kept = Interactions(
        interactions.users,
        interactions.items,
        _keep_entries(user_items, ~taken),
        _keep_entries(ratings, ~rating_taken),
        interactions.rating_scale,
        None if timestamps is None else _keep_entries(timestamps, ~taken),
    )
    removed = Interactions(
        interactions.users,
        interactions.items,
        _keep_entries(user_items, taken),
        _keep_entries(ratings, rating_taken),
        interactions.rating_scale,
        None if timestamps is None else _keep_entries(timestamps, taken),
    )
    return kept, removed


def _rank_within_rows(indptr: np.ndarray, sort_key: np.ndarray) -> np.ndarray:
    """Return each stored entry's 0-based rank inside its row when the row is ordered by
    `sort_key` (ascending)."""
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    order = np.lexsort((sort_key, rows))
    ranks = np.empty(rows.size, dtype=np.int64)
    ranks[order] = np.arange(rows.size, dtype=np.int64) - indptr[rows[order]]
    return ranks


def _n_kept(lengths: np.ndarray, fraction: float) -> np.ndarray:
    """round-half-up(fraction × n), clipped to 1..n-1 so each side gets at least one item."""
    kept = np.floor(fraction * lengths + 0.5).astype(np.int64)
    return np.clip(kept, 1, np.maximum(lengths - 1, 1))


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    return value


def _count_users(test_users: float | int, available: int) -> int:
    """Turn a fraction (a float below 1) or a count (an int) into a number of users."""
    if isinstance(test_users, bool):
        raise ConfigError(f"test_users must be a fraction or a count, got {test_users!r}")
    if isinstance(test_users, (int, np.integer)):
        if test_users < 1:
            raise ConfigError(f"test_users as a count must be at least 1, got {test_users}")
        return min(int(test_users), available)
    fraction = float(test_users)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"test_users must be a fraction between 0 and 1 or a whole count, got {test_users}"
        )
    return int(round(fraction * available))


def _eligible_users(interactions: Interactions, min_history: int) -> np.ndarray:
    if int(min_history) < 2:
        raise ConfigError(
            f"min_history must be at least 2 so each user has a fold-in and a target, got {min_history}"
        )
    lengths = np.diff(interactions.user_items.indptr)
    return np.flatnonzero(lengths >= int(min_history))


# --- top-n protocols ---------------------------------------------------------------------


def strong_generalization_split(
    interactions: Interactions,
    *,
    test_users: float | int = 0.2,
    fold_in_fraction: float = 0.8,
    min_history: int = STRONG_MIN_HISTORY,
    fold_in_max: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> RankingSplit:
    """Hold out whole users: they leave training, and part of each one's history is folded in.

    Users with at least `min_history` watched items (default 2, the fewest that allow a
    fold-in and a target) are eligible. `test_users` of them (a fraction of the eligible
    users, or a count) are drawn without replacement. For each, round-half-up
    (`fold_in_fraction` × history length) items, clipped so both sides get at least one, are
    drawn at random as the fold-in. The rest is the target.

    `fold_in_max` (the "given N" protocol) caps the fold-in at that many random items; the
    items above the cap join the target. It simulates people who have told the system only
    a few titles, with the same test users as without the cap.
    """
    fold_in_fraction = _check_fraction("fold_in_fraction", fold_in_fraction)
    if fold_in_max is not None and (isinstance(fold_in_max, bool) or int(fold_in_max) < 1):
        raise ConfigError(f"fold_in_max must be a count of at least 1 (or None), got {fold_in_max!r}")
    rng = resolve_rng(random_state)
    eligible = _eligible_users(interactions, min_history)
    n_test = _count_users(test_users, eligible.size)
    if n_test == 0:
        raise ConfigError(
            f"no test users: {eligible.size} users have at least {min_history} watched items "
            f"and test_users={test_users}; lower min_history or raise test_users"
        )
    if n_test >= interactions.n_users:
        raise ConfigError(
            f"test_users={test_users} would hold out all {interactions.n_users} users and leave "
            "nothing to train on; choose fewer test users"
        )

    test_idx = np.sort(rng.choice(eligible, size=n_test, replace=False))
    train_idx = np.setdiff1d(np.arange(interactions.n_users), test_idx)
    train = interactions.select_users(train_idx)
    held_out = interactions.select_users(test_idx)

    held_out.user_items.sort_indices()
    indptr = held_out.user_items.indptr
    lengths = np.diff(indptr)
    ranks = _rank_within_rows(indptr, rng.random(held_out.nnz))
    rows = _entry_rows(held_out.user_items)
    fold_in_counts = _n_kept(lengths, fold_in_fraction)
    if fold_in_max is not None:
        fold_in_counts = np.minimum(fold_in_counts, int(fold_in_max))
    in_fold = ranks < fold_in_counts[rows]
    fold_in, target = split_entries(held_out, ~in_fold)
    # split_entries returns (kept, taken); the fold-in is what is kept.

    settings = {
        "test_users": test_users,
        "fold_in_fraction": fold_in_fraction,
        "min_history": int(min_history),
        "fold_in_max": None if fold_in_max is None else int(fold_in_max),
        "n_eligible_users": int(eligible.size),
        "n_train_users": int(train_idx.size),
        "n_test_users": int(n_test),
    }
    return RankingSplit("strong-generalization", train, fold_in, target, None, settings)


def user_holdout_split(
    interactions: Interactions,
    *,
    test_users: float | int | None = None,
    test_fraction: float = 0.2,
    min_history: int = DEFAULT_MIN_HISTORY,
    random_state: int | np.random.Generator | None = None,
) -> RankingSplit:
    """Per-user random holdout: users stay in training, a random part of their history is the target.

    Users with at least `min_history` watched items are eligible and `test_users` of them
    (None, the default: all) are evaluated. For each, round-half-up((1 - `test_fraction`) ×
    length) items, clipped to 1..length-1, stay in training and the rest is the target.
    """
    test_fraction = _check_fraction("test_fraction", test_fraction)
    rng = resolve_rng(random_state)
    eligible = _eligible_users(interactions, min_history)
    test_idx = _draw_users(rng, eligible, test_users, min_history)
    lengths = np.diff(interactions.user_items.indptr)
    kept_counts = _n_kept(lengths, 1.0 - test_fraction)
    split = _within_user_split(
        "user-holdout", interactions, test_idx, rng.random(interactions.nnz), kept_counts
    )
    split.settings.update(
        test_users=test_users,
        test_fraction=test_fraction,
        min_history=int(min_history),
        n_eligible_users=int(eligible.size),
    )
    return split


def leave_k_out_split(
    interactions: Interactions,
    *,
    leave_k: int = 1,
    test_users: float | int | None = None,
    min_history: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> RankingSplit:
    """Leave-k-out: `leave_k` random items of each evaluated user are the target.

    Users need at least max(`min_history`, `leave_k` + 1) watched items, so each keeps at
    least one item in training. `test_users` of them (None, the default: all) are evaluated.
    """
    if int(leave_k) < 1:
        raise ConfigError(f"leave_k must be at least 1, got {leave_k}")
    needed = max(int(min_history or 2), int(leave_k) + 1)
    rng = resolve_rng(random_state)
    eligible = _eligible_users(interactions, needed)
    test_idx = _draw_users(rng, eligible, test_users, needed)
    lengths = np.diff(interactions.user_items.indptr)
    split = _within_user_split(
        "leave-k-out", interactions, test_idx, rng.random(interactions.nnz), lengths - int(leave_k)
    )
    split.settings.update(
        leave_k=int(leave_k),
        test_users=test_users,
        min_history=needed,
        n_eligible_users=int(eligible.size),
    )
    return split


def temporal_split(
    interactions: Interactions,
    timestamps: sp.csr_matrix | None = None,
    *,
    test_fraction: float = 0.2,
    test_users: float | int | None = None,
    min_history: int = DEFAULT_MIN_HISTORY,
    random_state: int | np.random.Generator | None = None,
) -> RankingSplit:
    """Per-user temporal split: each evaluated user's latest items are the target.

    `timestamps` (default: `interactions.timestamps`) is a users × items CSR with the same
    stored pairs as `user_items`, holding each pair's time. Per user, the earliest
    round-half-up((1 - `test_fraction`) × length) items, clipped to 1..length-1, stay in
    training, and equal times are ordered by item position. Data without timestamps raises
    `ConfigError`.

    NOTE: the cut is per user, not one global time, so training still contains other
    users' interactions from after a test user's cut-off. `temporal_global_split` uses one
    cut time for everyone instead.
    """
    timestamps = _aligned_timestamps(interactions, timestamps, "temporal")
    test_fraction = _check_fraction("test_fraction", test_fraction)
    user_items = interactions.user_items
    rng = resolve_rng(random_state)
    eligible = _eligible_users(interactions, min_history)
    test_idx = _draw_users(rng, eligible, test_users, min_history)
    lengths = np.diff(user_items.indptr)
    # Within a row, entries are in item order and lexsort is stable, so equal times keep
    # item order.
    times = timestamps.data.astype(np.float64)
    split = _within_user_split(
        "temporal", interactions, test_idx, times, _n_kept(lengths, 1.0 - test_fraction)
    )
    split.settings.update(
        test_fraction=test_fraction,
        test_users=test_users,
        min_history=int(min_history),
        n_eligible_users=int(eligible.size),
    )
    return split


def temporal_global_split(
    interactions: Interactions,
    timestamps: sp.csr_matrix | None = None,
    *,
    test_fraction: float = 0.2,
    cut_time: CutTime | None = None,
    test_users: float | int | None = None,
    min_history: int = DEFAULT_MIN_HISTORY,
    random_state: int | np.random.Generator | None = None,
) -> RankingSplit:
    """Global temporal split: one cut time for everyone, so nothing after it is trained on.

    The cut is `cut_time` when given (Unix seconds, an ISO 8601 date or time read as UTC
    when it has no offset, or a datetime), else the time such that about `test_fraction` of
    all interactions are at or after it. It is the timestamp at position
    round-half-up((1 - `test_fraction`) × n) of the sorted times, so ties at that time all
    fall after the cut. Training is every interaction before the cut, from all users.

    Users with at least `min_history` interactions before the cut and at least one at or
    after it are eligible, and `test_users` of them (None, the default: all) are evaluated.
    An evaluated user's interactions before the cut are the fold-in (their row in `train`)
    and the rest is the target. Interactions at or after the cut of other users are dropped.
    A target may contain items nobody watched before the cut, which collaborative models
    cannot rank; `settings["n_target_cold_items"]` counts those target pairs.

    `timestamps` (default: `interactions.timestamps`) is a users × items CSR with the same
    stored pairs as `user_items`. Data without timestamps raises `ConfigError`.
    """
    timestamps = _aligned_timestamps(interactions, timestamps, "temporal-global")
    if isinstance(min_history, bool) or int(min_history) < 1:
        raise ConfigError(
            f"min_history must be at least 1 interaction before the cut, got {min_history!r}"
        )
    min_history = int(min_history)
    times = timestamps.data.astype(np.int64)
    if times.size < 2:
        raise ConfigError(
            f"the temporal-global protocol needs at least 2 interactions, but this data has {times.size}"
        )
    if cut_time is None:
        test_fraction = _check_fraction("test_fraction", test_fraction)
        n_before = int(_n_kept(np.array([times.size]), 1.0 - test_fraction)[0])
        cut = int(np.partition(times, n_before)[n_before])
    else:
        cut = to_unix_seconds(cut_time)

    after = times >= cut
    rows = _entry_rows(interactions.user_items)
    n_before_by_user = np.bincount(rows[~after], minlength=interactions.n_users)
    n_after_by_user = np.bincount(rows[after], minlength=interactions.n_users)
    eligible = np.flatnonzero((n_before_by_user >= min_history) & (n_after_by_user >= 1))
    cut_utc = _utc_text(cut)
    if eligible.size == 0:
        raise ConfigError(
            f"no test users: no user has at least {min_history} interactions before the cut "
            f"{cut_utc} and one at or after it; lower min_history or move the cut"
        )
    rng = resolve_rng(random_state)
    test_idx = _draw_users(rng, eligible, test_users, min_history)

    train, later = split_entries(interactions, after)
    fold_in = train.select_users(test_idx)
    target = later.select_users(test_idx)
    trained_items = np.diff(train.user_items.tocsc().indptr) > 0
    target_items = target.user_items.indices

    settings: dict[str, Any] = {
        "cut_time": cut,
        "cut_time_utc": cut_utc,
        "test_fraction": None if cut_time is not None else test_fraction,
        "share_after_cut": float(after.mean()),
        "test_users": test_users,
        "min_history": min_history,
        "n_eligible_users": int(eligible.size),
        "n_train_users": int(np.count_nonzero(n_before_by_user)),
        "n_test_users": int(test_idx.size),
        "n_train_interactions": int(train.nnz),
        "n_target_interactions": int(target.nnz),
        "n_dropped_interactions": int(later.nnz - target.nnz),
        "n_target_cold_items": int(np.count_nonzero(~trained_items[target_items])),
    }
    logger.info(
        "temporal-global cut at %s: %d train, %d target and %d dropped interactions",
        cut_utc, train.nnz, target.nnz, later.nnz - target.nnz,
    )
    return RankingSplit(
        "temporal-global", train, fold_in, target, test_idx.astype(np.int64), settings
    )


def to_unix_seconds(value: CutTime) -> int:
    """Convert a cut time to whole Unix seconds.

    Accepts a number of seconds, a string with one, an ISO 8601 date or date and time, or a
    datetime. Values without a UTC offset are read as UTC. Fractions of a second are dropped.
    """
    if isinstance(value, bool):
        raise ConfigError(f"cut_time must be Unix seconds or an ISO 8601 date, got {value!r}")
    if isinstance(value, (int, np.integer, float, np.floating)):
        return int(value)
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            return int(float(text))
        except ValueError:
            pass
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as err:
            raise ConfigError(
                f"cut_time {value!r} is neither Unix seconds nor an ISO 8601 date or time "
                "(e.g. 1998-03-01 or 1998-03-01T12:00:00+00:00)"
            ) from err
    else:
        raise ConfigError(
            f"cut_time must be Unix seconds, an ISO 8601 string or a datetime, got {type(value).__name__}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def _utc_text(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _aligned_timestamps(
    interactions: Interactions, timestamps: sp.csr_matrix | None, protocol: str
) -> sp.csr_matrix:
    """Return the timestamp matrix (default: `interactions.timestamps`) with sorted indices,
    so its stored entries line up one to one with those of `user_items`."""
    if timestamps is None:
        timestamps = interactions.timestamps
    if timestamps is None:
        raise ConfigError(
            f"the {protocol} protocol needs interaction timestamps, and this dataset has none; "
            "use strong-generalization, user-holdout or leave-k-out instead"
        )
    user_items = interactions.user_items
    user_items.sort_indices()
    timestamps = sp.csr_matrix(timestamps)
    timestamps.sort_indices()
    if (
        timestamps.shape != user_items.shape
        or timestamps.nnz != user_items.nnz
        or not np.array_equal(timestamps.indices, user_items.indices)
        or not np.array_equal(timestamps.indptr, user_items.indptr)
    ):
        raise DataError(
            "timestamps must cover exactly the stored pairs of the interactions; "
            "the dataset's timestamp matrix does not match its user_items"
        )
    return timestamps


def _draw_users(
    rng: np.random.Generator, eligible: np.ndarray, test_users: float | int | None, min_history: int
) -> np.ndarray:
    """Draw the evaluated users among the eligible ones; None means all of them."""
    if test_users is None:
        chosen = eligible
    else:
        n_test = _count_users(test_users, eligible.size)
        chosen = np.sort(rng.choice(eligible, size=n_test, replace=False))
    if chosen.size == 0:
        raise ConfigError(
            f"no test users: no user has at least {min_history} watched items; lower min_history"
        )
    return chosen


def _within_user_split(
    protocol: str,
    interactions: Interactions,
    test_idx: np.ndarray,
    sort_key: np.ndarray,
    kept_counts: np.ndarray,
) -> RankingSplit:
    """Build a split where each user in `test_idx` keeps kept_counts[user] entries, the first
    by `sort_key`, and the rest becomes the target. Other users keep their whole history."""
    user_items = interactions.user_items
    user_items.sort_indices()
    ranks = _rank_within_rows(user_items.indptr, sort_key)
    rows = _entry_rows(user_items)
    is_test_user = np.zeros(interactions.n_users, dtype=bool)
    is_test_user[test_idx] = True
    taken = is_test_user[rows] & (ranks >= kept_counts[rows])
    train, held_out = split_entries(interactions, taken)
    fold_in = train.select_users(test_idx)
    target = held_out.select_users(test_idx)
    settings: dict[str, Any] = {
        "n_train_users": int(interactions.n_users),
        "n_test_users": int(test_idx.size),
    }
    return RankingSplit(protocol, train, fold_in, target, test_idx.astype(np.int64), settings)


# --- predefined split on disk ------------------------------------------------------------


def load_split_dir(
    directory: str | Path,
    dataset: Dataset,
    *,
    overlap: Literal["raise", "drop"] = "drop",
    unknown_anime: Literal["raise", "drop"] = "raise",
) -> RankingSplit:
    """Read a predefined strong-generalization split: `fold_in.csv` and `target.csv`.

    Both files have columns `user_id,anime_id` and optionally `rating` (empty, NaN or -1 means
    watched without a rating). Their users are held out, so the training data is the dataset
    minus those users. With the default `overlap="drop"`, split users that are also in the
    dataset (a split saved from this same dataset, say) are removed from training, and the
    count is recorded. With `overlap="raise"` such users raise `DataError`, for splits that
    must come from other people. A user in `target.csv` without fold-in rows gets an empty
    fold-in history. `unknown_anime` decides what happens to anime ids missing from the
    catalogue.
    """
    folder = Path(directory)
    if overlap not in ("raise", "drop"):
        raise ConfigError(f"overlap must be 'raise' or 'drop', got {overlap!r}")
    if unknown_anime not in ("raise", "drop"):
        raise ConfigError(f"unknown_anime must be 'raise' or 'drop', got {unknown_anime!r}")
    fold_frame = _read_split_file(folder / "fold_in.csv")
    target_frame = _read_split_file(folder / "target.csv")
    items = dataset.interactions.items

    dropped_anime = 0
    for path, frame in ((folder / "fold_in.csv", fold_frame), (folder / "target.csv", target_frame)):
        known = np.isin(frame["anime_id"].to_numpy(np.int64), items.ids)
        if not known.all():
            first = int(np.flatnonzero(~known)[0])
            if unknown_anime == "raise":
                raise DataError(
                    f"anime_id {int(frame['anime_id'].iloc[first])} is not in the catalogue of "
                    f"dataset {dataset.name!r}; fix the file or pass unknown_anime='drop'",
                    path=str(path),
                    line=first + 2,
                )
            dropped_anime += int((~known).sum())
            frame.drop(index=frame.index[~known], inplace=True)

    pairs = pd.concat([fold_frame[["user_id", "anime_id"]], target_frame[["user_id", "anime_id"]]])
    if pairs.duplicated().any():
        duplicate = pairs[pairs.duplicated()].iloc[0]
        raise DataError(
            f"user {int(duplicate['user_id'])} has anime {int(duplicate['anime_id'])} more than once "
            "across fold_in.csv and target.csv; each pair belongs to exactly one side",
            path=str(folder),
        )

    test_user_ids = np.unique(target_frame["user_id"].to_numpy(np.int64))
    if test_user_ids.size == 0:
        raise DataError("target.csv has no rows: there is nothing to evaluate", path=str(folder / "target.csv"))
    extra_fold_users = np.setdiff1d(fold_frame["user_id"].to_numpy(np.int64), test_user_ids)
    if extra_fold_users.size:
        logger.warning(
            "%d users in fold_in.csv have no target rows and are ignored (first: %d)",
            extra_fold_users.size,
            int(extra_fold_users[0]),
        )
        fold_frame = fold_frame[np.isin(fold_frame["user_id"].to_numpy(np.int64), test_user_ids)]

    interactions = dataset.interactions
    in_dataset = np.isin(test_user_ids, interactions.users.ids)
    if in_dataset.any() and overlap == "raise":
        raise DataError(
            f"{int(in_dataset.sum())} held-out users of the split are also in dataset "
            f"{dataset.name!r} (first: user_id {int(test_user_ids[in_dataset][0])}); evaluating "
            "them after training on them would leak. Remove them from the data, or use "
            "overlap='drop' to leave them out of training",
            path=str(folder),
        )
    drop_idx = interactions.users.to_idx(test_user_ids, unknown="drop")
    train_idx = np.setdiff1d(np.arange(interactions.n_users), drop_idx)
    if train_idx.size == 0:
        raise DataError(
            f"no training users are left in dataset {dataset.name!r} after removing the split's users",
            path=str(folder),
        )
    train = interactions.select_users(train_idx)

    users = IdMap(test_user_ids, kind="user_id")
    fold_in = _frame_to_interactions(fold_frame, users, items, interactions.rating_scale)
    target = _frame_to_interactions(target_frame, users, items, interactions.rating_scale)
    settings = {
        "split_dir": str(folder.resolve()),
        "n_train_users": int(train_idx.size),
        "n_test_users": int(test_user_ids.size),
        "n_users_removed_from_training": int(drop_idx.size),
        "n_rows_with_unknown_anime_dropped": dropped_anime,
        "overlap": overlap,
    }
    return RankingSplit("split-dir", train, fold_in, target, None, settings)


def save_split_dir(split: RankingSplit, directory: str | Path) -> Path:
    """Write a split's fold-in and target as `fold_in.csv` and `target.csv`.

    The columns are user_id,anime_id,rating, and the rating is empty for watched-but-unrated
    pairs. `load_split_dir` reads them back, so other models can be evaluated on exactly the
    same split later."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, part in (("fold_in.csv", split.fold_in), ("target.csv", split.target)):
        frame = _interactions_frame(part)
        staging = folder / f".{file_name}.tmp"
        frame.to_csv(staging, index=False, na_rep="")
        staging.replace(folder / file_name)
    return folder


def has_split_files(directory: str | Path) -> bool:
    """Return True when `directory` contains both files of a saved split."""
    folder = Path(directory)
    return (folder / "fold_in.csv").is_file() and (folder / "target.csv").is_file()


def _interactions_frame(interactions: Interactions) -> pd.DataFrame:
    user_items = interactions.user_items
    user_items.sort_indices()
    rows = _entry_rows(user_items)
    ratings = np.full(user_items.nnz, np.nan, dtype=np.float64)
    rated = interactions.ratings
    rated.sort_indices()
    if rated.nnz:
        keys = _pair_keys(user_items)
        positions = np.searchsorted(keys, _pair_keys(rated))
        ratings[positions] = rated.data
    return pd.DataFrame(
        {
            "user_id": interactions.users.ids[rows],
            "anime_id": interactions.items.ids[user_items.indices],
            "rating": ratings,
        }
    )


def _read_split_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            "split file not found; a split folder needs fold_in.csv and target.csv "
            "with columns user_id,anime_id[,rating]",
            path=str(path),
        )
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"cannot parse CSV: {err}", path=str(path)) from err
    missing = [c for c in ("user_id", "anime_id") if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; expected user_id,anime_id[,rating], "
            f"found {','.join(map(str, frame.columns))}",
            path=str(path),
            line=1,
        )
    for column in ("user_id", "anime_id"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{column} must be a whole number, got {frame[column].iloc[first]!r}",
                path=str(path),
                line=first + 2,
            )
        frame[column] = values.astype(np.int64)
    if "rating" in frame.columns:
        rating = pd.to_numeric(frame["rating"], errors="coerce").astype(np.float64)
        rating[rating == -1] = np.nan
        frame["rating"] = rating
    else:
        frame["rating"] = np.nan
    return frame[["user_id", "anime_id", "rating"]].copy()


def _frame_to_interactions(
    frame: pd.DataFrame, users: IdMap, items: IdMap, rating_scale: tuple[float, float]
) -> Interactions:
    return Interactions.from_arrays(
        frame["user_id"].to_numpy(np.int64),
        frame["anime_id"].to_numpy(np.int64),
        frame["rating"].to_numpy(np.float32),
        users=users,
        items=items,
        rating_scale=rating_scale,
    )


# --- rating protocols --------------------------------------------------------------------


def _rating_triples(interactions: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ratings = interactions.ratings
    ratings.sort_indices()
    return _entry_rows(ratings), ratings.indices.astype(np.int64), ratings.data.astype(np.float64)


def _rating_fold(interactions: Interactions, test_entries: np.ndarray) -> RatingFold:
    """Build a fold whose test set is the given stored entries of the ratings matrix."""
    rows, cols, values = _rating_triples(interactions)
    test_keys = rows[test_entries] * np.int64(interactions.n_items) + cols[test_entries]
    user_items = interactions.user_items
    user_items.sort_indices()
    taken = np.isin(_pair_keys(user_items), test_keys, assume_unique=True)
    train, _ = split_entries(interactions, taken)
    return RatingFold(train, rows[test_entries], cols[test_entries], values[test_entries])


def rating_holdout_split(
    interactions: Interactions,
    *,
    test_fraction: float = 0.2,
    random_state: int | np.random.Generator | None = None,
) -> RatingFold:
    """Hold out round(`test_fraction` × n_ratings) ratings drawn at random from all ratings."""
    test_fraction = _check_fraction("test_fraction", test_fraction)
    n_ratings = interactions.ratings.nnz
    if n_ratings < 2:
        raise ConfigError(f"rating protocols need explicit ratings; this data has {n_ratings}")
    rng = resolve_rng(random_state)
    n_test = min(max(int(round(test_fraction * n_ratings)), 1), n_ratings - 1)
    test_entries = np.sort(rng.choice(n_ratings, size=n_test, replace=False))
    return _rating_fold(interactions, test_entries)


def rating_kfold_splits(
    interactions: Interactions,
    *,
    n_folds: int = 5,
    random_state: int | np.random.Generator | None = None,
) -> list[RatingFold]:
    """k-fold cross-validation over ratings: a random permutation of all ratings is cut into
    `n_folds` parts of sizes differing by at most one, and each part is the test set once."""
    if int(n_folds) < 2:
        raise ConfigError(f"n_folds must be at least 2, got {n_folds}")
    n_ratings = interactions.ratings.nnz
    if n_ratings < int(n_folds):
        raise ConfigError(
            f"rating cross-validation needs at least {n_folds} explicit ratings; this data has {n_ratings}"
        )
    rng = resolve_rng(random_state)
    permutation = rng.permutation(n_ratings)
    parts = np.array_split(permutation, int(n_folds))
    return [_rating_fold(interactions, np.sort(part)) for part in parts]


def predefined_rating_folds(dataset: Dataset, fold_set: str = "folds") -> list[RatingFold]:
    """Read the folds a loader stored in `dataset.metadata[fold_set]`.

    MovieLens 100K, for example, stores u1..u5 under "folds" and ua/ub under "folds_ab".

    Each fold is either a mapping with `test`, optionally `train` and `name`, or a
    (train, test) pair. `test` and `train` are (user_id, anime_id) pairs: an n × 2 array or
    list, or a mapping with `user_id` and `anime_id` arrays. Test pairs must be rated pairs of
    the dataset. Without `train`, the fold trains on the dataset minus the test pairs. With
    it, the fold trains on exactly the train pairs (their ratings and watched entries), and
    these must not share a pair with the test set.
    """
    folds = dataset.metadata.get(fold_set) if dataset.metadata else None
    if not folds:
        available = sorted(key for key in (dataset.metadata or {}) if key.startswith("folds"))
        hint = f"fold sets in this dataset: {', '.join(available)}" if available else (
            "use rating-holdout or rating-kfold"
        )
        raise ConfigError(f"dataset {dataset.name!r} has no predefined folds {fold_set!r}; {hint}")
    interactions = dataset.interactions
    rows, cols, _ = _rating_triples(interactions)
    rating_keys = rows * np.int64(interactions.n_items) + cols
    user_items = interactions.user_items
    user_items.sort_indices()
    watched_keys = _pair_keys(user_items)
    result = []
    for number, fold in enumerate(folds):
        train_pairs, test_pairs = _fold_parts(fold, number)
        test_positions = _pair_positions(
            interactions, rating_keys, test_pairs, f"predefined fold {number + 1} (test)", dataset.name
        )
        fold_result = _rating_fold(interactions, np.unique(test_positions))
        if train_pairs is not None:
            train_positions = _pair_positions(
                interactions, watched_keys, train_pairs, f"predefined fold {number + 1} (train)",
                dataset.name,
            )
            in_train = np.zeros(user_items.nnz, dtype=bool)
            in_train[train_positions] = True
            test_keys = rating_keys[test_positions]
            if np.isin(watched_keys[in_train], test_keys).any():
                raise DataError(
                    f"predefined fold {number + 1}: train and test share a pair; each pair "
                    "belongs to exactly one side"
                )
            train, _ = split_entries(interactions, ~in_train)
            fold_result = dataclasses.replace(fold_result, train=train)
        result.append(fold_result)
    return result


def predefined_fold_names(dataset: Dataset, fold_set: str = "folds") -> list[str]:
    """Return the names of the predefined folds ("fold 1", ... where a fold has none)."""
    names = []
    for number, fold in enumerate(dataset.metadata.get(fold_set) or []):
        name = fold.get("name") if isinstance(fold, dict) else None
        names.append(str(name) if name else f"fold {number + 1}")
    return names


def _pair_positions(
    interactions: Interactions,
    sorted_keys: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    what: str,
    dataset_name: str,
) -> np.ndarray:
    """Return the positions of (user_id, anime_id) pairs among `sorted_keys`; pairs that are
    not there raise `DataError` naming the first one."""
    user_ids, anime_ids = pairs
    user_idx = interactions.users.to_idx(user_ids, unknown="mask").astype(np.int64)
    item_idx = interactions.items.to_idx(anime_ids, unknown="mask").astype(np.int64)
    keys = user_idx * np.int64(interactions.n_items) + item_idx
    positions = np.searchsorted(sorted_keys, keys)
    clipped = np.minimum(positions, max(sorted_keys.size - 1, 0))
    found = (user_idx >= 0) & (item_idx >= 0)
    if sorted_keys.size:
        found &= sorted_keys[clipped] == keys
    else:
        found[:] = False
    if not found.all():
        first = int(np.flatnonzero(~found)[0])
        raise DataError(
            f"{what}: pair user_id {int(user_ids[first])}, anime_id {int(anime_ids[first])} "
            f"is not in dataset {dataset_name!r}"
        )
    return positions


def _fold_parts(
    fold: Any, number: int
) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray]]:
    if isinstance(fold, dict):
        if "test" not in fold:
            raise DataError(f"predefined fold {number + 1} has no 'test' entry")
        train = fold.get("train")
        return (
            None if train is None else _as_pairs(train, number, "train"),
            _as_pairs(fold["test"], number, "test"),
        )
    if isinstance(fold, (tuple, list)) and len(fold) == 2 and _looks_like_pairs(fold[0]):
        return _as_pairs(fold[0], number, "train"), _as_pairs(fold[1], number, "test")
    return None, _as_pairs(fold, number, "test")


def _looks_like_pairs(value: Any) -> bool:
    if isinstance(value, dict):
        return "user_id" in value
    return np.asarray(value).ndim == 2


def _as_pairs(value: Any, number: int, side: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, dict):
        return (
            np.asarray(value["user_id"], dtype=np.int64),
            np.asarray(value["anime_id"], dtype=np.int64),
        )
    pairs = np.asarray(value, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] < 2:
        raise DataError(
            f"predefined fold {number + 1}: {side} must be (user_id, anime_id) pairs, "
            f"got an array of shape {pairs.shape}"
        )
    return pairs[:, 0], pairs[:, 1]
