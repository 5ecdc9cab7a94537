"""`item_similarities_to` returns the same entries as a full `item_similarities` row."""

from __future__ import annotations

import numpy as np
import pytest

from animerec.data.loaders import load_format
from animerec.models.registry import create_model, model_names


@pytest.fixture(scope="module")
def dataset(shared_data):
    loaded, _ = load_format("kaggle-2016", shared_data / "anime-2016")
    return loaded


@pytest.mark.parametrize("name", ["als", "itemknn", "popular"])
def test_subset_matches_full_row(dataset, name: str) -> None:
    if name not in model_names():
        pytest.skip(f"model {name} is not registered")
    params = {"als": {"n_factors": 8, "epochs": 2, "num_threads": 1}}.get(name, {})
    model = create_model(name, **params).fit(dataset)
    rng = np.random.default_rng(3)
    watched = np.flatnonzero(dataset.interactions.user_items.getnnz(axis=0) > 0)
    unwatched = np.flatnonzero(dataset.interactions.user_items.getnnz(axis=0) == 0)
    for item_idx in rng.choice(watched, size=5, replace=False):
        others = np.concatenate([rng.choice(watched, size=20), unwatched[:3], [item_idx]])
        full = model.item_similarities(int(item_idx))[others]
        subset = model.item_similarities_to(int(item_idx), others)
        assert subset.dtype == np.float32
        np.testing.assert_allclose(subset, full, rtol=1e-5, atol=1e-6)
