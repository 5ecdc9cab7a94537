"""Franchise groups: which anime belong to one series, and which entry comes first.

A franchise group is a set of anime that a person would call one series: seasons, sequels,
movies, OVAs and specials. Groups come from a JSON file of the form
`[{"name": ..., "ids": [MAL ids]}, ...]` (the `mal_collection.json` of the Fribb/anime-lists
project has this shape) or, without a file, from the titles themselves.

The output is aligned to an item `IdMap` so that `animerec.ranking.Ranker` can use it
directly: `franchise_of[item_idx]` is a group number or -1, and `start_order[item_idx]` is
the item's position inside its group (0 = the entry to start with).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from animerec.data.catalog import Catalog, normalize_title
from animerec.data.idmap import IdMap
from animerec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# A franchise file larger than this is rejected before it is parsed.
MAX_FRANCHISE_FILE_BYTES = 64 * 1024 * 1024

# Catalogue columns that give an anime's start date, best first. `aired_start` is an ISO date
# string of any precision ("1998", "1998-04", "1998-04-03"), so plain string order is date
# order; `premiere_year` is an integer year.
DATE_COLUMNS = ("aired_start", "premiere_year")

_ORDINALS = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|final|\d+(?:st|nd|rd|th))"

# Trailing markers of a sequel, season or side entry, matched on the folded title and stripped
# repeatedly ("naruto movie 1" -> "naruto movie" -> "naruto").
_TRAILING_MARKERS = [
    re.compile(rf"\s+{_ORDINALS}\s+(?:season|stage|part|series)$"),
    re.compile(r"\s+(?:season|part|stage|cour)\s*\d+$"),
    re.compile(r"\s+s\d+$"),
    re.compile(r"\s+(?:ii|iii|iv)$"),
    re.compile(r"\s+r\d$"),  # Code Geass R2
    re.compile(r"\s+\d+$"),
    re.compile(r"\s+\([^()]*\)$"),  # (TV), (2011)
    re.compile(r"\s+(?:the\s+)?movies?$"),
    re.compile(r"\s+(?:ova|oav|ona|tv|specials?|recap|picture drama|final|shippuuden)$"),
    re.compile(r"(?<=[!?])x\d+(?:\s+\S+)?$"),  # Durarara!!x2 Shou
]

# Japanese numerals used as season markers ("Natsume Yuujinchou San"); stripped only when at
# least two words remain, so that a short title such as "Go" keeps its word.
_JAPANESE_NUMERAL = re.compile(r"\s+(?:ni|san|shi|yon|go|roku)$")

_LEADING_MARKERS = re.compile(r"^(?:gekijouban|zoku)\s+")

# Words before a colon that start unrelated titles.
_NON_FRANCHISE_HEADS = frozenset({"re"})

# Punctuation that decorates a season's title ("Gintama'", "Gintama°", "K-On!!").
_DECORATION = "!?'°.,~-–—:;* "


def title_stem(title: str) -> str:
    """Return the franchise stem of a title: the folded part before the first ": ", with
    sequel, season and side-entry markers removed.

    Two titles with the same stem are taken to be one franchise: "Gintama&#039;: Enchousen",
    "Gintama Movie: Kanketsu-hen" and "Gintama°" all have the stem "gintama".
    """
    text = normalize_title(title)
    head = re.split(r":(?:\s|$)", text, maxsplit=1)[0].strip()
    # "Re: Cutie Honey" and "Re: Hamatora" share a prefix, not a franchise.
    if head and head not in _NON_FRANCHISE_HEADS:
        text = head
    text = _LEADING_MARKERS.sub("", text)

    previous = None
    while text != previous:
        previous = text
        text = text.rstrip(_DECORATION)
        for pattern in _TRAILING_MARKERS:
            stripped = pattern.sub("", text)
            if stripped and stripped != text:
                text = stripped
                break
        else:
            stripped = _JAPANESE_NUMERAL.sub("", text)
            if stripped != text and len(stripped.split()) >= 2:
                text = stripped
    return text.rstrip(_DECORATION) or normalize_title(title)


@dataclass(frozen=True)
class Franchises:
    """Franchise groups aligned to an item map.

    `franchise_of` (int32, one per item) is the group number, or -1 for an anime that shares
    its franchise with no other item. `start_order` (int32) is the item's position inside its
    group, 0 for the entry to start with. `names` gives each group's name.
    """

    items: IdMap
    franchise_of: np.ndarray
    start_order: np.ndarray
    names: tuple[str, ...]
    source: str

    @property
    def n_groups(self) -> int:
        return len(self.names)

    def members(self, group: int) -> np.ndarray:
        """Return the item positions of one group in start order."""
        positions = np.flatnonzero(self.franchise_of == group)
        return positions[np.argsort(self.start_order[positions], kind="stable")]

    def group_of(self, anime_id: int) -> int:
        """Return the group number of one anime, or -1 when it has none."""
        return int(self.franchise_of[self.items.index(anime_id)])


def read_franchise_file(path: str | Path) -> list[tuple[str, list[int]]]:
    """Read a franchise file: a JSON list of objects with a `name` and a list of MAL `ids`.

    Raises `DataError` naming the file and the entry when the structure is not as described.
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise DataError("franchise file not found; pass an existing JSON file", path=str(file_path))
    size = file_path.stat().st_size
    if size > MAX_FRANCHISE_FILE_BYTES:
        raise DataError(
            f"franchise file is {size} bytes, more than the limit of {MAX_FRANCHISE_FILE_BYTES}",
            path=str(file_path),
        )
    try:
        entries = json.loads(file_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"franchise file is not valid JSON: {err}", path=str(file_path)) from err
    if not isinstance(entries, list):
        raise DataError(
            'franchise file must contain a JSON list of {"name": ..., "ids": [...]} objects',
            path=str(file_path),
        )

    groups: list[tuple[str, list[int]]] = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("ids"), list):
            raise DataError(
                f"franchise entry {number} has no list of ids: {str(entry)[:80]}",
                path=str(file_path),
            )
        ids = entry["ids"]
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in ids):
            raise DataError(
                f"franchise entry {number} ({entry.get('name')!r}) has ids that are not integers",
                path=str(file_path),
            )
        groups.append((str(entry.get("name") or f"franchise {number}"), [int(v) for v in ids]))
    return groups


