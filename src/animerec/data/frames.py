"""Builders for the column layout of catalogue frames, shared by the loaders and the store."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from animerec.data.catalog import CORE_COLUMNS


def catalog_frame(
    anime_id: Sequence[int] | np.ndarray,
    title: Sequence[str],
    genres: Sequence[tuple[str, ...]],
    type: Sequence[str | None],  # noqa: A002 - the column's name
    episodes: Sequence[int | None],
    score: Sequence[float | None] | np.ndarray,
    members: Sequence[int | None],
    extra: dict[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """Build a catalogue frame with the core column types.

    `anime_id` is int64, `title` and `type` are Python strings (`type` None when missing),
    `genres` tuples of labels, `episodes` and `members` nullable Int64, and `score` float64
    with NaN when missing. Columns in `extra` are appended as they are.
    """
    columns: dict[str, Any] = {
        "anime_id": np.asarray(anime_id, dtype=np.int64),
        "title": pd.Series(list(title), dtype=object),
        "genres": pd.Series([tuple(g) for g in genres], dtype=object),
        "type": pd.Series([t if isinstance(t, str) else None for t in type], dtype=object),
        "episodes": pd.array([_optional_int(e) for e in episodes], dtype="Int64"),
        "score": np.asarray([np.nan if s is None else s for s in score], dtype=np.float64),
        "members": pd.array([_optional_int(m) for m in members], dtype="Int64"),
    }
    frame = pd.DataFrame(columns)
    for name, values in (extra or {}).items():
        if name in CORE_COLUMNS:
            raise ValueError(f"extra catalogue column {name!r} clashes with a core column")
        frame[name] = pd.Series(list(values), dtype=object) if not isinstance(values, pd.Series) else values.reset_index(drop=True)
    return frame


def _optional_int(value: Any) -> int | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return int(value)
