"""Peer adapters: they run through the same runner and raise a clear error when a library is missing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from animerec.data import IdMap, Interactions, histories_to_interactions
from animerec.errors import ConfigError
from animerec.evaluation.peers import PEERS, peer_status
from animerec.models.registry import PEER_PATHS, create_model, get_model_class, model_names

HAS_SURPRISE = importlib.util.find_spec("surprise") is not None
HAS_LIGHTFM = importlib.util.find_spec("lightfm") is not None


def small_interactions(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    mask = rng.random((50, 30)) < 0.3
    rows, cols = np.nonzero(mask)
    values = rng.integers(1, 6, size=rows.size).astype(float)
    return Interactions.from_arrays(
        rows, cols + 1, values, items=IdMap(np.arange(1, 31), kind="anime_id"), rating_scale=(1.0, 5.0)
    )


def test_peer_names_resolve_but_are_not_listed():
    assert set(PEER_PATHS) == set(PEERS)
    for name in PEER_PATHS:
        assert get_model_class(name).name == name
        assert name not in model_names()


def test_unknown_name_lists_peers():
    with pytest.raises(ConfigError, match="surprise-svd"):
        get_model_class("no-such-model")


@pytest.mark.skipif(not HAS_SURPRISE, reason="scikit-surprise is not installed")
def test_surprise_svd_predicts_within_scale():
    data = small_interactions()
    model = create_model("surprise-svd").fit(data)

    predicted = model.predict_ratings(np.arange(10), np.arange(10))

    assert predicted.shape == (10,)
    assert predicted.min() >= 1.0
    assert predicted.max() <= 5.0


@pytest.mark.skipif(not HAS_SURPRISE, reason="scikit-surprise is not installed")
def test_surprise_cannot_fold_in():
    data = small_interactions()
    model = create_model("surprise-svd").fit(data)
    histories = histories_to_interactions([[(1, 5.0)]], data.items, data.rating_scale)

    with pytest.raises(ConfigError, match="cannot fold in"):
        model.score_histories(histories)


@pytest.mark.parametrize("name", ["implicit-als", "implicit-bpr", "implicit-itemknn"])
def test_implicit_peers_score_and_fold_in(name):
    data = small_interactions(1)
    model = create_model(name, options={"iterations": 3} if name != "implicit-itemknn" else {}).fit(data)
    histories = histories_to_interactions([[(1, None), (2, None)]], data.items, data.rating_scale)

    scores = model.score_users([0, 1])
    folded = model.score_histories(histories)

    assert scores.shape == (2, data.n_items)
    assert folded.shape == (1, data.n_items)
    assert np.isfinite(folded[0, np.isfinite(scores[0])]).all()


def test_peers_cannot_be_saved(tmp_path):
    model = create_model("implicit-itemknn").fit(small_interactions(2))

    with pytest.raises(ConfigError, match="evaluation only"):
        model.save(tmp_path / "bundle")


@pytest.mark.skipif(HAS_LIGHTFM, reason="lightfm is installed, so the missing-library message cannot be shown")
def test_missing_library_message():
    with pytest.raises(ConfigError, match="pip install lightfm"):
        create_model("lightfm-warp").fit(small_interactions())

    assert peer_status()["lightfm-warp"].startswith("not installed")


@pytest.mark.skipif(not HAS_SURPRISE, reason="scikit-surprise is not installed")
def test_runner_evaluates_peer_on_same_folds():
    from animerec.data import Catalog, Dataset
    from animerec.data.frames import catalog_frame
    from animerec.evaluation.runner import evaluate

    data = small_interactions(3)
    ids = data.items.ids
    catalog = Catalog(catalog_frame(ids, [f"t{i}" for i in ids], [()] * ids.size, [None] * ids.size,
                                    [None] * ids.size, np.full(ids.size, np.nan), [None] * ids.size))
    dataset = Dataset("tiny", catalog, data)

    result = evaluate(dataset, [("surprise-svd", {}), ("biasedmf", {})], "rating-holdout", seed=3)

    peer, own = result["models"]["surprise-svd"], result["models"]["biasedmf"]
    assert peer["folds"][0]["n_test"] == own["folds"][0]["n_test"]
    assert np.isfinite(peer["rmse"])
