"""Tuning: a few Optuna trials on a small dataset (rating and top-n models), the saved file,
and the CLI commands `tune`, `train` (tuned parameters by default) and `predict` on MovieLens
files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from animerec.data import Catalog, Dataset, IdMap, Interactions
from animerec.data.frames import catalog_frame
from animerec.errors import ConfigError, DataError
from animerec.evaluation.tuning import (
    _numeric_defaults,
    load_tuned_params,
    ranking_tuning_splits,
    tune,
    tuned_path,
)
from animerec.models.content import SEARCHED_WEIGHTS, ContentConfig, ContentRecommender
from animerec.models.hybrid import HybridRecommender
from animerec.models.registry import create_model

pytest.importorskip("optuna")


def small_dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = rng.random((80, 40)) < 0.3
    rows, cols = np.nonzero(mask)
    taste = rng.normal(size=(80, 2)) @ rng.normal(size=(2, 40))
    values = np.clip(np.round(3 + taste[rows, cols]), 1, 5)
    items = IdMap(np.arange(1, 41), kind="anime_id")
    interactions = Interactions.from_arrays(rows + 1, cols + 1, values, items=items, rating_scale=(1.0, 5.0))
    ids = items.ids
    count = ids.size
    catalog = Catalog(
        catalog_frame(ids, [f"title {i}" for i in ids], [()] * count, [None] * count, [None] * count,
                      np.full(count, np.nan), [None] * count)
    )
    return Dataset("tiny", catalog, interactions)


def test_tune_saves_best_params(tmp_path):
    result = tune(small_dataset(), "baseline", n_trials=3, seed=1, home=tmp_path)
    saved = json.loads(Path(result["saved_to"]).read_text())

    assert result["n_trials"] == 3
    assert saved["params"] == result["params"]
    assert set(result["params"]) == {"user_regularization", "item_regularization", "epochs"}
    assert result["validation_rmse"] == min(trial["rmse"] for trial in result["trials"])
    assert load_tuned_params("tiny", "baseline", tmp_path) == result["params"]


def test_tune_splits_are_disjoint(tmp_path):
    dataset = small_dataset()
    result = tune(dataset, "baseline", n_trials=1, home=tmp_path, save=False)
    protocol = result["protocol"]

    assert protocol["n_train"] + protocol["n_validation"] + protocol["n_test"] == dataset.interactions.ratings.nnz
    assert "saved_to" not in result


def test_tune_same_seed_same_result(tmp_path):
    first = tune(small_dataset(), "biasedmf", n_trials=2, seed=5, home=tmp_path, save=False,
                 fixed_params={"n_factors": 4})
    second = tune(small_dataset(), "biasedmf", n_trials=2, seed=5, home=tmp_path, save=False,
                  fixed_params={"n_factors": 4})

    assert first["params"] == second["params"]
    assert first["params"]["n_factors"] == 4
    assert first["test"]["rmse"] == second["test"]["rmse"]


def test_tune_popular_has_nothing_to_tune(tmp_path):
    with pytest.raises(ConfigError, match="'popular' declares no search space.*nothing to tune"):
        tune(small_dataset(), "popular", n_trials=1, home=tmp_path)
    assert not tuned_path("tiny", "popular", tmp_path).exists()


def test_ranking_validation_test_users_disjoint():
    dataset = small_dataset()
    test_split, validation_split = ranking_tuning_splits(
        dataset, seed=3, test_fraction=0.2, validation_fraction=0.25
    )
    test_users = set(test_split.user_ids.tolist())
    validation_users = set(validation_split.user_ids.tolist())
    search_train_users = set(validation_split.train.users.ids.tolist())

    # 80 users, all with 2+ items: 16 test users, then 25 % of the 64 left = 16 validation users.
    assert len(test_users) == 16
    assert len(validation_users) == 16
    assert not test_users & validation_users
    assert not test_users & search_train_users
    assert not validation_users & search_train_users
    assert validation_users | search_train_users == set(test_split.train.users.ids.tolist())


def test_tune_ranking_model_saves_best_params(tmp_path):
    dataset = small_dataset()
    result = tune(dataset, "ease", n_trials=3, seed=1, home=tmp_path)
    saved = json.loads(Path(result["saved_to"]).read_text())
    validation_scores = [trial["ndcg@10"] for trial in result["trials"]]

    assert result["n_trials"] == 3
    assert set(result["params"]) == {"regularization", "dropout"}
    assert result["validation_ndcg@10"] == max(validation_scores)
    assert 10.0 <= result["params"]["regularization"] <= 5000.0
    assert 0.0 <= result["params"]["dropout"] <= 0.7
    assert result["trials"][0]["params"] == {"regularization": 100.0, "dropout": 0.33}
    assert saved["params"] == result["params"]
    assert load_tuned_params("tiny", "ease", tmp_path) == result["params"]
    assert 0.0 <= result["test"]["ndcg@10"] <= 1.0
    assert 0.0 <= result["default_test"]["ndcg@10"] <= 1.0
    protocol = result["protocol"]
    assert protocol["metric"] == "ndcg@10"
    assert protocol["n_test_users"] == 16
    assert protocol["n_train_users"] + protocol["n_validation_users"] + protocol["n_test_users"] == 80


def test_tune_ranking_same_seed_same_result(tmp_path):
    runs = [
        tune(small_dataset(), "als", n_trials=2, seed=4, home=tmp_path, save=False,
             fixed_params={"n_factors": 4, "epochs": 3})
        for _ in range(2)
    ]

    assert runs[0]["params"] == runs[1]["params"]
    assert runs[0]["params"]["n_factors"] == 4
    assert runs[0]["trials"][0]["params"] == {
        "n_factors": 4, "regularization": 5.0, "alpha": 2.0, "epochs": 3, "rating_weight": 1.0
    }
    assert set(runs[0]["params"]) == {"n_factors", "regularization", "alpha", "epochs", "rating_weight"}
    assert runs[0]["test"]["ndcg@10"] == runs[1]["test"]["ndcg@10"]


def test_tune_rejects_zero_trials(tmp_path):
    with pytest.raises(ConfigError, match="at least 1"):
        tune(small_dataset(), "baseline", n_trials=0, home=tmp_path)


def test_unreadable_tuned_file(tmp_path):
    path = tuned_path("tiny", "baseline", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    with pytest.raises(DataError, match="unreadable"):
        load_tuned_params("tiny", "baseline", tmp_path)
    assert load_tuned_params("tiny", "biasedmf", tmp_path) is None


# --- search spaces of the content and hybrid models ---------------------------------------


def first_trial_params(model_class: type) -> dict:
    """Return the search space's parameters for the default trial that `tune` enqueues first."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(_numeric_defaults(model_class, {}))
    return model_class.search_space(study.ask())


