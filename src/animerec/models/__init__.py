"""Recommender models behind one contract (see `animerec.models.base`)."""

from animerec.models.base import Recommender, load_model
from animerec.models.registry import create_model, describe_models, get_model_class, model_names

__all__ = ["Recommender", "create_model", "describe_models", "get_model_class", "load_model", "model_names"]
