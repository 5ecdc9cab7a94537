"""animerec: anime recommendations from what people watched and rated."""

__version__ = "0.1.0"
