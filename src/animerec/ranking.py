"""The one ranking step: scores in, filtered top-n lists out.

Every model returns raw scores; this module alone turns them into lists. It removes what the
person has already seen, anime outside the allow list or inside the deny list, genre and
type filters, adult titles (genre Hentai) unless asked for, items no model could score
(-inf), and returns the n best, breaking score ties by the smaller anime_id.
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
    """What a list may contain and how long it is."""

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
        results = []
        for row in range(scores.shape[0]):
            row_scores = np.where(candidates, scores[row], -np.inf)
            if options.exclude_seen and seen is not None:
                start, end = seen.indptr[row], seen.indptr[row + 1]
                row_scores[seen.indices[start:end]] = -np.inf
            if options.collapse_franchises and self.franchise_of is not None:
                chosen = self._top_n_collapsed(row_scores, options.n, seen, row)
            else:
                chosen = top_n(row_scores, options.n)
            ids = self.items.ids
            results.append(
                [Recommendation(int(ids[i]), float(row_scores_value), int(i))
                 for i, row_scores_value in chosen]
            )
        return results

    def _top_n_collapsed(
        self, row_scores: np.ndarray, n: int, seen: sp.csr_matrix | None, row: int
    ) -> list[tuple[int, float]]:
        """Top-n with at most one title per franchise: the group's best score stands for
        the group, and the title shown is the group's earliest entry the person has not
        seen that the filters allow."""
        assert self.franchise_of is not None
        order = self.start_order if self.start_order is not None else np.arange(len(self.items))
        seen_items = set()
        if seen is not None:
            seen_items = set(seen.indices[seen.indptr[row]:seen.indptr[row + 1]].tolist())
        picked: list[tuple[int, float]] = []
        used_groups: set[int] = set()
        # Walk down the ranking in growing blocks until n groups are filled.
        block = max(4 * n, 64)
        ranked = top_n(row_scores, min(block, row_scores.size))
        offset = 0
        while len(picked) < n:
            if offset >= len(ranked):
                if len(ranked) >= np.isfinite(row_scores).sum():
                    break
                block *= 4
                ranked = top_n(row_scores, min(block, row_scores.size))
                if offset >= len(ranked):
                    break
            item, score = ranked[offset]
            offset += 1
            group = int(self.franchise_of[item])
            if group < 0:
                picked.append((item, score))
                continue
            if group in used_groups:
                continue
            used_groups.add(group)
            members = np.flatnonzero(self.franchise_of == group)
            allowed = [
                m for m in members
                if np.isfinite(row_scores[m]) and int(m) not in seen_items
            ]
            if not allowed:
                continue
            entry = min(allowed, key=lambda m: (order[m], m))
            picked.append((int(entry), score))
        return picked


def top_n(scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """Return up to n (position, score) pairs with the highest finite scores, best first;
    equal scores are ordered by the smaller position (which is the smaller anime_id)."""
    finite = np.isfinite(scores)
    count = int(finite.sum())
    if count == 0 or n <= 0:
        return []
    n = min(n, count)
    if n < count:
        # The n-th best value; everything strictly better is in, ties with it are settled
        # by position so the result does not depend on argpartition's internal order.
        threshold = np.partition(np.where(finite, scores, -np.inf), -n)[-n]
        candidates = np.flatnonzero(finite & (scores >= threshold))
    else:
        candidates = np.flatnonzero(finite)
    order = np.lexsort((candidates, -scores[candidates]))[:n]
    chosen = candidates[order]
    return [(int(i), float(scores[i])) for i in chosen]