def franchises_from_groups(
    groups: list[tuple[str, list[int]]],
    catalog: Catalog,
    items: IdMap,
    source: str = "file",
) -> Franchises:
    """Align explicit groups to `items`. An anime listed in two groups keeps the first; a
    group with fewer than two anime in `items` is left out."""
    franchise_of = np.full(len(items), -1, dtype=np.int32)
    names: list[str] = []
    for name, ids in groups:
        positions = items.to_idx(np.asarray(ids, dtype=np.int64), unknown="drop")
        positions = np.unique(positions[franchise_of[positions] < 0])
        if positions.size < 2:
            continue
        franchise_of[positions] = len(names)
        names.append(name)
    start_order = _start_order(franchise_of, catalog, items)
    logger.info("franchise groups from %s: %d groups over %d anime", source, len(names),
                int((franchise_of >= 0).sum()))
    return Franchises(items, franchise_of, start_order, tuple(names), source)


def franchises_from_titles(catalog: Catalog, items: IdMap) -> Franchises:
    """Derive groups from titles: anime whose `title_stem` is equal form one group, and a
    group whose stem extends another's by whole words joins it (see `_merge_extended_stems`).

    NOTE: titles miss franchises whose entries have unrelated names (Bakemonogatari and
    Nisemonogatari), and they can join unrelated anime with the same stem ("Sin: The Movie"
    and "Sin: Nanatsu no Taizai"). A franchise file is more accurate where one exists.
    """
    aligned = catalog.aligned(items)
    by_stem: dict[str, list[int]] = {}
    for position, title in enumerate(aligned["title"]):
        if not isinstance(title, str) or not title.strip():
            continue
        by_stem.setdefault(title_stem(title), []).append(position)

    by_stem = _merge_extended_stems(by_stem)

    groups: list[tuple[str, list[int]]] = []
    ids = items.ids
    for positions in by_stem.values():
        if len(positions) < 2:
            continue
        first = min(positions, key=lambda p: ids[p])
        groups.append((str(aligned.at[first, "title"]), [int(ids[p]) for p in positions]))
    groups.sort(key=lambda group: min(group[1]))
    return franchises_from_groups(groups, catalog, items, source="titles")


# A stem that another stem extends by whole words ("high school dxd" in "high school dxd
# born", "dragon ball" in "dragon ball super") names the same franchise when it is specific
# enough: at least two words and this many characters, so "ai to" or "my life" join nothing.
MIN_PREFIX_WORDS = 2
MIN_PREFIX_CHARS = 8


