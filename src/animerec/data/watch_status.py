"""MyAnimeList list statuses and the implicit weight each one gives a user–anime pair.

Both the 2020 dataset's `animelist.csv` (numeric codes) and a person's list export (status
names) use these statuses. The weight is the value stored in `Interactions.user_items`:
positive for evidence that the person liked or chose the anime, negative for evidence
against it.
"""

from __future__ import annotations

from enum import Enum

from animerec.errors import DataError


class WatchStatus(str, Enum):
    """A list status on MyAnimeList."""

    WATCHING = "watching"
    COMPLETED = "completed"
    ON_HOLD = "on_hold"
    DROPPED = "dropped"
    PLAN_TO_WATCH = "plan_to_watch"


# Completed is full positive evidence; watching is nearly as strong (the person chose it
# and is still going). On-hold is a weak positive: the person started it and paused.
# Plan-to-watch is interest without any viewing, so it is weak. Dropped is negative
# evidence: the person tried it and stopped.
STATUS_WEIGHTS: dict[WatchStatus, float] = {
    WatchStatus.COMPLETED: 1.0,
    WatchStatus.WATCHING: 0.8,
    WatchStatus.ON_HOLD: 0.3,
    WatchStatus.PLAN_TO_WATCH: 0.1,
    WatchStatus.DROPPED: -0.5,
}

# Numeric codes of the 2020 dataset's watching_status.csv (there is no code 5).
STATUS_CODES: dict[int, WatchStatus] = {
    1: WatchStatus.WATCHING,
    2: WatchStatus.COMPLETED,
    3: WatchStatus.ON_HOLD,
    4: WatchStatus.DROPPED,
    6: WatchStatus.PLAN_TO_WATCH,
}

# Status names as a MyAnimeList list export writes them, folded to lower case.
_STATUS_NAMES: dict[str, WatchStatus] = {
    "watching": WatchStatus.WATCHING,
    "currently watching": WatchStatus.WATCHING,
    "completed": WatchStatus.COMPLETED,
    "on-hold": WatchStatus.ON_HOLD,
    "on hold": WatchStatus.ON_HOLD,
    "dropped": WatchStatus.DROPPED,
    "plan to watch": WatchStatus.PLAN_TO_WATCH,
}


def parse_status(text: str) -> WatchStatus:
    """Parse a status name ("Completed", "On-Hold", "Plan to Watch", ...) or numeric code.

    Raises `DataError` listing the valid names when `text` is neither.
    """
    folded = " ".join(str(text).strip().casefold().split())
    if folded in _STATUS_NAMES:
        return _STATUS_NAMES[folded]
    if folded.isdigit() and int(folded) in STATUS_CODES:
        return STATUS_CODES[int(folded)]
    raise DataError(
        f"unknown list status {text!r}; expected one of Watching, Completed, On-Hold, "
        f"Dropped, Plan to Watch or a code {sorted(STATUS_CODES)}",
        value=text,
    )


def status_weight(status: WatchStatus) -> float:
    """Return the implicit weight of a status."""
    return STATUS_WEIGHTS[status]
