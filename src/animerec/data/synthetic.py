"""A synthetic data set in the Kaggle 2016 format, calibrated to the real data's statistics.

Benchmarks need the full-size data (73,515 users, about 7.8 million rows), but only a
4,879-user sample of the real `rating.csv` can be shipped. This module generates a data set
of any size whose shape follows the real one, and writes it as `anime.csv` + `rating.csv`
so that the real loader and ingest path are what a benchmark measures.

What is calibrated, and to what (the sample's figures match the full file's within half a
percentage point where both are known):

- history lengths: the percentiles of rows per user in the real sample, rescaled so the
  total is exactly `n_rows`;
- item popularity: a long tail. An anime's chance of being watched grows with its member
  count as `members ** POPULARITY_EXPONENT`, with member counts drawn from the percentiles of
  the real catalogue's `members`. The exponent was chosen so that the share of rows on the
  top 1 %, 10 % and 50 % of the catalogue is close to the real sample's (23 %, 77 %, 99.7 %);
- the share of `-1` (watched, not rated) rows: 18.9 % of all rows, as in the full file,
  with the real data's mix of users who never, sometimes or always leave a title unrated;
- the 1–10 rating distribution of the rated rows, matched exactly by quantile mapping of a
  latent "user bias + anime quality + noise" value.

Users also belong to one of `TASTE_GROUPS` taste groups that prefer different anime, so the
data has structure a collaborative model can learn (the real data's structure is richer).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from animerec.errors import ConfigError

logger = logging.getLogger(__name__)

# Full-size figures of the real 2016 data (rating.csv: 7,813,737 rows, 1,476,496 of them -1).
FULL_USERS = 73_515
FULL_ROWS = 7_813_737
FULL_CATALOGUE = 12_294
UNRATED_SHARE = 1_476_496 / 7_813_737
MAX_REAL_ANIME_ID = 34_527

# Percentiles (percent, rows per user) of history length in the real 4,879-user sample.
HISTORY_LENGTH_PERCENTILES = (
    (0.0, 1.0), (2.5, 1.0), (5.0, 2.0), (10.0, 5.0), (15.0, 9.0), (20.0, 13.0),
    (25.0, 18.0), (30.0, 24.0), (35.0, 30.3), (40.0, 38.0), (45.0, 47.0), (50.0, 56.0),
    (55.0, 67.0), (60.0, 80.0), (65.0, 93.0), (70.0, 111.0), (75.0, 132.0), (80.0, 160.0),
    (85.0, 198.3), (90.0, 256.0), (92.5, 298.0), (95.0, 363.2), (97.5, 494.1),
    (99.0, 688.2), (99.5, 865.6), (99.9, 1424.9), (100.0, 1993.0),
)

# Percentiles (percent, natural log of members) of the real catalogue's `members` column.
LOG_MEMBERS_PERCENTILES = (
    (0.0, 1.609), (1.0, 3.638), (5.0, 4.060), (10.0, 4.394), (20.0, 5.024), (30.0, 5.846),
    (40.0, 6.637), (50.0, 7.346), (60.0, 7.960), (70.0, 8.710), (80.0, 9.611),
    (90.0, 10.719), (95.0, 11.442), (99.0, 12.531), (99.9, 13.327), (100.0, 13.829),
)

# Share of each rating among the rated rows (the -1 rows excluded), from the real sample.
RATING_SHARES = {
    1: 0.003080, 2: 0.004111, 3: 0.006953, 4: 0.016396, 5: 0.045690,
    6: 0.101337, 7: 0.216917, 8: 0.258603, 9: 0.197623, 10: 0.149289,
}

# Real catalogue: share of each type (0.2 % missing), genre label frequencies, mean score.
TYPE_SHARES = {
    "TV": 0.3080, "OVA": 0.2693, "Movie": 0.1910, "Special": 0.1363,
    "ONA": 0.0536, "Music": 0.0397, None: 0.0021,
}
GENRE_COUNTS = {
    "Comedy": 4645, "Action": 2845, "Adventure": 2348, "Fantasy": 2309, "Sci-Fi": 2070,
    "Drama": 2016, "Shounen": 1712, "Kids": 1609, "Romance": 1464, "School": 1220,
    "Slice of Life": 1220, "Hentai": 1141, "Supernatural": 1037, "Mecha": 944, "Music": 860,
    "Historical": 806, "Magic": 778, "Ecchi": 637, "Shoujo": 603, "Seinen": 547,
    "Sports": 543, "Mystery": 495, "Super Power": 465, "Military": 426, "Parody": 408,
    "Space": 381, "Horror": 369, "Harem": 317, "Demons": 294, "Martial Arts": 265,
    "Dementia": 240, "Psychological": 229, "Police": 197, "Game": 181, "Samurai": 148,
    "Vampire": 102, "Thriller": 87, "Cars": 72, "Shounen Ai": 65, "Shoujo Ai": 55,
    "Josei": 54, "Yuri": 42, "Yaoi": 39,
}
MISSING_GENRE_SHARE = 62 / 12_294
MISSING_SCORE_SHARE = 230 / 12_294
UNKNOWN_EPISODES_SHARE = 0.0277
SCORE_MEAN, SCORE_STD, SCORE_MIN, SCORE_MAX = 6.47, 1.03, 1.67, 10.0

# Popularity: weight = members ** POPULARITY_EXPONENT (chosen by simulation, see above).
POPULARITY_EXPONENT = 1.2
TASTE_GROUPS = 20
# Standard deviation of a taste group's log-multiplier on each anime's weight.
TASTE_SPREAD = 0.8

# -1 rows. The share of users who rate everything falls with history length L as
# NEVER_UNRATED_FLOOR + NEVER_UNRATED_EXTRA * exp(-L / NEVER_UNRATED_DECAY).
# ALWAYS_UNRATED_SHARE of users rate nothing. Everyone else leaves a Beta-distributed
# fraction unrated, with this concentration (alpha + beta).
NEVER_UNRATED_FLOOR = 0.12
NEVER_UNRATED_EXTRA = 0.25
NEVER_UNRATED_DECAY = 40.0
ALWAYS_UNRATED_SHARE = 0.04
UNRATED_BETA_CONCENTRATION = 1.0

# Latent rating = USER_BIAS_STD * N(0,1) + ITEM_QUALITY_WEIGHT * quality + N(0,1), then
# quantile-mapped onto RATING_SHARES.
USER_BIAS_STD = 0.7
ITEM_QUALITY_WEIGHT = 0.45
# Correlation between an anime's quality and its log member count (0.65 in the real catalogue).
QUALITY_MEMBERS_CORRELATION = 0.65

# Users generated per block; bounds the temporary arrays to a few tens of MB.
USERS_PER_BLOCK = 8_192
# Histories longer than this use exact weighted sampling without replacement over the whole
# catalogue instead of drawing with replacement and removing repeats.
LONG_HISTORY = 400

TITLE_WORDS = (
    "Kimi", "Sora", "Hoshi", "Yume", "Tsuki", "Kaze", "Hikari", "Kokoro", "Mirai", "Sekai",
    "Tenshi", "Akuma", "Senki", "Gakuen", "Monogatari", "Densetsu", "Shoujo", "Shounen",
    "Kishi", "Majo", "Ryuu", "Tokei", "Umi", "Yoru", "Asa", "Natsu", "Fuyu", "Haru", "Aki",
    "Hana", "Sakura", "Kuro", "Shiro", "Aoi", "Akai", "Ginga", "Tetsu", "Honoo", "Mizu",
    "Yuusha", "Maou", "Hime", "Ouji", "Neko", "Inu", "Tori", "Kitsune", "Tanuki", "Ookami",
    "Robot", "Senshi", "Ninja", "Samurai", "Idol", "Club", "Quest", "Legend", "Chronicle",
    "Heart", "Star", "Dream", "Night", "Blade", "Magic", "Girls", "Boys", "Days", "World",
)
# Real names contain HTML entities and non-ASCII characters; about 2 % of titles get each.
TITLE_ODDITIES = ("&#039;s", "&quot;Special&quot;", "&amp;", "★", "Kōkō", "Café", "Ōkami", "×")
TITLE_SUFFIX_BY_TYPE = {
    "TV": ("", "", "", " 2nd Season", " II"),
    "OVA": (" OVA", "", " Specials"),
    "Movie": (" Movie", ": The Movie", ""),
    "Special": (" Special", " Recap", ""),
    "ONA": (" (ONA)", " Web", ""),
    "Music": (" PV", ""),
    None: ("",),
}
EPISODES_BY_TYPE = {
    "TV": (12, 13, 24, 25, 26, 50, 51, 10, 11, 52, 100),
    "OVA": (1, 1, 1, 2, 2, 3, 4, 6),
    "Movie": (1,),
    "Special": (1, 1, 1, 2, 3, 6),
    "ONA": (1, 1, 2, 4, 10, 12, 13, 24),
    "Music": (1,),
    None: (1,),
}


@dataclass(frozen=True)
class SyntheticKaggle2016:
    """A generated data set: the catalogue and the rating rows, in the Kaggle 2016 schema.

    `anime` has the columns of the real `anime.csv` (`anime_id, name, genre, type, episodes,
    rating, members`; `episodes` is a string that can be "Unknown"). The rating rows are
    sorted by `user_id`, then `anime_id`; `rating` is int8, 1–10 or -1 for watched but not
    rated. No (user_id, anime_id) pair repeats.
    """

    anime: pd.DataFrame
    user_id: np.ndarray
    anime_id: np.ndarray
    rating: np.ndarray
    random_state: int

    @property
    def n_rows(self) -> int:
        return int(self.user_id.size)

    def ratings_frame(self) -> pd.DataFrame:
        """Return the rating rows as a DataFrame with the columns of `rating.csv`."""
        return pd.DataFrame(
            {"user_id": self.user_id, "anime_id": self.anime_id, "rating": self.rating}
        )

    def write(self, directory: str | Path) -> Path:
        """Write `anime.csv` (CRLF line endings, like the original) and `rating.csv` into
        `directory`, creating it when needed, and return the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.anime.to_csv(
            directory / "anime.csv", index=False, lineterminator="\r\n",
            quoting=csv.QUOTE_MINIMAL,
        )
        _write_ratings_csv(directory / "rating.csv", self.user_id, self.anime_id, self.rating)
        logger.info("wrote %d anime and %d rating rows to %s", len(self.anime), self.n_rows, directory)
        return directory


