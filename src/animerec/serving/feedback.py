"""Feedback people give through the API, kept in the store's SQLite file.

Each call of `FeedbackStore.add` appends one row to the `feedback` table, so the table is a
log. The state of a user–anime pair is its latest row: rating an anime after marking it not
interested makes it rated again. The recommender reads that state on the next request, with
no retraining: rated and watched anime join the user's history (and are excluded from the
list), not-interested anime are excluded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from animerec.errors import ConfigError

logger = logging.getLogger(__name__)

Action = Literal["rate", "watched", "not_interested"]
ACTIONS: tuple[str, ...] = get_args(Action)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL,
    anime_id    INTEGER NOT NULL,
    action      TEXT    NOT NULL CHECK (action IN ('rate', 'watched', 'not_interested')),
    rating      REAL,
    created_at  REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_user ON feedback (user_id, feedback_id);
"""


@dataclass(frozen=True)
class UserFeedback:
    """The current feedback state of one user: the latest action per anime."""

    # (anime_id, rating or None for "watched") in the order the feedback arrived.
    history: list[tuple[int, float | None]] = field(default_factory=list)
    not_interested: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.history or self.not_interested)


class FeedbackStore:
    """The `feedback` table of an SQLite file, shared safely between threads.

    The file is usually the store's own `animerec.sqlite`, so that feedback lives next to
    the data it refers to. WAL mode lets several server processes read while one writes.
    A row is on disk when `add` returns, so every success answer the API sends for a
    write is backed by a committed row (synchronous=NORMAL in WAL mode survives a crash of
    the process, though not a power cut before the next checkpoint).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def add(
        self, user_id: int, anime_id: int, action: str, rating: float | None = None
    ) -> dict:
        """Append one feedback row and return it as a dict (with its `feedback_id`)."""
        if action not in ACTIONS:
            raise ConfigError(f"unknown feedback action {action!r}; valid: {', '.join(ACTIONS)}")
        if action == "rate" and rating is None:
            raise ConfigError("action 'rate' needs a rating")
        if action != "rate" and rating is not None:
            raise ConfigError(f"action {action!r} takes no rating; use action 'rate'")

        created_at = time.time()
        with self._lock:
            cursor = self._connection.execute(
                "INSERT INTO feedback (user_id, anime_id, action, rating, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (int(user_id), int(anime_id), action, rating, created_at),
            )
            feedback_id = int(cursor.lastrowid)
        logger.info(
            "feedback %d stored: user %d, anime %d, %s%s",
            feedback_id, user_id, anime_id, action, f" {rating:g}" if rating is not None else "",
        )
        return {
            "feedback_id": feedback_id,
            "user_id": int(user_id),
            "anime_id": int(anime_id),
            "action": action,
            "rating": rating,
            "created_at": created_at,
        }

    def for_user(self, user_id: int) -> UserFeedback:
        """Return the current state of one user's feedback (empty when there is none)."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT anime_id, action, rating FROM feedback WHERE user_id = ?"
                " ORDER BY feedback_id",
                (int(user_id),),
            ).fetchall()
        latest: dict[int, tuple[str, float | None]] = {}
        for anime_id, action, rating in rows:
            latest.pop(anime_id, None)  # re-insert so the order follows the latest action
            latest[anime_id] = (action, rating)
        history = [
            (anime_id, rating if action == "rate" else None)
            for anime_id, (action, rating) in latest.items()
            if action != "not_interested"
        ]
        not_interested = [a for a, (action, _) in latest.items() if action == "not_interested"]
        return UserFeedback(history, not_interested)

    def rows(self, user_id: int | None = None) -> list[dict]:
        """Return the logged rows, oldest first, for one user or everyone."""
        query = "SELECT feedback_id, user_id, anime_id, action, rating, created_at FROM feedback"
        params: tuple = ()
        if user_id is not None:
            query += " WHERE user_id = ?"
            params = (int(user_id),)
        with self._lock:
            found = self._connection.execute(query + " ORDER BY feedback_id", params).fetchall()
        keys = ("feedback_id", "user_id", "anime_id", "action", "rating", "created_at")
        return [dict(zip(keys, row)) for row in found]

    def count(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
