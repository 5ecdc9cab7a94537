"""Folders for animerec's own files and for the input data.

- `animerec_home()` is the folder for the store (`animerec.sqlite`) and trained model
  bundles: the environment variable `ANIMEREC_HOME`, else the platform's user data folder
  (for example `~/.local/share/animerec` on Linux).
- `resolve_data_dir()` is the folder with the source files to ingest: an explicit argument,
  else the environment variable `ANIMEREC_DATA`.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from animerec.errors import ConfigError

HOME_ENV = "ANIMEREC_HOME"
DATA_ENV = "ANIMEREC_DATA"


def animerec_home() -> Path:
    """Return the animerec home folder, creating it when it does not exist yet."""
    configured = os.environ.get(HOME_ENV, "").strip()
    home = Path(configured).expanduser() if configured else Path(platformdirs.user_data_dir("animerec"))
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create the animerec home folder {home}: {err}. "
            f"Set {HOME_ENV} to a writable folder."
        ) from err
    if not home.is_dir():
        raise ConfigError(f"animerec home {home} is not a folder. Set {HOME_ENV} to a folder.")
    return home


def resolve_data_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """Return the data folder to read: `arg` when given, else `ANIMEREC_DATA`.

    Raise `ConfigError` when neither is set or when the folder does not exist.
    """
    if arg is not None and str(arg).strip():
        source = "the given data folder"
        directory = Path(arg).expanduser()
    else:
        configured = os.environ.get(DATA_ENV, "").strip()
        if not configured:
            raise ConfigError(
                "no data folder given: pass the folder that contains the source files "
                f"(for example `animerec ingest kaggle-2016 ~/data/anime-2016`) or set {DATA_ENV}"
            )
        source = f"{DATA_ENV}"
        directory = Path(configured).expanduser()

    if not directory.exists():
        raise ConfigError(f"data folder {directory} ({source}) does not exist")
    if not directory.is_dir():
        raise ConfigError(f"data folder {directory} ({source}) is not a folder")
    return directory
