"""The anime catalogue: one row of metadata per anime, aligned to an item `IdMap`."""

from __future__ import annotations

import difflib
import html
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from animerec.data.idmap import IdMap
from animerec.errors import NotFoundError, UnknownIdError

# Columns every catalogue has. Optional metadata (studios, source, year, synopsis, ...) from
# richer datasets lives in further columns; missing values stay missing (NaN / None).
CORE_COLUMNS = ("anime_id", "title", "genres", "type", "episodes", "score", "members")
ADULT_GENRES = frozenset({"Hentai"})
# Titles compared by difflib in a fuzzy search: those sharing the most trigrams with the query.
FUZZY_CANDIDATES = 300


def normalize_title(title: str) -> str:
    """Fold a title for lookups: HTML entities decoded, accents and case folded, spaces squeezed."""
    text = html.unescape(html.unescape(title))
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold()
    return re.sub(r"\s+", " ", text).strip()


def fold_punctuation(normalized: str) -> str:
    """Fold a normalized title further: punctuation becomes spaces ("steins;gate" and
    "steins gate" are equal), so a title typed without its symbols still matches."""
    return re.sub(r"[\W_]+", " ", normalized).strip()


@dataclass(frozen=True)
class Catalog:
    """Anime metadata as a DataFrame indexed by position, with `anime_id` sorted ascending.

    `frame` holds at least the `CORE_COLUMNS`: `genres` is a tuple of whole labels, `type` a
    string or None, `episodes` and `members` nullable integers, `score` a float or NaN.
    """

    frame: pd.DataFrame
    items: IdMap = field(init=False)

    def __post_init__(self) -> None:
        frame = self.frame.sort_values("anime_id", kind="stable").reset_index(drop=True)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "items", IdMap(frame["anime_id"].to_numpy(np.int64), kind="anime_id"))
        if len(self.items) != len(frame):
            raise ValueError("catalog anime_id values must be unique")

    def __len__(self) -> int:
        return len(self.frame)

    # --- row access -------------------------------------------------------------------

    def row(self, anime_id: int) -> dict:
        """Return one anime's metadata as a plain dict (JSON-friendly values)."""
        record = self.frame.iloc[self.items.index(anime_id)].to_dict()
        return {key: _plain(value) for key, value in record.items()}

    def title(self, anime_id: int) -> str:
        return str(self.frame.at[self.items.index(anime_id), "title"])

    def titles(self, anime_ids: np.ndarray) -> list[str]:
        positions = self.items.to_idx(anime_ids, unknown="mask")
        titles = self.frame["title"].to_numpy()
        return [str(titles[p]) if p >= 0 else f"anime {a}" for p, a in zip(positions, anime_ids)]

    # --- masks aligned to an item map -------------------------------------------------

    def aligned(self, items: IdMap) -> pd.DataFrame:
        """Return the catalogue rows in `items` order; anime missing from the catalogue get NaN rows."""
        positions = self.items.to_idx(items.ids, unknown="mask")
        frame = self.frame.reindex(np.where(positions >= 0, positions, -1)).reset_index(drop=True)
        frame["anime_id"] = items.ids
        return frame

    def adult_mask(self, items: IdMap) -> np.ndarray:
        genres = self.aligned(items)["genres"]
        return np.fromiter(
            (bool(ADULT_GENRES.intersection(g)) if isinstance(g, tuple) else False for g in genres),
            dtype=bool,
            count=len(items),
        )

    def genre_labels(self) -> list[str]:
        labels: set[str] = set()
        for genres in self.frame["genres"]:
            if isinstance(genres, tuple):
                labels.update(genres)
        return sorted(labels)

    def type_labels(self) -> list[str]:
        return sorted({t for t in self.frame["type"] if isinstance(t, str)})

    # --- title lookup -----------------------------------------------------------------

    def _normalized_titles(self) -> list[str]:
        cached = self.__dict__.get("_normalized_cache")
        if cached is None:
            cached = [normalize_title(str(t)) for t in self.frame["title"]]
            object.__setattr__(self, "_normalized_cache", cached)
        return cached

    def _title_positions(self) -> dict[str, list[int]]:
        """Map each normalized title to its row positions, so exact lookups skip a scan."""
        cached = self.__dict__.get("_title_positions_cache")
        if cached is None:
            cached = {}
            for pos, title in enumerate(self._normalized_titles()):
                cached.setdefault(title, []).append(pos)
            object.__setattr__(self, "_title_positions_cache", cached)
        return cached

    def _folded_positions(self) -> dict[str, list[int]]:
        """Map each title folded by `fold_punctuation` to its row positions."""
        cached = self.__dict__.get("_folded_positions_cache")
        if cached is None:
            cached = {}
            for pos, title in enumerate(self._normalized_titles()):
                cached.setdefault(fold_punctuation(title), []).append(pos)
            object.__setattr__(self, "_folded_positions_cache", cached)
        return cached

    def _members(self) -> np.ndarray:
        cached = self.__dict__.get("_members_cache")
        if cached is None:
            cached = self.frame["members"].fillna(0).to_numpy(dtype=np.float64)
            object.__setattr__(self, "_members_cache", cached)
        return cached

    def _trigram_index(self) -> dict[str, list[str]]:
        """Map each character trigram to the distinct normalized titles that contain it."""
        cached = self.__dict__.get("_trigram_cache")
        if cached is None:
            cached = {}
            for title in self._title_positions():
                for gram in _trigrams(title):
                    cached.setdefault(gram, []).append(title)
            object.__setattr__(self, "_trigram_cache", cached)
        return cached

    def _fuzzy_candidates(self, query: str) -> list[str]:
        """Return the titles worth a fuzzy comparison with `query`: those sharing the most
        character trigrams with it. Running difflib on every title takes about 100 ms for
        12,000 titles; on these candidates it takes a few."""
        grams = _trigrams(query)
        if not grams:
            return list(self._title_positions())
        index = self._trigram_index()
        shared: dict[str, int] = {}
        for gram in grams:
            for title in index.get(gram, ()):
                shared[title] = shared.get(title, 0) + 1
        ranked = sorted(shared.items(), key=lambda pair: (-pair[1], pair[0]))
        return [title for title, _ in ranked[:FUZZY_CANDIDATES]]

    def search(self, text: str, n: int = 10) -> list[int]:
        """Return anime ids whose titles match `text`: exact, then prefix, then substring,
        then close fuzzy matches; more members first within each group."""
        query = normalize_title(text)
        if not query:
            return []
        normalized = self._normalized_titles()
        members = self._members()
        ids = self.items.ids  # positions follow anime_id order, as the frame does
        groups: list[list[int]] = [[], [], []]
        for pos, title in enumerate(normalized):
            if title == query:
                groups[0].append(pos)
            elif title.startswith(query):
                groups[1].append(pos)
            elif query in title:
                groups[2].append(pos)
        found: list[int] = []
        for group in groups:
            positions = np.asarray(group, dtype=np.int64)
            found.extend(positions[np.lexsort((ids[positions], -members[positions]))].tolist())
        if len(found) < n:
            seen = set(found)
            close = difflib.get_close_matches(
                query, self._fuzzy_candidates(query), n=n * 3, cutoff=0.6
            )
            positions_by_title = self._title_positions()
            for title in close:
                for pos in positions_by_title[title]:
                    if pos not in seen:
                        found.append(pos)
                        seen.add(pos)
        return [int(ids[p]) for p in found[:n]]

    def resolve_title(self, text: str) -> int:
        """Return the anime id of the one title that equals `text` (case, accents and HTML
        entities ignored), else of the one title with the same words when punctuation is
        ignored too. Raise `NotFoundError` listing the closest matches otherwise."""
        query = normalize_title(text)
        exact = self._title_positions().get(query, [])
        if not exact:
            # "steins gate" for "Steins;Gate": the same words without the punctuation.
            exact = self._folded_positions().get(fold_punctuation(query), [])
        ids = self.items.ids  # positions follow anime_id order, as the frame does
        if len(exact) == 1:
            return int(ids[exact[0]])
        if len(exact) > 1:
            # Same-titled anime usually differ in type (an OVA and a movie), so show it.
            types = [self.frame.at[p, "type"] for p in exact[:5]]
            listed = ", ".join(
                f"{self.frame.at[p, 'title']} ({kind if isinstance(kind, str) else 'unknown type'}, id {ids[p]})"
                for p, kind in zip(exact[:5], types)
            )
            raise NotFoundError(
                f"title {text!r} is ambiguous: it matches {listed}. Use an anime id instead."
            )
        suggestions = self.search(text, n=5)
        if suggestions:
            listed = "; ".join(f"{self.title(a)} (id {a})" for a in suggestions)
            raise NotFoundError(f"no anime titled {text!r}. Closest matches: {listed}")
        raise NotFoundError(f"no anime titled {text!r} and nothing close to it; try `animerec search`")

    def resolve(self, reference: int | str) -> int:
        """Resolve an anime id (int or digit string present in the catalogue) or a title."""
        if isinstance(reference, (int, np.integer)):
            if int(reference) not in self.items:
                raise UnknownIdError(f"unknown anime_id {reference}: it is not in the catalogue")
            return int(reference)
        text = str(reference).strip()
        if text.isdigit() and int(text) in self.items:
            return int(text)
        return self.resolve_title(text)


def _trigrams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


def _plain(value: object) -> object:
    """Convert pandas/numpy scalars to JSON-friendly Python values (missing becomes None)."""
    if isinstance(value, tuple):
        return list(value)
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return value