def _merge_extended_stems(by_stem: dict[str, list[int]]) -> dict[str, list[int]]:
    """Fold each stem into the shortest other stem that is a specific whole-word prefix of it."""
    merged: dict[str, list[int]] = {}
    for stem in sorted(by_stem, key=lambda s: (len(s.split()), s)):
        words = stem.split()
        target = stem
        for count in range(MIN_PREFIX_WORDS, len(words)):
            prefix = " ".join(words[:count])
            if len(prefix) >= MIN_PREFIX_CHARS and prefix in merged:
                target = prefix
                break
        merged.setdefault(target, []).extend(by_stem[stem])
    return merged


def load_franchises(catalog: Catalog, items: IdMap, path: str | Path | None = None) -> Franchises:
    """Return franchise groups from `path` when given, else derived from titles."""
    if path is not None:
        return franchises_from_groups(read_franchise_file(path), catalog, items, source=str(path))
    return franchises_from_titles(catalog, items)


def prefer_watched(start_order: np.ndarray, watched: np.ndarray) -> np.ndarray:
    """Return a start order in which each group's entries that someone watched come before
    the entries nobody watched, the order being kept otherwise.

    An entry without a single viewer (a re-airing with its own id, an announced sequel) is
    a poor place to start a franchise. In the Kaggle 2016 sample, "FLCL (TV)" (id 33010) has
    no rating rows while the original OVA (id 227) has 885, and main entries otherwise come
    before OVAs. Orders are only compared within a group, so shifting unwatched entries
    past every rank is enough.
    """
    start_order = np.asarray(start_order, dtype=np.int64)
    watched = np.asarray(watched, dtype=bool)
    if watched.shape != start_order.shape:
        raise ConfigError(f"watched has shape {watched.shape} but start_order has {start_order.shape}")
    return start_order + np.where(watched, 0, start_order.size)


# Side entries (recaps, specials, music videos, most OVAs) are rarely where a person starts
# or continues a franchise, so they come after every main entry (TV, Movie, ONA, or unknown).
SIDE_ENTRY_TYPES = frozenset({"OVA", "Special", "Music"})
# A franchise's films are often retellings or side stories of its series (Clannad's film
# came out weeks before its TV series), so films come after the series and before side
# entries.
FILM_TYPES = frozenset({"Movie"})


def _start_tier(kind: object) -> int:
    """Return 0 for a series (TV, ONA or unknown type), 1 for a film, 2 for a side entry."""
    if kind in SIDE_ENTRY_TYPES:
        return 2
    return 1 if kind in FILM_TYPES else 0


def _start_order(franchise_of: np.ndarray, catalog: Catalog, items: IdMap) -> np.ndarray:
    """Order each group's members: series, then films, then side entries, each tier by start
    date when every member has one, else by MAL id (MyAnimeList numbers entries roughly in
    the order they were added)."""
    aligned = catalog.aligned(items)
    dates = _start_dates(aligned)
    tiers = [_start_tier(kind) for kind in aligned["type"]]
    start_order = np.zeros(len(items), dtype=np.int32)
    grouped = np.flatnonzero(franchise_of >= 0)
    if grouped.size == 0:
        return start_order
    by_group = grouped[np.argsort(franchise_of[grouped], kind="stable")]
    boundaries = np.flatnonzero(np.diff(franchise_of[by_group])) + 1
    ids = items.ids
    for members in np.split(by_group, boundaries):
        member_dates = [dates[m] for m in members]
        if all(d is not None for d in member_dates):
            ordered = sorted(members, key=lambda m: (tiers[m], dates[m], ids[m]))
        else:
            ordered = sorted(members, key=lambda m: (tiers[m], ids[m]))
        for rank, member in enumerate(ordered):
            start_order[member] = rank
    return start_order


def _start_dates(aligned: pd.DataFrame) -> list[str | None]:
    """Return one sortable start-date string per row, or None where no date is known."""
    dates: list[str | None] = [None] * len(aligned)
    for column in DATE_COLUMNS:
        if column not in aligned.columns:
            continue
        for position, value in enumerate(aligned[column]):
            if dates[position] is not None or value is None or value is pd.NA:
                continue
            if isinstance(value, float) and np.isnan(value):
                continue
            if column == "premiere_year":
                dates[position] = f"{int(value):04d}"
            else:
                text = str(value).strip()
                dates[position] = text or None
    return dates