def generate_kaggle_2016(
    scale: float = 1.0,
    *,
    random_state: int = 0,
    n_users: int | None = None,
    n_rows: int | None = None,
    n_anime: int = FULL_CATALOGUE,
    unrated_share: float = UNRATED_SHARE,
) -> SyntheticKaggle2016:
    """Generate a data set shaped like the Kaggle 2016 anime data.

    `scale` multiplies the full-size user and row counts (73,515 users, 7,813,737 rows);
    `n_users` and `n_rows` override them. The catalogue keeps its full size (`n_anime`)
    at every scale so the popularity tail keeps its shape. The same `random_state` gives
    the same data.
    """
    if not scale > 0:
        raise ConfigError(f"scale must be positive, got {scale}")
    user_count = int(n_users) if n_users is not None else max(1, round(FULL_USERS * scale))
    row_count = int(n_rows) if n_rows is not None else max(1, round(FULL_ROWS * scale))
    if user_count < 1 or n_anime < 1:
        raise ConfigError(f"need at least one user and one anime, got {user_count} and {n_anime}")
    if not user_count <= row_count <= user_count * n_anime:
        raise ConfigError(
            f"n_rows must be between n_users ({user_count}) and n_users × n_anime "
            f"({user_count * n_anime}), got {row_count}"
        )
    if not 0.0 <= unrated_share < 1.0:
        raise ConfigError(f"unrated_share must be in [0, 1), got {unrated_share}")
    rng = np.random.default_rng(random_state)

    catalogue = _generate_catalogue(rng, n_anime)
    lengths = _history_lengths(rng, user_count, row_count, n_anime)
    groups = rng.integers(0, TASTE_GROUPS, size=user_count)
    taste_weights = _taste_weights(rng, catalogue.weight)

    user_idx, item_idx = _sample_histories(rng, lengths, groups, taste_weights)
    rating = _ratings(rng, lengths, user_idx, item_idx, catalogue.quality, unrated_share)

    user_ids = _user_ids(rng, user_count)
    return SyntheticKaggle2016(
        anime=catalogue.frame,
        user_id=user_ids[user_idx],
        anime_id=catalogue.anime_ids[item_idx],
        rating=rating,
        random_state=random_state,
    )


