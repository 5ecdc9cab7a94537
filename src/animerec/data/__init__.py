"""Data layer: id maps, catalogue, interactions, loaders and the embedded store."""

from animerec.data.catalog import Catalog
from animerec.data.idmap import IdMap
from animerec.data.interactions import Dataset, Interactions, histories_to_interactions

__all__ = ["Catalog", "Dataset", "IdMap", "Interactions", "histories_to_interactions"]
