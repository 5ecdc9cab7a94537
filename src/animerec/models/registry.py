"""The model registry: names used by the CLI, the API and bundles, mapped to classes.

Entries are import paths so that listing models imports nothing heavy; a model's module is
imported the first time its class is needed.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from animerec.errors import ConfigError

# name -> "module:Class"
MODEL_PATHS: dict[str, str] = {
    "popular": "animerec.models.popular:PopularityRecommender",
    "itemknn": "animerec.models.itemknn:ItemKNNRecommender",
    "als": "animerec.models.als:ALSRecommender",
    "ease": "animerec.models.ease:EASERecommender",
    "baseline": "animerec.models.baseline:BaselineRecommender",
    "biasedmf": "animerec.models.biasedmf:BiasedMFRecommender",
    "svdpp": "animerec.models.svdpp:SVDppRecommender",
    "itemknn-baseline": "animerec.models.knnbaseline:ItemKNNBaselineRecommender",
    "content": "animerec.models.content:ContentRecommender",
    "hybrid": "animerec.models.hybrid:HybridRecommender",
}

# Peer libraries wrapped for side-by-side evaluation (animerec.evaluation.peers). They are
# resolved by name but not listed by model_names(): they cannot be saved or served.
PEER_PATHS: dict[str, str] = {
    name: f"animerec.evaluation.peers:{class_name}"
    for name, class_name in (
        ("surprise-svd", "SurpriseSVD"),
        ("surprise-svdpp", "SurpriseSVDpp"),
        ("surprise-knnbaseline", "SurpriseKNNBaseline"),
        ("implicit-als", "ImplicitALS"),
        ("implicit-bpr", "ImplicitBPR"),
        ("implicit-itemknn", "ImplicitItemKNN"),
        ("lightfm-warp", "LightFMWARP"),
    )
}

DEFAULT_MODEL = "als"


def model_names() -> list[str]:
    return list(MODEL_PATHS)


def get_model_class(name: str) -> type:
    """Return the class registered under `name`, or raise `ConfigError` listing valid names."""
    try:
        path = MODEL_PATHS[name] if name in MODEL_PATHS else PEER_PATHS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; registered models: {', '.join(MODEL_PATHS)}; "
            f"peers for evaluation: {', '.join(PEER_PATHS)}"
        ) from None
    module_name, class_name = path.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_model(name: str, **params: Any):
    """Instantiate a registered model with keyword parameters (strings are converted)."""
    return get_model_class(name)(**params)


def describe_models() -> list[dict[str, Any]]:
    """Return name, feedback, description and parameters with defaults of every model."""
    rows = []
    for name in MODEL_PATHS:
        model_class = get_model_class(name)
        params = {
            f.name: f.default for f in dataclasses.fields(model_class.config_class)
        }
        rows.append(
            {
                "name": name,
                "feedback": list(model_class.feedback),
                "description": model_class.description,
                "parameters": params,
            }
        )
    return rows
