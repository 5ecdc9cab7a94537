"""Splits, the evaluation runner and predefined split folders."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from animerec.data.catalog import Catalog
from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions
from animerec.errors import ConfigError, DataError
from animerec.evaluation import runner, splits

N_ITEMS = 30
N_USERS = 60


def _pairs(matrix: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist()))


def _id_pairs(interactions: Interactions) -> set[tuple[int, int]]:
    coo = interactions.user_items.tocoo()
    users = interactions.users.ids[coo.row]
    items = interactions.items.ids[coo.col]
    return set(zip(users.tolist(), items.tolist()))


def make_dataset(seed: int = 0) -> Dataset:
    """A small dataset with two taste groups, unrated rows and one adult title."""
    rng = np.random.default_rng(seed)
    anime_ids = np.arange(100, 100 + N_ITEMS * 3, 3)
    genres = [("Action",) if i < N_ITEMS // 2 else ("Romance", "Drama") for i in range(N_ITEMS)]
    genres[-1] = ("Hentai",)
    frame = pd.DataFrame(
        {
            "anime_id": anime_ids,
            "title": [f"Anime {i}" for i in range(N_ITEMS)],
            "genres": genres,
            "type": ["TV"] * N_ITEMS,
            "episodes": [12] * N_ITEMS,
            "score": np.linspace(6, 9, N_ITEMS),
            "members": np.arange(N_ITEMS) * 10,
        }
    )
    catalog = Catalog(frame)
    user_ids, item_ids, ratings = [], [], []
    for user in range(N_USERS):
        group = user % 2
        length = 3 + user % 13
        pool = np.arange(N_ITEMS // 2) + group * (N_ITEMS // 2 - 1)
        chosen = rng.choice(pool, size=min(length, pool.size), replace=False)
        for item in chosen:
            user_ids.append(5000 + 7 * user)
            item_ids.append(int(anime_ids[item]))
            ratings.append(float("nan") if rng.random() < 0.2 else float(rng.integers(1, 11)))
    interactions = Interactions.from_arrays(
        np.array(user_ids), np.array(item_ids), np.array(ratings), items=catalog.items
    )
    return Dataset("tiny", catalog, interactions, format="test")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset()


# --- strong generalization ---------------------------------------------------------------


def test_strong_split_users_disjoint(dataset):
    split = splits.strong_generalization_split(
        dataset.interactions, test_users=0.25, min_history=5, random_state=3
    )
    train_users = set(split.train.users.ids.tolist())
    test_users = set(split.user_ids.tolist())
    assert not train_users & test_users
    assert train_users | test_users == set(dataset.interactions.users.ids.tolist())
    assert split.train_user_idx is None


def test_strong_split_partitions_each_history(dataset):
    split = splits.strong_generalization_split(
        dataset.interactions, test_users=0.25, min_history=5, random_state=3
    )
    original = _id_pairs(dataset.interactions)
    fold_in = _id_pairs(split.fold_in)
    target = _id_pairs(split.target)
    assert not fold_in & target
    held_out = {pair for pair in original if pair[0] in set(split.user_ids.tolist())}
    assert fold_in | target == held_out
    assert _id_pairs(split.train) == original - held_out


def test_strong_split_fold_in_sizes(dataset):
    split = splits.strong_generalization_split(
        dataset.interactions, test_users=0.25, fold_in_fraction=0.8, min_history=5, random_state=3
    )
    fold_lengths = np.diff(split.fold_in.user_items.indptr)
    target_lengths = np.diff(split.target.user_items.indptr)
    totals = fold_lengths + target_lengths
    assert np.all(totals >= 5)
    expected = np.clip(np.floor(0.8 * totals + 0.5), 1, totals - 1)
    np.testing.assert_array_equal(fold_lengths, expected)


def test_strong_split_ratings_follow_pairs(dataset):
    split = splits.strong_generalization_split(
        dataset.interactions, test_users=0.25, min_history=5, random_state=3
    )
    for part in (split.fold_in, split.target, split.train):
        rated = _pairs(part.ratings)
        assert rated <= _pairs(part.user_items)
    original_ratings = dataset.interactions.ratings.nnz
    total = split.fold_in.ratings.nnz + split.target.ratings.nnz + split.train.ratings.nnz
    assert total == original_ratings


def test_strong_split_same_seed_same_split(dataset):
    first = splits.strong_generalization_split(dataset.interactions, random_state=11)
    second = splits.strong_generalization_split(dataset.interactions, random_state=11)
    other = splits.strong_generalization_split(dataset.interactions, random_state=12)
    assert np.array_equal(first.user_ids, second.user_ids)
    assert _id_pairs(first.target) == _id_pairs(second.target)
    assert _id_pairs(first.target) != _id_pairs(other.target)


def test_strong_split_default_admits_two_item_histories():
    # Users with 1, 2, 3 and 5 items: the default lets in every user with 2 or more.
    lengths = [1, 2, 3, 5]
    user_ids = np.repeat(np.arange(len(lengths)) + 10, lengths)
    item_ids = np.concatenate([np.arange(n) + 100 for n in lengths])
    interactions = Interactions.from_arrays(
        user_ids, item_ids, np.full(user_ids.size, np.nan), items=IdMap(np.arange(100, 105))
    )
    split = splits.strong_generalization_split(interactions, test_users=3, random_state=0)
    assert sorted(split.user_ids.tolist()) == [11, 12, 13]
    assert split.settings["min_history"] == 2
    # round-half-up(0.8 × n) clipped to 1..n-1: 2 -> 1, 3 -> 2, 5 -> 4.
    fold_lengths = dict(zip(split.user_ids.tolist(), np.diff(split.fold_in.user_items.indptr).tolist()))
    assert fold_lengths == {11: 1, 12: 2, 13: 4}


@pytest.mark.parametrize("fold_in_max", [1, 2, 5])
def test_strong_split_fold_in_max_moves_the_rest_to_the_target(dataset, fold_in_max):
    plain = splits.strong_generalization_split(dataset.interactions, test_users=0.25, random_state=3)
    capped = splits.strong_generalization_split(
        dataset.interactions, test_users=0.25, fold_in_max=fold_in_max, random_state=3
    )
    # The same users are tested, each with the same items in total.
    assert np.array_equal(plain.user_ids, capped.user_ids)
    assert _id_pairs(capped.fold_in) | _id_pairs(capped.target) == (
        _id_pairs(plain.fold_in) | _id_pairs(plain.target)
    )
    assert not _id_pairs(capped.fold_in) & _id_pairs(capped.target)
    plain_lengths = np.diff(plain.fold_in.user_items.indptr)
    capped_lengths = np.diff(capped.fold_in.user_items.indptr)
    np.testing.assert_array_equal(capped_lengths, np.minimum(plain_lengths, fold_in_max))
    assert np.all(np.diff(capped.target.user_items.indptr) >= 1)
    assert capped.settings["fold_in_max"] == fold_in_max


def test_runner_fold_in_max_fills_the_short_buckets(dataset):
    result = runner.evaluate(dataset, [("popular", {})], fold_in_max=1, seed=2, n_bootstrap=20)
    buckets = result["models"]["popular"]["by_history_length"]
    assert buckets["1"]["n_users"] == result["protocol"]["n_test_users"]
    assert result["protocol"]["settings"]["fold_in_max"] == 1
    assert result["settings"]["fold_in_max"] == 1
    low, high = buckets["1"]["ci"]["ndcg@10"]
    assert low <= buckets["1"]["ndcg@10"] <= high
    with pytest.raises(ConfigError, match="fold_in_max"):
        runner.evaluate(dataset, [("popular", {})], protocol="user-holdout", fold_in_max=2)


def test_strong_split_count_and_eligibility(dataset):
    split = splits.strong_generalization_split(
        dataset.interactions, test_users=7, min_history=10, random_state=0
    )
    assert split.n_users == 7
    lengths = np.diff(split.fold_in.user_items.indptr) + np.diff(split.target.user_items.indptr)
    assert np.all(lengths >= 10)
    assert split.settings["min_history"] == 10


@pytest.mark.parametrize(
    "bad_settings",
    [
        {"test_users": 0.0},
        {"test_users": 1.5},
        {"fold_in_fraction": 1.0},
        {"min_history": 1},
        {"min_history": 1000},
        {"fold_in_max": 0},
    ],
)
def test_strong_split_bad_settings_raise(dataset, bad_settings):
    with pytest.raises(ConfigError):
        splits.strong_generalization_split(dataset.interactions, **bad_settings)


# --- other top-n protocols ---------------------------------------------------------------


def test_user_holdout_keeps_users_in_training(dataset):
    split = splits.user_holdout_split(dataset.interactions, test_fraction=0.2, random_state=2)
    assert split.train.users == dataset.interactions.users
    original = _id_pairs(dataset.interactions)
    assert not _id_pairs(split.train) & _id_pairs(split.target)
    assert _id_pairs(split.train) | _id_pairs(split.target) == original
    # The fold-in of each evaluated user is exactly their training row.
    train_rows = split.train.user_items[split.train_user_idx]
    assert _pairs(train_rows) == _pairs(split.fold_in.user_items)


def test_leave_k_out_target_sizes(dataset):
    split = splits.leave_k_out_split(dataset.interactions, leave_k=2, random_state=4)
    target_lengths = np.diff(split.target.user_items.indptr)
    assert np.all(target_lengths == 2)
    assert np.all(np.diff(split.fold_in.user_items.indptr) >= 1)


def test_temporal_without_timestamps_raises(dataset):
    with pytest.raises(ConfigError, match="timestamps"):
        splits.temporal_split(dataset.interactions, None)


def test_temporal_targets_latest_items(dataset):
    user_items = dataset.interactions.user_items.copy()
    user_items.sort_indices()
    times = user_items.copy()
    # Later columns are later in time, except the timestamps are reversed for user row 0.
    times.data = times.indices.astype(np.float32) + 1
    start, end = times.indptr[0], times.indptr[1]
    times.data[start:end] = times.data[start:end][::-1]
    split = splits.temporal_split(
        dataset.interactions, times, test_fraction=0.25, min_history=3, random_state=0
    )
    for row, user_idx in enumerate(split.train_user_idx):
        fold_items = split.fold_in.user_items[row].indices
        target_items = split.target.user_items[row].indices
        if user_idx == 0:
            assert fold_items.min() > target_items.max()
        else:
            assert fold_items.max() < target_items.min()


# --- runner ------------------------------------------------------------------------------

EXPECTED_KEYS = {"recall@20", "ndcg@10", "precision@10", "map@10", "hit_rate@10", "coverage@10"}


def test_runner_on_tiny_dataset(dataset):
    result = runner.evaluate(
        dataset,
        [("popular", {})],
        test_users=0.25,
        seed=5,
        n_bootstrap=50,
    )
    json.dumps(result)  # the result is JSON-ready
    popular = result["models"]["popular"]
    assert EXPECTED_KEYS <= set(popular)
    for key in EXPECTED_KEYS:
        assert 0.0 <= popular[key] <= 1.0
    protocol = result["protocol"]
    assert protocol["name"] == "strong-generalization"
    assert protocol["seed"] == 5
    assert protocol["n_test_users"] == round(0.25 * protocol["settings"]["n_eligible_users"])
    # Strong generalization tests everyone with a fold-in and a target by default.
    assert protocol["settings"]["min_history"] == 2
    assert protocol["settings"]["fold_in_max"] is None
    assert result["settings"]["min_history"] == 2
    assert protocol["ranking"]["include_adult"] is False
    assert set(popular["timing"]) >= {"fit_seconds", "rank_seconds"}
    assert popular["ci"]["ndcg@10"][0] <= popular["ndcg@10"] <= popular["ci"]["ndcg@10"][1]
    buckets = popular["by_history_length"]
    assert sum(bucket["n_users"] for bucket in buckets.values()) == protocol["n_test_users"]


def test_runner_matches_hand_computed_popular(dataset):
    # Popularity recommends the same list to everyone: check recall@20 by hand.
    result = runner.evaluate(dataset, [("popular", {})], seed=8, n_bootstrap=10)
    split = splits.strong_generalization_split(dataset.interactions, test_users=0.2, random_state=8)
    counts = split.train.user_items.getnnz(axis=0)
    adult = dataset.catalog.adult_mask(dataset.interactions.items)
    order = sorted(
        (i for i in range(N_ITEMS) if counts[i] > 0 and not adult[i]),
        key=lambda i: (-counts[i], i),
    )
    recalls = []
    for row in range(split.n_users):
        seen = set(split.fold_in.user_items[row].indices.tolist())
        listed = [i for i in order if i not in seen][:20]
        target = set(split.target.user_items[row].indices.tolist())
        recalls.append(len(target.intersection(listed)) / len(target))
    assert result["models"]["popular"]["recall@20"] == pytest.approx(np.mean(recalls))


def test_runner_excludes_fold_in_and_adult(dataset):
    split = splits.strong_generalization_split(dataset.interactions, random_state=1)
    from animerec.models.registry import create_model
    from animerec.ranking import Ranker, RankingOptions

    model = create_model("popular").fit(dataclasses.replace(dataset, interactions=split.train))
    ranker = Ranker(dataset.catalog, dataset.interactions.items)
    recommended = runner.rank_split(model, split, ranker, RankingOptions(n=20), batch_size=4)
    adult = np.flatnonzero(dataset.catalog.adult_mask(dataset.interactions.items))
    for row in range(split.n_users):
        listed = set(recommended[row][recommended[row] >= 0].tolist())
        assert not listed & set(split.fold_in.user_items[row].indices.tolist())
        assert not listed & set(adult.tolist())


def test_runner_same_seed_same_result(dataset):
    first = runner.evaluate(dataset, [("popular", {})], seed=3, n_bootstrap=20)
    second = runner.evaluate(dataset, [("popular", {})], seed=3, n_bootstrap=20)
    assert first["models"]["popular"]["ndcg@10"] == second["models"]["popular"]["ndcg@10"]
    assert first["models"]["popular"]["ci"] == second["models"]["popular"]["ci"]


@pytest.mark.parametrize("protocol", ["user-holdout", "leave-k-out"])
def test_runner_other_ranking_protocols(dataset, protocol):
    result = runner.evaluate(dataset, [("popular", {})], protocol=protocol, n_bootstrap=10)
    assert result["protocol"]["name"] == protocol
    assert 0.0 <= result["models"]["popular"]["ndcg@10"] <= 1.0


def test_runner_unknown_protocol_raises(dataset):
    with pytest.raises(ConfigError, match="unknown protocol"):
        runner.evaluate(dataset, [("popular", {})], protocol="nonsense")


def test_runner_unknown_model_raises(dataset):
    with pytest.raises(ConfigError, match="unknown model"):
        runner.evaluate(dataset, [("no-such-model", {})])


def test_runner_temporal_without_timestamps_raises(dataset):
    with pytest.raises(ConfigError, match="timestamps"):
        runner.evaluate(dataset, [("popular", {})], protocol="temporal")


# --- predefined split folder -------------------------------------------------------------


def _write_split(folder: Path, fold_rows: list[tuple], target_rows: list[tuple]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(fold_rows, columns=["user_id", "anime_id", "rating"]).to_csv(
        folder / "fold_in.csv", index=False
    )
    pd.DataFrame(target_rows, columns=["user_id", "anime_id"]).to_csv(
        folder / "target.csv", index=False
    )


def test_split_dir_round_trip(dataset, tmp_path):
    items = dataset.interactions.items.ids
    _write_split(
        tmp_path / "split",
        [(1, int(items[0]), 8), (1, int(items[1]), -1), (2, int(items[20]), 5)],
        [(1, int(items[2])), (2, int(items[21])), (2, int(items[22]))],
    )
    split = splits.load_split_dir(tmp_path / "split", dataset)
    assert split.user_ids.tolist() == [1, 2]
    assert split.train.users == dataset.interactions.users
    assert np.diff(split.fold_in.user_items.indptr).tolist() == [2, 1]
    assert np.diff(split.target.user_items.indptr).tolist() == [1, 2]
    # -1 is watched without a rating.
    assert split.fold_in.ratings.nnz == 2


def test_split_dir_runner(dataset, tmp_path):
    items = dataset.interactions.items.ids
    _write_split(
        tmp_path / "split",
        [(1, int(items[0]), 8), (2, int(items[20]), 5)],
        [(1, int(items[2])), (2, int(items[21]))],
    )
    result = runner.evaluate(
        dataset, [("popular", {})], split_dir=tmp_path / "split", n_bootstrap=10
    )
    assert result["protocol"]["name"] == "split-dir"
    assert result["protocol"]["n_test_users"] == 2
    assert "split_dir" in result["protocol"]["settings"]


def test_split_dir_overlapping_users(dataset, tmp_path):
    items = dataset.interactions.items.ids
    known_user = int(dataset.interactions.users.ids[0])
    _write_split(
        tmp_path / "split",
        [(known_user, int(items[0]), 8)],
        [(known_user, int(items[2]))],
    )
    with pytest.raises(DataError, match="also in dataset"):
        splits.load_split_dir(tmp_path / "split", dataset, overlap="raise")
    split = splits.load_split_dir(tmp_path / "split", dataset)
    assert known_user not in split.train.users
    assert split.train.n_users == dataset.interactions.n_users - 1


def test_split_dir_saved_then_reused(dataset, tmp_path):
    folder = tmp_path / "saved"
    first = runner.evaluate(
        dataset, [("popular", {})], split_dir=folder, seed=9, n_bootstrap=10
    )
    assert splits.has_split_files(folder)
    assert first["protocol"]["name"] == "strong-generalization"
    second = runner.evaluate(
        dataset, [("popular", {})], split_dir=folder, seed=1, n_bootstrap=10
    )
    assert second["protocol"]["name"] == "split-dir"
    assert second["protocol"]["n_test_users"] == first["protocol"]["n_test_users"]
    for metric in ("ndcg@10", "recall@20", "coverage@10"):
        assert second["models"]["popular"][metric] == pytest.approx(
            first["models"]["popular"][metric]
        )


def test_split_dir_keeps_ratings(dataset, tmp_path):
    split = splits.strong_generalization_split(dataset.interactions, random_state=2)
    splits.save_split_dir(split, tmp_path / "saved")
    loaded = splits.load_split_dir(tmp_path / "saved", dataset)
    assert _id_pairs(loaded.fold_in) == _id_pairs(split.fold_in)
    assert _id_pairs(loaded.target) == _id_pairs(split.target)
    assert _pairs(loaded.fold_in.ratings) == _pairs(split.fold_in.ratings)
    np.testing.assert_allclose(
        np.sort(loaded.fold_in.ratings.data), np.sort(split.fold_in.ratings.data)
    )
    assert loaded.train.users == split.train.users


def test_split_dir_unknown_anime(dataset, tmp_path):
    items = dataset.interactions.items.ids
    _write_split(tmp_path / "split", [(1, 999_999, 8)], [(1, int(items[2]))])
    with pytest.raises(DataError, match="fold_in.csv:2"):
        splits.load_split_dir(tmp_path / "split", dataset)


def test_split_dir_missing_file(dataset, tmp_path):
    (tmp_path / "split").mkdir()
    with pytest.raises(DataError, match="fold_in.csv"):
        splits.load_split_dir(tmp_path / "split", dataset)


def test_split_dir_pair_on_both_sides(dataset, tmp_path):
    items = dataset.interactions.items.ids
    _write_split(tmp_path / "split", [(1, int(items[2]), 8)], [(1, int(items[2]))])
    with pytest.raises(DataError, match="more than once"):
        splits.load_split_dir(tmp_path / "split", dataset)


# --- rating protocols --------------------------------------------------------------------


def test_rating_kfold_partitions_ratings(dataset):
    folds = splits.rating_kfold_splits(dataset.interactions, n_folds=4, random_state=0)
    n_items = dataset.interactions.n_items
    seen_keys: list[int] = []
    for fold in folds:
        keys = fold.user_idx * n_items + fold.item_idx
        seen_keys.extend(keys.tolist())
        train_pairs = _pairs(fold.train.user_items)
        assert not train_pairs & set(zip(fold.user_idx.tolist(), fold.item_idx.tolist()))
    assert len(seen_keys) == len(set(seen_keys)) == dataset.interactions.ratings.nnz


def test_rating_holdout_values_match_data(dataset):
    fold = splits.rating_holdout_split(dataset.interactions, test_fraction=0.3, random_state=0)
    ratings = dataset.interactions.ratings
    expected = np.asarray(ratings[fold.user_idx, fold.item_idx]).ravel()
    np.testing.assert_allclose(fold.ratings, expected)
    assert fold.ratings.size == round(0.3 * ratings.nnz)


def test_predefined_folds_from_metadata(dataset):
    ratings = dataset.interactions.ratings.tocoo()
    users = dataset.interactions.users.ids[ratings.row]
    items = dataset.interactions.items.ids[ratings.col]
    pairs = np.column_stack([users, items])
    with_folds = dataclasses.replace(
        dataset, metadata={"folds": [{"name": "a", "test": pairs[:10]}, {"test": pairs[10:25]}]}
    )
    folds = splits.predefined_rating_folds(with_folds)
    assert [fold.ratings.size for fold in folds] == [10, 15]


def test_predefined_folds_missing_raise(dataset):
    with pytest.raises(ConfigError, match="no predefined folds"):
        splits.predefined_rating_folds(dataset)
    with_folds = dataclasses.replace(dataset, metadata={"folds_ab": [{"test": [[1, 2]]}]})
    with pytest.raises(ConfigError, match="folds_ab"):
        splits.predefined_rating_folds(with_folds)


def test_runner_skips_models_without_ratings(dataset):
    result = runner.evaluate(dataset, [("popular", {})], protocol="rating-kfold", n_folds=3)
    assert "skipped" in result["models"]["popular"]


# --- real data ---------------------------------------------------------------------------


def _data_root() -> Path:
    configured = os.environ.get("ANIMEREC_TEST_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.slow
def test_real_data_strong_split():
    folder = _data_root() / "anime-2016"
    if not (folder / "rating.csv").is_file():
        pytest.skip(f"real data not found at {folder}; set ANIMEREC_TEST_DATA")
    from animerec.data.loaders import load_format

    real, _ = load_format("kaggle-2016", folder)
    split = splits.strong_generalization_split(real.interactions, test_users=500, random_state=0)
    assert split.n_users == 500
    assert not set(split.user_ids.tolist()) & set(split.train.users.ids.tolist())
    total = split.train.nnz + split.fold_in.nnz + split.target.nnz
    assert total == real.interactions.nnz


# --- rating runner -----------------------------------------------------------------------


def test_rating_runner_fold_values(dataset):
    result = runner.evaluate(
        dataset, [("baseline", {})], protocol="rating-kfold", n_folds=3, seed=4
    )
    baseline = result["models"]["baseline"]
    folds = splits.rating_kfold_splits(dataset.interactions, n_folds=3, random_state=4)
    from animerec.evaluation import metrics
    from animerec.models.registry import create_model

    expected = []
    for fold in folds:
        model = create_model("baseline").fit(dataclasses.replace(dataset, interactions=fold.train))
        predicted = model.predict_ratings(fold.user_idx, fold.item_idx)
        expected.append(metrics.rmse(predicted, fold.ratings))
    fold_rmse = [fold["rmse"] for fold in baseline["folds"]]
    np.testing.assert_allclose(fold_rmse, expected, rtol=1e-6)
    assert baseline["rmse"] == pytest.approx(np.mean(expected))
    assert baseline["rmse_std"] == pytest.approx(np.std(expected, ddof=1))
    assert result["protocol"]["n_folds"] == 3
    assert sum(result["protocol"]["n_test_ratings"]) == dataset.interactions.ratings.nnz


def test_rating_holdout_has_no_spread(dataset):
    result = runner.evaluate(dataset, [("baseline", {})], protocol="rating-holdout")
    baseline = result["models"]["baseline"]
    assert baseline["rmse_std"] is None
    assert baseline["rmse"] >= baseline["mae"]


def test_rating_predefined_runner(dataset):
    ratings = dataset.interactions.ratings.tocoo()
    pairs = np.column_stack(
        [dataset.interactions.users.ids[ratings.row], dataset.interactions.items.ids[ratings.col]]
    )
    with_folds = dataclasses.replace(
        dataset,
        metadata={"folds": [{"name": "u1", "test": pairs[::3]}, {"name": "u2", "test": pairs[1::3]}]},
    )
    result = runner.evaluate(with_folds, [("baseline", {})], protocol="rating-predefined")
    assert result["protocol"]["settings"]["fold_names"] == ["u1", "u2"]
    assert len(result["models"]["baseline"]["folds"]) == 2


def test_predefined_folds_train_and_test(dataset):
    ratings = dataset.interactions.ratings.tocoo()
    pairs = np.column_stack(
        [dataset.interactions.users.ids[ratings.row], dataset.interactions.items.ids[ratings.col]]
    )
    with_folds = dataclasses.replace(dataset, metadata={"folds": [(pairs[10:], pairs[:10])]})
    (fold,) = splits.predefined_rating_folds(with_folds)
    assert fold.ratings.size == 10
    # Training is exactly the train pairs: no watched-but-unrated rows.
    assert fold.train.nnz == pairs.shape[0] - 10
    assert fold.train.ratings.nnz == pairs.shape[0] - 10
    overlapping = dataclasses.replace(dataset, metadata={"folds": [(pairs, pairs[:10])]})
    with pytest.raises(DataError, match="share a pair"):
        splits.predefined_rating_folds(overlapping)


def test_predefined_folds_unknown_pair(dataset):
    with_folds = dataclasses.replace(dataset, metadata={"folds": [{"test": [[1, 2]]}]})
    with pytest.raises(DataError, match="user_id 1, anime_id 2"):
        splits.predefined_rating_folds(with_folds)


# --- temporal, buckets, popularity, flags ------------------------------------------------


def test_runner_temporal_with_timestamps(dataset):
    coo = dataset.interactions.user_items.tocoo()
    user_ids = dataset.interactions.users.ids[coo.row]
    anime_ids = dataset.interactions.items.ids[coo.col]
    rating_values = np.asarray(dataset.interactions.ratings[coo.row, coo.col]).ravel()
    rating_values = np.where(rating_values == 0, np.nan, rating_values)
    # Time grows with the column, so the target is each user's highest item positions.
    timestamps = 1_000_000 + coo.col.astype(np.int64) * 60
    interactions = Interactions.from_arrays(
        user_ids, anime_ids, rating_values, items=dataset.interactions.items,
        timestamps=timestamps,
    )
    timed = dataclasses.replace(dataset, interactions=interactions)
    split = splits.temporal_split(interactions, test_fraction=0.2, random_state=0)
    for row in range(split.n_users):
        assert split.fold_in.user_items[row].indices.max() < split.target.user_items[row].indices.min()
    assert split.train.timestamps is not None
    assert split.train.timestamps.nnz == split.train.nnz
    result = runner.evaluate(timed, [("popular", {})], protocol="temporal", n_bootstrap=10)
    assert result["protocol"]["name"] == "temporal"


def test_history_buckets_hand_values():
    per_user = {"ndcg@10": np.array([1.0, 0.5, np.nan, 0.25, 0.0])}
    recommended = np.array([[0, 1], [1, -1], [2, 3], [0, 3], [-1, -1]])
    target = sp.csr_matrix(np.ones((5, 4), dtype=np.float32))
    lengths = np.array([1, 3, 5, 6, 30])
    context = runner.RankingContext(
        k=2, recall_k=2, candidates=np.ones(4, dtype=bool), item_counts=np.ones(4, dtype=np.int64),
        n_train_users=10, item_genres=sp.csr_matrix((4, 1), dtype=np.float32),
    )
    buckets = runner.by_history_length(per_user, recommended, target, lengths, context)
    assert list(buckets) == ["1", "2-5", "6-20", "21+"]
    assert [bucket["n_users"] for bucket in buckets.values()] == [1, 2, 1, 1]
    assert buckets["1"]["ndcg@10"] == 1.0
    # The undefined user in "2-5" is skipped: the mean is over the one defined value.
    assert buckets["2-5"]["ndcg@10"] == 0.5
    assert buckets["2-5"]["coverage@2"] == pytest.approx(3 / 4)
    assert buckets["21+"]["user_coverage@2"] == 0.0
    assert "ci" not in buckets["1"]


def test_history_bucket_intervals():
    per_user = {"ndcg@10": np.array([1.0, 0.0, 0.5, 0.5])}
    recommended = np.zeros((4, 1), dtype=np.int64)
    context = runner.RankingContext(
        k=1, recall_k=1, candidates=np.ones(1, dtype=bool), item_counts=np.ones(1, dtype=np.int64),
        n_train_users=1, item_genres=sp.csr_matrix((1, 1), dtype=np.float32),
    )
    buckets = runner.by_history_length(
        per_user, recommended, sp.csr_matrix(np.ones((4, 1))), np.array([1, 3, 3, 3]), context,
        np.random.default_rng(0), 200,
    )
    # One user: every resample is that user, so the interval is a point.
    assert buckets["1"]["ci"]["ndcg@10"] == [1.0, 1.0]
    low, high = buckets["2-5"]["ci"]["ndcg@10"]
    assert buckets["2-5"]["ndcg@10"] == pytest.approx(1 / 3)
    assert 0.0 <= low < 1 / 3 < high <= 0.5
    assert "ci" not in buckets["6-20"]


def test_empty_history_bucket_appears():
    per_user = {"ndcg@10": np.array([1.0])}
    context = runner.RankingContext(
        k=1, recall_k=1, candidates=np.ones(1, dtype=bool), item_counts=np.ones(1, dtype=np.int64),
        n_train_users=1, item_genres=sp.csr_matrix((1, 1), dtype=np.float32),
    )
    buckets = runner.by_history_length(
        per_user, np.array([[0]]), sp.csr_matrix(np.ones((1, 1))), np.array([0]), context
    )
    assert buckets["0"]["n_users"] == 1
    assert buckets["1"] == {"n_users": 0}


def test_popularity_groups_and_profile():
    # Watches total 100: item 0 alone is 40 %, so it fills groups 0..3 and starts group 0.
    counts = np.array([40, 20, 10, 10, 10, 0, 5, 5])
    candidates = np.ones(counts.size, dtype=bool)
    candidates[5] = False
    groups = runner.popularity_groups(counts, candidates)
    # Shares of watches before each item (sorted 0, 1, 2, 3, 4, 6, 7): 0, .4, .6, .7, .8, .9, .95.
    assert groups.tolist() == [0, 4, 6, 7, 8, -1, 9, 9]
    profile = runner.popularity_profile(np.array([[0, 0, 7, -1]]), groups)
    assert profile[0] == pytest.approx(2 / 3)
    assert profile[9] == pytest.approx(1 / 3)
    assert sum(profile) == pytest.approx(1.0)


def test_site_aggregates_flag(dataset):
    result = runner.evaluate(
        dataset,
        [("popular", {}), ("content", {"use_site_aggregates": True})],
        n_bootstrap=10,
    )
    assert result["models"]["content"]["uses_site_aggregates"] is True
    assert result["models"]["popular"]["uses_site_aggregates"] is False
    assert result["site_aggregates_used_by"] == ["content"]


def test_runner_bootstrap_intervals_cover_metrics(dataset):
    result = runner.evaluate(dataset, [("itemknn", {})], n_bootstrap=100, seed=1)
    values = result["models"]["itemknn"]
    for metric in result["metrics"]:
        low, high = values["ci"][metric]
        assert low <= values[metric] + 1e-12, metric
        assert values[metric] <= high + 1e-12, metric


@pytest.mark.slow
def test_real_movielens_official_folds():
    folder = _data_root() / "movielens-100k"
    if not (folder / "u1.test").is_file():
        pytest.skip(f"MovieLens 100K not found at {folder}; set ANIMEREC_TEST_DATA")
    from animerec.data.loaders import load_format

    movielens, _ = load_format("movielens-100k", folder)
    result = runner.evaluate(movielens, [("baseline", {})], protocol="rating-predefined")
    baseline = result["models"]["baseline"]
    assert [fold["name"] for fold in baseline["folds"]] == ["u1", "u2", "u3", "u4", "u5"]
    assert [fold["n_test"] for fold in baseline["folds"]] == [20_000] * 5
    # A user-and-item bias baseline lands near RMSE 0.95 and MAE 0.75 on these folds. The
    # bounds catch a broken split or metric, not small tuning changes.
    assert 0.93 < baseline["rmse"] < 0.96
    assert 0.735 < baseline["mae"] < 0.765


# --- split properties --------------------------------------------------------------------


def _random_interactions(seed: int, n_users: int, n_items: int, density: float) -> Interactions:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    rows, cols = np.nonzero(mask)
    ratings = np.where(rng.random(rows.size) < 0.3, np.nan, rng.integers(1, 11, rows.size))
    items = IdMap(np.arange(n_items) * 2 + 1, kind="anime_id")
    return Interactions.from_arrays(
        rows.astype(np.int64) + 100, cols.astype(np.int64) * 2 + 1, ratings, items=items
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(8, 40),
    st.floats(0.2, 0.9),
    st.floats(0.1, 0.9),
)
def test_strong_split_partition_property(seed, n_users, density, fold_in_fraction):
    interactions = _random_interactions(seed, n_users, 15, density)
    eligible = int((np.diff(interactions.user_items.indptr) >= 2).sum())
    if eligible < 2:
        return
    split = splits.strong_generalization_split(
        interactions, test_users=1, min_history=2, fold_in_fraction=fold_in_fraction,
        random_state=seed,
    )
    fold_in, target = _id_pairs(split.fold_in), _id_pairs(split.target)
    held = {pair for pair in _id_pairs(interactions) if pair[0] in set(split.user_ids.tolist())}
    assert not fold_in & target
    assert fold_in | target == held
    assert np.all(np.diff(split.fold_in.user_items.indptr) >= 1)
    assert np.all(np.diff(split.target.user_items.indptr) >= 1)
    assert not set(split.train.users.ids.tolist()) & set(split.user_ids.tolist())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 30), st.floats(0.2, 0.9), st.floats(0.05, 0.95))
def test_user_holdout_partition_property(seed, n_users, density, test_fraction):
    interactions = _random_interactions(seed, n_users, 12, density)
    if int((np.diff(interactions.user_items.indptr) >= 2).sum()) == 0:
        return
    split = splits.user_holdout_split(
        interactions, test_fraction=test_fraction, min_history=2, random_state=seed
    )
    assert _id_pairs(split.train) | _id_pairs(split.target) == _id_pairs(interactions)
    assert not _id_pairs(split.train) & _id_pairs(split.target)
    assert split.train.ratings.nnz + split.target.ratings.nnz == interactions.ratings.nnz


# --- temporal-global ---------------------------------------------------------------------

# (user_id, anime_id, time): sorted times are 100 150 200 250 300 350 400 500 700 700 800 900,
# so with test_fraction 0.25 the cut is the time at position round(0.75 × 12) = 9, i.e. 700,
# and both interactions at 700 fall after it.
GLOBAL_ROWS = [
    (1, 10, 100), (1, 11, 200), (1, 12, 300), (1, 13, 700),
    (2, 10, 150), (2, 14, 800), (2, 15, 900),
    (3, 11, 250), (3, 12, 350), (3, 14, 400),
    (4, 12, 500), (4, 15, 700),
]


def _timed_interactions(rows: list[tuple[int, int, int]]) -> Interactions:
    table = np.array(rows, dtype=np.int64)
    items = IdMap(np.arange(10, 16), kind="anime_id")
    return Interactions.from_arrays(
        table[:, 0], table[:, 1], np.full(len(rows), np.nan), items=items, timestamps=table[:, 2]
    )


def _user_id_pairs(interactions: Interactions, user_id: int) -> set[int]:
    return {item for user, item in _id_pairs(interactions) if user == user_id}


def test_temporal_global_known_split():
    interactions = _timed_interactions(GLOBAL_ROWS)
    split = splits.temporal_global_split(interactions, test_fraction=0.25, min_history=2)

    assert split.protocol == "temporal-global"
    assert split.settings["cut_time"] == 700
    assert split.settings["cut_time_utc"] == "1970-01-01T00:11:40+00:00"
    assert split.user_ids.tolist() == [1]
    assert _id_pairs(split.fold_in) == {(1, 10), (1, 11), (1, 12)}
    assert _id_pairs(split.target) == {(1, 13)}
    assert _id_pairs(split.train) == {
        (1, 10), (1, 11), (1, 12), (2, 10), (3, 11), (3, 12), (3, 14), (4, 12),
    }
    # The fold-in is the evaluated user's row in train.
    assert split.train.users.ids[split.train_user_idx].tolist() == [1]
    assert split.settings["n_dropped_interactions"] == 3
    assert split.settings["n_eligible_users"] == 1
    assert split.settings["share_after_cut"] == pytest.approx(4 / 12)
    # Item 13 first appears at the cut, so no training user has it.
    assert split.settings["n_target_cold_items"] == 1


def test_temporal_global_min_history_one():
    interactions = _timed_interactions(GLOBAL_ROWS)
    split = splits.temporal_global_split(interactions, test_fraction=0.25, min_history=1)

    assert split.user_ids.tolist() == [1, 2, 4]
    assert _user_id_pairs(split.target, 2) == {14, 15}
    assert _user_id_pairs(split.target, 4) == {15}
    assert _user_id_pairs(split.fold_in, 4) == {12}
    assert split.settings["n_dropped_interactions"] == 0


@pytest.mark.parametrize("cut_time", [400, "400", "1970-01-01T00:06:40", "1970-01-01T01:06:40+01:00"])
def test_temporal_global_explicit_cut(cut_time):
    interactions = _timed_interactions(GLOBAL_ROWS)
    split = splits.temporal_global_split(interactions, cut_time=cut_time, min_history=2)

    assert split.settings["cut_time"] == 400
    assert split.settings["test_fraction"] is None
    assert split.user_ids.tolist() == [1, 3]
    assert _user_id_pairs(split.target, 3) == {14}
    assert _user_id_pairs(split.target, 1) == {13}
    assert _id_pairs(split.train) == {(1, 10), (1, 11), (1, 12), (2, 10), (3, 11), (3, 12)}


def test_temporal_global_invalid_cut_time_raises():
    interactions = _timed_interactions(GLOBAL_ROWS)
    with pytest.raises(ConfigError, match="'next spring'"):
        splits.temporal_global_split(interactions, cut_time="next spring")


def test_temporal_global_cut_before_all_data_raises():
    interactions = _timed_interactions(GLOBAL_ROWS)
    with pytest.raises(ConfigError, match="no test users"):
        splits.temporal_global_split(interactions, cut_time=50)


def test_temporal_global_without_timestamps_raises(dataset):
    with pytest.raises(ConfigError, match="temporal-global protocol needs interaction timestamps"):
        splits.temporal_global_split(dataset.interactions)
    with pytest.raises(ConfigError, match="timestamps"):
        runner.evaluate(dataset, [("popular", {})], protocol="temporal-global")


def test_runner_temporal_global_stores_cut():
    rows = [(user + 1000 * copy, item, time + copy) for copy in range(5) for user, item, time in GLOBAL_ROWS]
    interactions = _timed_interactions(rows)
    catalog = Catalog(
        pd.DataFrame(
            {
                "anime_id": np.arange(10, 16),
                "title": [f"Anime {i}" for i in range(6)],
                "genres": [("Action",)] * 6,
                "type": ["TV"] * 6,
                "episodes": [12] * 6,
                "score": np.linspace(6, 9, 6),
                "members": np.arange(6) * 10,
            }
        )
    )
    timed = Dataset("timed", catalog, interactions, format="test")
    result = runner.evaluate(
        timed, [("popular", {})], protocol="temporal-global", cut_time="1970-01-01T00:06:40",
        min_history=2, n_bootstrap=10,
    )

    assert result["protocol"]["name"] == "temporal-global"
    assert result["protocol"]["settings"]["cut_time"] == 400
    assert result["settings"]["cut_time"] == "1970-01-01T00:06:40"
    # Users 1 and 3 of each of the 5 copies pass; copy c shifts times by c seconds only.
    assert result["models"]["popular"]["n_users"] == 10


def test_runner_cut_time_needs_temporal_global(dataset):
    with pytest.raises(ConfigError, match="cut_time applies to temporal-global only"):
        runner.evaluate(dataset, [("popular", {})], protocol="user-holdout", cut_time=400)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(3, 30),
    st.floats(0.2, 0.9),
    st.floats(0.05, 0.95),
    st.integers(1, 4),
)
def test_temporal_global_partition_property(seed, n_users, density, test_fraction, min_history):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, 12)) < density
    rows, cols = np.nonzero(mask)
    if rows.size < 2:
        return
    # Few distinct times, so ties at the cut are common.
    times = rng.integers(0, 20, rows.size)
    items = IdMap(np.arange(12) * 2 + 1, kind="anime_id")
    interactions = Interactions.from_arrays(
        rows.astype(np.int64) + 100, cols.astype(np.int64) * 2 + 1, np.full(rows.size, np.nan),
        items=items, timestamps=times,
    )
    time_of = {(int(u) + 100, int(c) * 2 + 1): int(t) for u, c, t in zip(rows, cols, times)}
    try:
        split = splits.temporal_global_split(
            interactions, test_fraction=test_fraction, min_history=min_history, random_state=seed
        )
    except ConfigError as err:
        assert "no test users" in str(err)
        return

    cut = split.settings["cut_time"]
    train, target = _id_pairs(split.train), _id_pairs(split.target)
    everything = _id_pairs(interactions)
    dropped = everything - train - target
    evaluated = set(split.user_ids.tolist())
    assert all(time_of[pair] < cut for pair in train)
    assert all(time_of[pair] >= cut for pair in target)
    assert all(time_of[pair] >= cut for pair in dropped)
    assert not train & target
    assert train | target | dropped == everything
    assert len(dropped) == split.settings["n_dropped_interactions"]
    assert not {user for user, _ in dropped} & evaluated
    assert _id_pairs(split.fold_in) == {pair for pair in train if pair[0] in evaluated}
    for user in evaluated:
        assert len(_user_id_pairs(split.fold_in, user)) >= min_history
        assert len(_user_id_pairs(split.target, user)) >= 1


@pytest.mark.slow
def test_real_movielens_temporal_global():
    folder = _data_root() / "movielens-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found at {folder}; set ANIMEREC_TEST_DATA")
    from animerec.data.loaders import load_format

    movielens, _ = load_format("movielens-100k", folder)
    result = runner.evaluate(
        movielens, [("popular", {})], protocol="temporal-global", n_bootstrap=20
    )
    protocol_settings = result["protocol"]["settings"]
    popular = result["models"]["popular"]

    # The MovieLens 100K README dates the ratings from 19 September 1997 to 22 April 1998.
    assert "1997-09" <= protocol_settings["cut_time_utc"] <= "1998-05"
    assert 0.15 < protocol_settings["share_after_cut"] < 0.25
    assert 0 < popular["n_users"] < 943
    assert popular["n_users"] == protocol_settings["n_test_users"]
    # Users active only after the cut have empty training rows and are not counted.
    assert result["protocol"]["n_train_users"] == protocol_settings["n_train_users"]
    assert result["protocol"]["n_train_users"] < 943
    assert 0.0 <= popular["ndcg@10"] <= 1.0
    assert 0.0 <= popular["recall@20"] <= 1.0
    total = (
        protocol_settings["n_train_interactions"] + protocol_settings["n_target_interactions"]
        + protocol_settings["n_dropped_interactions"]
    )
    assert total == movielens.interactions.nnz