def test_content_first_trial_is_defaults():
    defaults = ContentConfig().to_dict()

    params = first_trial_params(ContentRecommender)

    assert params == {name: defaults[name] for name in SEARCHED_WEIGHTS}
    assert create_model("content", **params).config == ContentConfig()


def test_content_space_draws_zero_weights():
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [ContentRecommender.search_space(study.ask()) for _ in range(50)]
    values = [value for params in drawn for value in params.values()]

    assert all(set(params) == set(SEARCHED_WEIGHTS) for params in drawn)
    assert all(0.0 <= value <= 2.0 for value in values)
    assert all(value == round(value, 1) for value in values)
    # With 21 grid values per weight and 400 draws, about 19 zeros are expected.
    assert values.count(0.0) >= 5
    for params in drawn:
        assert create_model("content", **params).config.to_dict().items() >= params.items()


def test_content_space_fixed_trial():
    import optuna

    chosen = {name: 0.0 for name in SEARCHED_WEIGHTS} | {"genre_weight": 1.7}

    params = ContentRecommender.search_space(optuna.trial.FixedTrial(chosen))
    model = create_model("content", **params)

    assert params == chosen
    assert model.config.genre_weight == 1.7
    assert model.config.synopsis_weight == 0.0


def test_hybrid_first_trial_is_defaults():
    params = first_trial_params(HybridRecommender)
    model = create_model("hybrid", **params)

    # EASE's defaults (regularization 100, dropout 0.33), written into cf_params as JSON.
    assert json.loads(params["cf_params"]) == {"regularization": 100.0, "dropout": 0.33}
    assert params["validation_fraction"] == 0.2
    assert set(params) == {"cf_params", "validation_fraction"}
    assert model.config.validation_fraction == 0.2
    assert model._make_cf().config.regularization == 100.0
    assert model._make_cf().config.dropout == 0.33
    assert create_model("hybrid")._make_cf().config == model._make_cf().config


def test_hybrid_space_maps_to_config_fields():
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        params = HybridRecommender.search_space(study.ask())
        model = create_model("hybrid", **params)
        cf_params = json.loads(params["cf_params"])
        regularization = cf_params["regularization"]

        assert set(params) == {"cf_params", "validation_fraction"}
        assert set(cf_params) == {"regularization", "dropout"}
        assert 10.0 <= regularization <= 5000.0
        assert 0.0 <= cf_params["dropout"] <= 0.7
        assert model._make_cf().config.regularization == pytest.approx(regularization)
        assert model._make_cf().config.dropout == pytest.approx(cf_params["dropout"])
        assert params["validation_fraction"] in (0.1, 0.15, 0.2, 0.25, 0.3)
        assert model.config.cf_model == "ease"