def write_kaggle_2016(
    directory: str | Path, scale: float = 1.0, *, random_state: int = 0, **options
) -> Path:
    """Generate a data set (see `generate_kaggle_2016`) and write it as Kaggle-format CSVs."""
    data = generate_kaggle_2016(scale, random_state=random_state, **options)
    return data.write(directory)


# --- catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalogue:
    frame: pd.DataFrame
    anime_ids: np.ndarray  # sorted, int64; position = item_idx
    weight: np.ndarray  # popularity weight per item_idx
    quality: np.ndarray  # standardised quality per item_idx


def _generate_catalogue(rng: np.random.Generator, n_anime: int) -> _Catalogue:
    id_range = max(MAX_REAL_ANIME_ID, n_anime)
    anime_ids = np.sort(rng.choice(np.arange(1, id_range + 1), size=n_anime, replace=False))

    log_members = _draw_from_percentiles(rng, LOG_MEMBERS_PERCENTILES, n_anime)
    members = np.maximum(np.rint(np.exp(log_members)), 1).astype(np.int64)
    weight = np.exp(POPULARITY_EXPONENT * log_members)

    standard_log_members = (log_members - log_members.mean()) / max(log_members.std(), 1e-9)
    rho = QUALITY_MEMBERS_CORRELATION
    quality = rho * standard_log_members + math.sqrt(1 - rho * rho) * rng.standard_normal(n_anime)
    score = np.clip(np.round(SCORE_MEAN + SCORE_STD * quality, 2), SCORE_MIN, SCORE_MAX)
    score[rng.random(n_anime) < MISSING_SCORE_SHARE] = np.nan

    type_labels = list(TYPE_SHARES)
    type_probabilities = np.array(list(TYPE_SHARES.values()))
    type_choice = rng.choice(len(type_labels), size=n_anime, p=type_probabilities / type_probabilities.sum())
    types = [type_labels[t] for t in type_choice]

    frame = pd.DataFrame(
        {
            "anime_id": anime_ids,
            "name": _titles(rng, types),
            "genre": _genres(rng, n_anime),
            "type": types,
            "episodes": _episodes(rng, types),
            "rating": score,
            "members": members,
        }
    )
    # The real file lists the best-rated anime first; missing scores come last.
    frame = frame.sort_values("rating", ascending=False, kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    return _Catalogue(frame, anime_ids.astype(np.int64), weight, quality)


def _titles(rng: np.random.Generator, types: list[str | None]) -> list[str]:
    words = np.array(TITLE_WORDS, dtype=object)
    titles: list[str] = []
    used: set[str] = set()
    word_counts = rng.integers(2, 4, size=len(types))
    oddity = rng.random(len(types))
    for position, anime_type in enumerate(types):
        title = " ".join(rng.choice(words, size=word_counts[position]))
        if oddity[position] < 0.05:
            title = f"{title} {TITLE_ODDITIES[rng.integers(len(TITLE_ODDITIES))]}"
        suffixes = TITLE_SUFFIX_BY_TYPE[anime_type]
        title += suffixes[rng.integers(len(suffixes))]
        if title in used:
            title = f"{title} {position}"
        used.add(title)
        titles.append(title)
    return titles


def _genres(rng: np.random.Generator, n_anime: int) -> list[str | None]:
    labels = list(GENRE_COUNTS)
    frequencies = np.array(list(GENRE_COUNTS.values()), dtype=np.float64)
    probabilities = frequencies / frequencies.sum()
    # Mean 2.97 labels per anime in the real catalogue (1 to 13).
    counts = np.clip(1 + rng.poisson(1.97, size=n_anime), 1, 13)
    missing = rng.random(n_anime) < MISSING_GENRE_SHARE
    genres: list[str | None] = []
    for position in range(n_anime):
        if missing[position]:
            genres.append(None)
            continue
        chosen = rng.choice(len(labels), size=counts[position], replace=False, p=probabilities)
        genres.append(", ".join(sorted(labels[c] for c in chosen)))
    return genres


def _episodes(rng: np.random.Generator, types: list[str | None]) -> list[str]:
    unknown = rng.random(len(types)) < UNKNOWN_EPISODES_SHARE
    episodes = []
    for position, anime_type in enumerate(types):
        if unknown[position]:
            episodes.append("Unknown")
            continue
        choices = EPISODES_BY_TYPE[anime_type]
        episodes.append(str(choices[rng.integers(len(choices))]))
    return episodes


# --- users and histories -----------------------------------------------------------------


def _draw_from_percentiles(
    rng: np.random.Generator, percentiles: tuple[tuple[float, float], ...], size: int
) -> np.ndarray:
    """Draw values by inverse-CDF interpolation of a percentile table."""
    probabilities = np.array([p for p, _ in percentiles]) / 100.0
    values = np.array([v for _, v in percentiles], dtype=np.float64)
    return np.interp(rng.random(size), probabilities, values)


def _history_lengths(
    rng: np.random.Generator, n_users: int, n_rows: int, n_anime: int
) -> np.ndarray:
    """Draw each user's history length, rescaled so the lengths sum to exactly `n_rows`."""
    # Interpolating in log space keeps the heavy right tail smooth between percentiles.
    log_table = tuple((p, math.log(v)) for p, v in HISTORY_LENGTH_PERCENTILES)
    raw = np.exp(_draw_from_percentiles(rng, log_table, n_users))
    target = raw * (n_rows / raw.sum())
    lengths = np.clip(np.floor(target), 1, n_anime).astype(np.int64)

    # Hand out the remaining rows (or take back the excess) one at a time, users chosen at
    # random among those that still have room, so the total is exact.
    for _ in range(64):
        missing = n_rows - int(lengths.sum())
        if missing == 0:
            break
        room = np.flatnonzero(lengths < n_anime) if missing > 0 else np.flatnonzero(lengths > 1)
        chosen = rng.choice(room, size=min(abs(missing), room.size), replace=False)
        lengths[chosen] += 1 if missing > 0 else -1
    return lengths


def _user_ids(rng: np.random.Generator, n_users: int) -> np.ndarray:
    """Sorted user ids from 1 with a few gaps, as in the real file."""
    id_range = n_users + max(1, n_users // 1000)
    return np.sort(rng.choice(np.arange(1, id_range + 1), size=n_users, replace=False)).astype(np.int64)


def _taste_weights(rng: np.random.Generator, weight: np.ndarray) -> np.ndarray:
    """Return a (TASTE_GROUPS × n_anime) matrix of sampling weights, each row a group's."""
    multipliers = np.exp(TASTE_SPREAD * rng.standard_normal((TASTE_GROUPS, weight.size)))
    return weight[None, :] * multipliers


def _sample_histories(
    rng: np.random.Generator, lengths: np.ndarray, groups: np.ndarray, taste_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample each user's anime without replacement, weighted by their group's weights.

    Returns (user_idx, item_idx) int32 arrays sorted by user, then item.
    """
    n_users = lengths.size
    n_anime = taste_weights.shape[1]
    cumulative = np.cumsum(taste_weights, axis=1)
    cumulative /= cumulative[:, -1:]

    user_parts: list[np.ndarray] = []
    item_parts: list[np.ndarray] = []
    for start in range(0, n_users, USERS_PER_BLOCK):
        stop = min(start + USERS_PER_BLOCK, n_users)
        block_users, block_items = _sample_block(
            rng, lengths[start:stop], groups[start:stop], taste_weights, cumulative
        )
        order = np.argsort(block_users.astype(np.int64) * n_anime + block_items, kind="stable")
        user_parts.append((block_users[order] + start).astype(np.int32))
        item_parts.append(block_items[order].astype(np.int32))
    return np.concatenate(user_parts), np.concatenate(item_parts)


def _sample_block(
    rng: np.random.Generator,
    lengths: np.ndarray,
    groups: np.ndarray,
    taste_weights: np.ndarray,
    cumulative: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the histories of one block of users; user numbers are local to the block."""
    n_anime = taste_weights.shape[1]
    short = np.flatnonzero(lengths <= LONG_HISTORY)

    # Short histories: draw with replacement and keep each user's first distinct draws,
    # which is exactly weighted sampling without replacement, truncated at the draw budget.
    draws_per_user = np.ceil(1.5 * lengths[short] + 10).astype(np.int64)
    owners = np.repeat(short, draws_per_user)
    draws = np.empty(owners.size, dtype=np.int64)
    owner_groups = groups[owners]
    uniform = rng.random(owners.size)
    for group in np.unique(owner_groups):
        in_group = owner_groups == group
        draws[in_group] = np.searchsorted(cumulative[group], uniform[in_group], side="right")
    np.minimum(draws, n_anime - 1, out=draws)

    _, first = np.unique(owners * n_anime + draws, return_index=True)
    first.sort()
    kept_owners = owners[first]
    kept_items = draws[first]
    # Rank of each distinct draw inside its owner's run (runs are contiguous and in order).
    run_start = np.flatnonzero(np.r_[True, kept_owners[1:] != kept_owners[:-1]])
    run_lengths = np.diff(np.r_[run_start, kept_owners.size])
    rank = np.arange(kept_owners.size) - np.repeat(run_start, run_lengths)
    keep = rank < lengths[kept_owners]
    kept_owners, kept_items = kept_owners[keep], kept_items[keep]

    got = np.bincount(kept_owners, minlength=lengths.size)
    complete = np.zeros(lengths.size, dtype=bool)
    complete[short] = got[short] == lengths[short]
    keep_rows = complete[kept_owners]
    user_parts = [kept_owners[keep_rows]]
    item_parts = [kept_items[keep_rows]]

    # Long histories, and short ones whose draws ran out: exact weighted sampling without
    # replacement (Efraimidis–Spirakis keys: the L smallest Exp(1) / weight).
    for user in np.flatnonzero(~complete):
        keys = rng.standard_exponential(n_anime) / taste_weights[groups[user]]
        length = int(lengths[user])
        chosen = np.argpartition(keys, length - 1)[:length] if length < n_anime else np.arange(n_anime)
        user_parts.append(np.full(length, user, dtype=np.int64))
        item_parts.append(chosen.astype(np.int64))
    return np.concatenate(user_parts), np.concatenate(item_parts)


# --- ratings -----------------------------------------------------------------------------


def _ratings(
    rng: np.random.Generator,
    lengths: np.ndarray,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    quality: np.ndarray,
    unrated_share: float,
) -> np.ndarray:
    """Return int8 ratings per row: -1 for watched-but-unrated, else 1–10."""
    n_users = lengths.size
    unrated_probability = _unrated_probability(rng, lengths, unrated_share)
    unrated = rng.random(user_idx.size) < unrated_probability[user_idx]

    user_bias = USER_BIAS_STD * rng.standard_normal(n_users).astype(np.float32)
    rated_users = user_idx[~unrated]
    latent = (
        user_bias[rated_users]
        + np.float32(ITEM_QUALITY_WEIGHT) * quality.astype(np.float32)[item_idx[~unrated]]
        + rng.standard_normal(rated_users.size, dtype=np.float32)
    )
    # Quantile mapping: cut the latent values where the target rating shares say.
    cumulative_shares = np.cumsum(list(RATING_SHARES.values()))[:-1]
    cuts = np.quantile(latent, cumulative_shares) if latent.size else np.zeros(9)
    rated_values = (np.searchsorted(cuts, latent, side="right") + 1).astype(np.int8)

    rating = np.full(user_idx.size, -1, dtype=np.int8)
    rating[~unrated] = rated_values
    return rating


def _unrated_probability(
    rng: np.random.Generator, lengths: np.ndarray, unrated_share: float
) -> np.ndarray:
    """Draw each user's probability of leaving a watched anime unrated.

    Some users rate everything (more of them among short histories), some nothing, the
    rest leave a Beta-distributed share unrated. The Beta mean is solved so that the
    expected share of -1 rows over all rows equals `unrated_share`.
    """
    n_users = lengths.size
    never = NEVER_UNRATED_FLOOR + NEVER_UNRATED_EXTRA * np.exp(-lengths / NEVER_UNRATED_DECAY)
    kind = rng.random(n_users)
    always_mask = kind < ALWAYS_UNRATED_SHARE
    never_mask = ~always_mask & (kind < ALWAYS_UNRATED_SHARE + never)
    sometimes_mask = ~(always_mask | never_mask)

    total_rows = float(lengths.sum())
    sometimes_rows = float(lengths[sometimes_mask].sum())
    always_rows = float(lengths[always_mask].sum())
    if sometimes_rows > 0:
        mean = (unrated_share * total_rows - always_rows) / sometimes_rows
    else:
        mean = 0.0
    mean = float(np.clip(mean, 0.01, 0.99))

    probability = np.zeros(n_users, dtype=np.float64)
    probability[always_mask] = 1.0
    probability[sometimes_mask] = rng.beta(
        mean * UNRATED_BETA_CONCENTRATION,
        (1 - mean) * UNRATED_BETA_CONCENTRATION,
        size=int(sometimes_mask.sum()),
    )
    return probability


def _write_ratings_csv(
    path: Path, user_id: np.ndarray, anime_id: np.ndarray, rating: np.ndarray
) -> None:
    table = pa.table(
        {
            "user_id": pa.array(user_id, type=pa.int64()),
            "anime_id": pa.array(anime_id, type=pa.int64()),
            "rating": pa.array(rating, type=pa.int8()),
        }
    )
    with open(path, "wb") as handle:
        handle.write(b"user_id,anime_id,rating\n")
        pa_csv.write_csv(table, handle, pa_csv.WriteOptions(include_header=False))
