"""Tests of the calibrated synthetic Kaggle 2016 generator, at a small scale."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from animerec.data.synthetic import (
    FULL_CATALOGUE,
    FULL_ROWS,
    FULL_USERS,
    RATING_SHARES,
    UNRATED_SHARE,
    generate_kaggle_2016,
)
from animerec.errors import ConfigError

# About the size of the real 4,879-user sample.
SCALE = 0.0664


@pytest.fixture(scope="module")
def small():
    return generate_kaggle_2016(SCALE, random_state=7)


def test_sizes_follow_scale(small):
    assert np.unique(small.user_id).size == round(FULL_USERS * SCALE)
    assert small.n_rows == round(FULL_ROWS * SCALE)
    assert len(small.anime) == FULL_CATALOGUE
    assert small.anime["anime_id"].is_unique


def test_no_repeated_pairs(small):
    pairs = small.user_id.astype(np.int64) * 1_000_000 + small.anime_id
    assert np.unique(pairs).size == pairs.size


def test_rows_sorted_by_user_then_anime(small):
    order = np.lexsort((small.anime_id, small.user_id))
    assert np.array_equal(order, np.arange(small.n_rows))


def test_every_anime_id_in_catalogue(small):
    assert np.isin(small.anime_id, small.anime["anime_id"].to_numpy()).all()


def test_rating_values_valid(small):
    values = set(np.unique(small.rating).tolist())
    assert values <= {-1, *range(1, 11)}


def test_unrated_share_calibrated(small):
    share = float(np.mean(small.rating == -1))
    assert share == pytest.approx(UNRATED_SHARE, abs=0.015)


def test_rating_distribution_calibrated(small):
    rated = small.rating[small.rating > 0]
    counts = np.bincount(rated, minlength=11)[1:] / rated.size
    for value, expected in RATING_SHARES.items():
        assert counts[value - 1] == pytest.approx(expected, abs=0.003), value


def test_history_lengths_calibrated(small):
    lengths = np.bincount(np.unique(small.user_id, return_inverse=True)[1])
    # Real sample: median 56 rows per user, quartiles 18 and 132, 90th percentile 256.
    assert np.median(lengths) == pytest.approx(56, rel=0.15)
    assert np.percentile(lengths, 25) == pytest.approx(18, rel=0.2)
    assert np.percentile(lengths, 75) == pytest.approx(132, rel=0.15)
    assert np.percentile(lengths, 90) == pytest.approx(256, rel=0.15)
    assert lengths.min() >= 1


def test_popularity_long_tail(small):
    counts = pd.Series(small.anime_id).value_counts().reindex(small.anime["anime_id"]).fillna(0)
    ordered = np.sort(counts.to_numpy())[::-1]
    total = ordered.sum()
    top_1 = ordered[: FULL_CATALOGUE // 100].sum() / total
    top_10 = ordered[: FULL_CATALOGUE // 10].sum() / total
    # Real sample: the top 1 % of the catalogue has 23 % of rows, the top 10 % has 77 %.
    assert top_1 == pytest.approx(0.234, abs=0.04)
    assert top_10 == pytest.approx(0.769, abs=0.05)
    # Real sample (4,879 users): 7,380 of 12,294 anime have at least one row.
    assert (ordered > 0).sum() == pytest.approx(7380, rel=0.1)


def test_same_seed_same_data():
    first = generate_kaggle_2016(0.005, random_state=3)
    second = generate_kaggle_2016(0.005, random_state=3)
    assert np.array_equal(first.user_id, second.user_id)
    assert np.array_equal(first.anime_id, second.anime_id)
    assert np.array_equal(first.rating, second.rating)
    pd.testing.assert_frame_equal(first.anime, second.anime)


def test_other_seed_other_data():
    first = generate_kaggle_2016(0.005, random_state=3)
    second = generate_kaggle_2016(0.005, random_state=4)
    assert not np.array_equal(first.anime_id, second.anime_id)


def test_explicit_counts_override_scale():
    data = generate_kaggle_2016(n_users=50, n_rows=500, n_anime=100, random_state=1)
    assert np.unique(data.user_id).size == 50
    assert data.n_rows == 500
    assert len(data.anime) == 100


def test_rejects_too_many_rows():
    with pytest.raises(ConfigError, match="n_rows"):
        generate_kaggle_2016(n_users=2, n_rows=11, n_anime=5)


def test_rejects_nonpositive_scale():
    with pytest.raises(ConfigError, match="scale"):
        generate_kaggle_2016(0)


def test_files_in_kaggle_format(tmp_path):
    data = generate_kaggle_2016(0.005, random_state=2)
    data.write(tmp_path)
    assert (tmp_path / "rating.csv").read_bytes().startswith(b"user_id,anime_id,rating\n")
    anime_bytes = (tmp_path / "anime.csv").read_bytes()
    assert anime_bytes.startswith(b"anime_id,name,genre,type,episodes,rating,members\r\n")

    ratings = pd.read_csv(tmp_path / "rating.csv")
    assert list(ratings.columns) == ["user_id", "anime_id", "rating"]
    assert np.array_equal(ratings["rating"].to_numpy(), data.rating)
    assert np.array_equal(ratings["anime_id"].to_numpy(), data.anime_id)
    anime = pd.read_csv(tmp_path / "anime.csv")
    assert len(anime) == len(data.anime)
    assert set(anime["episodes"].astype(str)) >= {"Unknown", "1"}


@pytest.mark.skipif(
    importlib.util.find_spec("animerec.data.loaders.kaggle2016") is None,
    reason="the Kaggle 2016 loader is not available",
)
def test_files_load_with_kaggle_loader(tmp_path):
    from animerec.data.loaders.kaggle2016 import load_kaggle_2016

    data = generate_kaggle_2016(0.005, random_state=2)
    data.write(tmp_path)
    dataset, report = load_kaggle_2016(tmp_path)

    interactions = dataset.interactions
    assert interactions.n_users == np.unique(data.user_id).size
    assert interactions.n_items == len(data.anime)
    assert interactions.nnz == data.n_rows
    assert interactions.ratings.nnz == int(np.sum(data.rating > 0))
    assert report.rows_read == data.n_rows
    assert report.rows_used == data.n_rows