def test_tune_content_on_anime_2016(shared_data, tmp_path):
    from animerec.data.loaders.kaggle2016 import load_kaggle_2016

    directory = shared_data / "anime-2016"
    if not (directory / "rating.csv").is_file():
        pytest.skip(f"{directory}/rating.csv not found")
    dataset, _ = load_kaggle_2016(directory)
    defaults = ContentConfig().to_dict()

    result = tune(dataset, "content", n_trials=2, seed=7, home=tmp_path)
    validation_scores = [trial["ndcg@10"] for trial in result["trials"]]

    assert result["n_trials"] == 2
    assert set(result["params"]) == set(SEARCHED_WEIGHTS)
    assert result["trials"][0]["params"] == {name: defaults[name] for name in SEARCHED_WEIGHTS}
    assert result["validation_ndcg@10"] == max(validation_scores)
    assert 0.0 < result["validation_ndcg@10"] <= 1.0
    assert 0.0 < result["test"]["ndcg@10"] <= 1.0
    assert 0.0 < result["default_test"]["ndcg@10"] <= 1.0
    assert load_tuned_params(dataset.name, "content", tmp_path) == result["params"]


# --- the commands, end to end on MovieLens 100K ------------------------------------------


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANIMEREC_HOME": str(home)}
    env.pop("ANIMEREC_DATA", None)
    return subprocess.run(
        [sys.executable, "-m", "animerec", *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def movielens_home(tmp_path_factory, shared_data):
    folder = shared_data / "movielens-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found in {folder}")
    home = tmp_path_factory.mktemp("home")
    ingested = run_cli(home, "ingest", "movielens-100k", str(folder))
    assert ingested.returncode == 0, ingested.stderr
    return home


def test_cli_tune_then_train_uses_tuned(movielens_home):
    tuned = run_cli(movielens_home, "tune", "baseline", "--trials", "2", "--json")
    trained = run_cli(movielens_home, "train", "baseline", "--json")
    untuned = run_cli(movielens_home, "train", "baseline", "--no-tuned", "--json")

    assert tuned.returncode == 0, tuned.stderr
    best = json.loads(tuned.stdout)["params"]
    assert json.loads(trained.stdout)["parameters"] == {**json.loads(untuned.stdout)["parameters"], **best}
    assert "animerec tune baseline" in trained.stderr
    assert json.loads(untuned.stdout)["parameters"]["user_regularization"] == 15.0


def test_cli_tune_ease_then_train(movielens_home):
    tuned = run_cli(movielens_home, "tune", "ease", "--trials", "2", "--json")
    trained = run_cli(movielens_home, "train", "ease", "--json")
    untuned = run_cli(movielens_home, "train", "ease", "--no-tuned", "--json")

    assert tuned.returncode == 0, tuned.stderr
    result = json.loads(tuned.stdout)
    assert result["protocol"]["metric"] == "ndcg@10"
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["parameters"]["regularization"] == result["params"]["regularization"]
    assert "animerec tune ease" in trained.stderr
    assert json.loads(untuned.stdout)["parameters"]["regularization"] == 100.0


def test_cli_tune_popular_rejected(movielens_home):
    rejected = run_cli(movielens_home, "tune", "popular", "--trials", "2")

    assert rejected.returncode == 1
    assert "nothing to tune" in rejected.stderr
    assert "animerec train popular" in rejected.stderr


def test_cli_predict(movielens_home):
    trained = run_cli(movielens_home, "train", "biasedmf", "--no-tuned")
    predicted = run_cli(movielens_home, "predict", "--user", "1", "Toy Story (1995)", "50", "--model", "biasedmf", "--json")
    unknown = run_cli(movielens_home, "predict", "--user", "99999", "1", "--model", "biasedmf")

    assert trained.returncode == 0, trained.stderr
    rows = json.loads(predicted.stdout)
    assert [row["anime_id"] for row in rows] == [1, 50]
    assert all(1.0 <= row["predicted_rating"] <= 5.0 for row in rows)
    assert rows[0]["actual_rating"] == 5.0
    assert rows[0]["rating_scale"] == [1.0, 5.0]
    assert unknown.returncode == 1
    assert "unknown user_id 99999" in unknown.stderr
