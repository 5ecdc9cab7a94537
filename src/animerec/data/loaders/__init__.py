"""Source-format loaders: each turns a folder of files into a `Dataset` and an `IngestReport`.

Every loader has the signature

    load_xxx(directory: Path, *, name: str | None = None, unknown_anime: str = "drop",
             progress: Callable[[str], None] | None = None) -> tuple[Dataset, IngestReport]

and is registered in `FORMATS` as "module:function", imported only when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from animerec.data.interactions import Dataset
from animerec.data.report import IngestReport
from animerec.errors import ConfigError, DataError

FORMATS: dict[str, str] = {
    "kaggle-2016": "animerec.data.loaders.kaggle2016:load_kaggle_2016",
    "mal-2020": "animerec.data.loaders.mal2020:load_mal_2020",
    "movielens-100k": "animerec.data.loaders.movielens:load_movielens_100k",
    "movielens-latest": "animerec.data.loaders.movielens:load_movielens_latest",
    "csv": "animerec.data.loaders.csv:load_csv",
}

Loader = Callable[..., tuple[Dataset, IngestReport]]


def format_names() -> list[str]:
    """Return the registered format names, sorted."""
    return sorted(FORMATS)


def get_loader(format_name: str) -> Loader:
    """Import and return the loader function of one format."""
    target = FORMATS.get(format_name)
    if target is None:
        raise ConfigError(
            f"unknown data format {format_name!r}; choose one of {', '.join(format_names())}"
        )
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def load_format(format_name: str, directory: str | Path, **options: Any) -> tuple[Dataset, IngestReport]:
    """Load the files in `directory` with the loader of `format_name`.

    `options` go to the loader (`name`, `unknown_anime`, `progress`, and any option that
    format adds).
    """
    loader = get_loader(format_name)
    if options.get("name") is not None:
        # The store rejects unsafe names; checking now saves a long load that cannot be saved.
        from animerec.data.store import check_dataset_name

        check_dataset_name(options["name"])
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data folder not found; give the folder that contains the {format_name} files",
            path=str(path),
        )
    return loader(path, **options)
