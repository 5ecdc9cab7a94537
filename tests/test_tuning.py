"""Tuning: a few Optuna trials on a small rating dataset, the saved file, and the CLI commands
`tune`, `train` (tuned parameters by default) and `predict` on MovieLens files."""

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
from animerec.evaluation.tuning import load_tuned_params, tune, tuned_path

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


def test_tune_rejects_ranking_model(tmp_path):
    with pytest.raises(ConfigError, match="does not predict ratings"):
        tune(small_dataset(), "popular", n_trials=1, home=tmp_path)


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
