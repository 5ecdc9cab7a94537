"""The one ranking step: scores in, filtered top-n lists out.

Every model returns raw scores, and this module alone turns them into lists. It removes
the anime the person has already seen, anime outside the allow list or inside the deny
list, anime the genre and type filters exclude, and adult titles (genre Hentai) unless the
options include them. Items no model could score (-inf) never appear. It returns the n
best and breaks score ties by the smaller anime_id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.idmap import IdMap
from animerec.errors import ConfigError

MAX_N = 1000


@dataclass(frozen=True)
class RankingOptions:
    """Filters and length of one recommendation list."""

    n: int = 10
    exclude_seen: bool = True
    include_adult: bool = False
    # Keep only anime that have at least one of these genres (empty: no restriction).
    genres: tuple[str, ...] = ()
    exclude_genres: tuple[str, ...] = ()
    # Keep only anime of these types (empty: every type).
    types: tuple[str, ...] = ()
    exclude_types: tuple[str, ...] = ()
    allow: tuple[int, ...] | None = None
    deny: tuple[int, ...] = ()
    # At most one title per franchise group, the entry a person can start with.
    collapse_franchises: bool = False

    def __post_init__(self) -> None:
        if not 1 <= int(self.n) <= MAX_N:
            raise ConfigError(f"n must be between 1 and {MAX_N}, got {self.n}")
        # Callers pass lists (JSON, CLI) or one bare label. Tuples keep options hashable,
        # and a bare string is one label, not a sequence of characters.
        for name in ("genres", "exclude_genres", "types", "exclude_types", "deny", "allow"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))

    def replace(self, **changes) -> "RankingOptions":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Recommendation:
    anime_id: int
    score: float
    item_idx: int
    reasons: list[str] = field(default_factory=list)


class Ranker:
    """Ranks score arrays over the columns of `items` using the catalogue's metadata.

    `franchise_of`, when given, maps each item position to a franchise group number (-1 for
    none) and `start_order` gives each item's position inside its group (lower = earlier);
    both come from `animerec.franchise` and are needed only for collapsing.
    """

    def __init__(
        self,
        catalog: Catalog,
        items: IdMap,
        franchise_of: np.ndarray | None = None,
        start_order: np.ndarray | None = None,
    ) -> None:
        self.catalog = catalog
        self.items = items
        aligned = catalog.aligned(items)
        self._types = aligned["type"].to_numpy(dtype=object)
        self._genres = [g if isinstance(g, tuple) else () for g in aligned["genres"]]
        self._adult = catalog.adult_mask(items)
        self._genre_labels = set(catalog.genre_labels())
        self._type_labels = set(catalog.type_labels())
        self.franchise_of = franchise_of
        self.start_order = start_order
        self._mask_cache: dict[tuple, np.ndarray] = {}
        # Item positions sorted by group, for the `franchise_of` array they were built from.
        self._groups_index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # --- candidate filtering -----------------------------------------------------------

    def _check_labels(self, values: Sequence[str], known: set[str], what: str) -> tuple[str, ...]:
        resolved = []
        lookup = {label.casefold(): label for label in known}
        for value in values:
            label = lookup.get(str(value).strip().casefold())
            if label is None:
                raise ConfigError(
                    f"unknown {what} {value!r}; valid values: {', '.join(sorted(known))}"
                )
            resolved.append(label)
        return tuple(resolved)

    def candidate_mask(self, options: RankingOptions) -> np.ndarray:
        """Return a boolean mask of the items a list may contain under `options`
        (everything except seen-item exclusion, which depends on the person)."""
        key = (
            options.include_adult,
            options.genres,
            options.exclude_genres,
            options.types,
            options.exclude_types,
            options.allow,
            options.deny,
        )
        cached = self._mask_cache.get(key)
        if cached is not None:
            return cached

        mask = np.ones(len(self.items), dtype=bool)
        if not options.include_adult:
            mask &= ~self._adult

        wanted = set(self._check_labels(options.genres, self._genre_labels, "genre"))
        unwanted = set(self._check_labels(options.exclude_genres, self._genre_labels, "genre"))
        if wanted or unwanted:
            genre_ok = np.fromiter(
                (
                    (not wanted or bool(wanted.intersection(g)))
                    and not unwanted.intersection(g)
                    for g in self._genres
                ),
                dtype=bool,
                count=len(self._genres),
            )
            mask &= genre_ok

        types = set(self._check_labels(options.types, self._type_labels, "type"))
        not_types = set(self._check_labels(options.exclude_types, self._type_labels, "type"))
        if types:
            mask &= np.isin(self._types, list(types))
        if not_types:
            mask &= ~np.isin(self._types, list(not_types))

        if options.allow is not None:
            allowed = np.zeros(len(self.items), dtype=bool)
            allowed[self.items.to_idx(options.allow, unknown="drop")] = True
            mask &= allowed
        if options.deny:
            mask[self.items.to_idx(options.deny, unknown="drop")] = False

        mask.setflags(write=False)
        if len(self._mask_cache) > 256:
            self._mask_cache.clear()
        self._mask_cache[key] = mask
        return mask

    # --- ranking ----------------------------------------------------------------------

    def rank(
        self,
        scores: np.ndarray,
        options: RankingOptions,
        seen: sp.csr_matrix | None = None,
    ) -> list[list[Recommendation]]:
        """Return one list of recommendations per row of `scores` (people × items).

        `seen` (people × items, any stored value counts as seen) is removed when
        `options.exclude_seen` is true.
        """
        scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
        if scores.shape[1] != len(self.items):
            raise ConfigError(
                f"scores have {scores.shape[1]} columns but the item map has {len(self.items)}"
            )
        if seen is not None and seen.shape != scores.shape:
            raise ConfigError(f"seen has shape {seen.shape}, scores {scores.shape}")
        candidates = self.candidate_mask(options)
        collapse = options.collapse_franchises and self.franchise_of is not None
        # A franchise starts at its first unseen entry of the kinds asked for (the type filter
        # and allow list). The other filters then decide whether the franchise is listed.
        startable_kinds = (
            self.candidate_mask(
                options.replace(include_adult=True, genres=(), exclude_genres=(), deny=())
            )
            if collapse
            else candidates
        )
        results = []
        for row in range(scores.shape[0]):
            row_scores = np.where(candidates, scores[row], -np.inf)
            seen_idx = np.empty(0, dtype=np.int64)
            if seen is not None:
                seen_idx = seen.indices[seen.indptr[row]:seen.indptr[row + 1]]
            if options.exclude_seen:
                row_scores[seen_idx] = -np.inf
            if collapse:
                chosen = self._top_n_collapsed(row_scores, options.n, candidates, seen_idx, startable_kinds)
            else:
                chosen = top_n(row_scores, options.n)
            ids = self.items.ids
            results.append(
                [Recommendation(int(ids[i]), float(value), int(i)) for i, value in chosen]
            )
        return results

    def _top_n_collapsed(
        self,
        row_scores: np.ndarray,
        n: int,
        candidates: np.ndarray,
        seen_idx: np.ndarray,
        startable_kinds: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Top-n with at most one title per franchise group.

        The group's best score stands for the group. The title shown is the group's earliest
        unseen entry (by `start_order`) of the kinds asked for (`startable_kinds`: the type
        filter and allow list), even when the model could not score that entry itself (an
        anime with no training interactions). When the other filters exclude that entry
        (a genre filter, adult titles, "not interested"), the whole group is left out rather
        than offering a later entry. When the person has seen every entry and seen titles
        are not excluded, the best-scored entry is shown.
        """
        assert self.franchise_of is not None
        franchise_of = self.franchise_of
        order = self.start_order if self.start_order is not None else np.arange(len(self.items))
        kinds = candidates if startable_kinds is None else startable_kinds
        unseen = kinds.copy()
        unseen[seen_idx] = False

        picked: list[tuple[int, float]] = []
        used_groups: set[int] = set()
        finite_count = int(np.isfinite(row_scores).sum())
        block = min(max(4 * n, 64), finite_count)
        ranked = top_n(row_scores, block)
        offset = 0
        while len(picked) < n:
            if offset >= len(ranked):
                if len(ranked) >= finite_count:
                    break
                # Walk further down the ranking: many top items shared groups.
                block = min(block * 4, finite_count)
                ranked = top_n(row_scores, block)
                continue
            item, score = ranked[offset]
            offset += 1
            group = int(franchise_of[item])
            if group < 0:
                picked.append((item, score))
                continue
            if group in used_groups:
                continue
            used_groups.add(group)
            members = self._group_members(group)
            startable = members[unseen[members]]
            if startable.size:
                entry = int(min(startable, key=lambda m: (order[m], m)))
                if not candidates[entry]:
                    continue
            else:
                entry = item
            picked.append((entry, score))
        return picked

    def _group_members(self, group: int) -> np.ndarray:
        """Return the item positions of one franchise group, ascending."""
        franchise_of = self.franchise_of
        assert franchise_of is not None
        index = self._groups_index
        # The service may swap in new groups, so the index remembers which array it sorted.
        if index is None or index[0] is not franchise_of:
            positions = np.argsort(franchise_of, kind="stable")
            index = (franchise_of, positions, franchise_of[positions])
            self._groups_index = index
        _, positions, sorted_groups = index
        low, high = np.searchsorted(sorted_groups, [group, group + 1])
        return positions[low:high]


def top_n(scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """Return up to n (position, score) pairs with the highest finite scores, best first.

    Equal scores are ordered by the smaller position, which is the smaller anime_id.
    """
    finite = np.isfinite(scores)
    candidates = np.flatnonzero(finite)
    count = candidates.size
    if count == 0 or n <= 0:
        return []
    n = min(n, count)
    if n < count:
        # Everything better than the n-th best value is in. Ties with that value are settled
        # by position, so the result does not depend on argpartition's internal order.
        values = scores[candidates]
        threshold = np.partition(values, -n)[-n]
        candidates = candidates[values >= threshold]
    order = np.lexsort((candidates, -scores[candidates]))[:n]
    chosen = candidates[order]
    return [(int(i), float(scores[i])) for i in chosen]
