"""Turn an uploaded MyAnimeList list export into a history for `recommend_history`."""

from __future__ import annotations

import logging
from typing import Any

from animerec.data.malexport import read_mal_export
from animerec.data.watch_status import WatchStatus
from animerec.errors import DataError

logger = logging.getLogger(__name__)

# Statuses that mean the person watched at least part of the anime. Plan-to-watch entries
# are not viewing evidence, and dropped ones are evidence against the anime, so neither
# joins the history; every entry on the list is kept out of the recommendations.
WATCHED_STATUSES = frozenset(
    {WatchStatus.COMPLETED, WatchStatus.WATCHING, WatchStatus.ON_HOLD}
)


def history_from_export(
    data: bytes, filename: str, service: Any
) -> tuple[list[tuple[int, float | None]], tuple[int, ...]]:
    """Parse an export and return (history, anime to exclude).

    Entries whose anime the catalogue does not contain are left out and counted in the
    log. Raises `DataError` for an unreadable file or one with no usable entry.
    """
    export = read_mal_export(data)
    items = service.dataset.catalog.items
    history: list[tuple[int, float | None]] = []
    listed: list[int] = []
    unknown = 0
    for entry in export.entries:
        if entry.anime_id not in items:
            unknown += 1
            continue
        listed.append(entry.anime_id)
        if entry.status in WATCHED_STATUSES:
            history.append((entry.anime_id, entry.rating))

    logger.info(
        "export %r: %d entries, %d used as history, %d not in the catalogue",
        filename, len(export.entries), len(history), unknown,
    )
    if not history:
        raise DataError(
            f"the export {filename or '(upload)'} has no completed, watching or on-hold anime "
            f"that the catalogue contains ({len(export.entries)} entries, {unknown} unknown)"
        )
    listed_set = set(listed)
    watched = {anime_id for anime_id, _ in history}
    return history, tuple(sorted(listed_set - watched))
