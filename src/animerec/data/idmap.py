"""Translation between external ids and internal matrix positions.

External ids (`user_id`, `anime_id`) are what files and people see. Internal positions
(`user_idx`, `item_idx`) are contiguous int32 row or column numbers inside matrices. `IdMap`
is the only place that translates between them, and every model bundle stores its maps.
"""

from __future__ import annotations

from typing import Iterable, Literal

import numpy as np

from animerec.errors import ConfigError, UnknownIdError

UnknownPolicy = Literal["raise", "drop", "mask"]
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class IdMap:
    """A frozen, sorted set of external integer ids and their positions.

    Ids are stored sorted and unique, so position order is id order: ranking code relies on
    this to break score ties by the smaller id without another lookup.
    """

    __slots__ = ("_ids", "kind", "_lookup")

    def __init__(self, ids: Iterable[int] | np.ndarray, kind: str = "id") -> None:
        array = np.unique(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))
        array.setflags(write=False)
        self._ids = array
        self.kind = kind
        self._lookup: np.ndarray | None = None

    @property
    def ids(self) -> np.ndarray:
        """The external ids in position order (read-only int64 array)."""
        return self._ids

    def __len__(self) -> int:
        return int(self._ids.size)

    def __contains__(self, external_id: object) -> bool:
        try:
            value = int(external_id)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return False
        # int() truncates 1.5 to 1; an id must equal the integer, not just round to it.
        if isinstance(external_id, (float, np.floating)) and value != external_id:
            return False
        if not _INT64_MIN <= value <= _INT64_MAX:
            return False
        pos = int(np.searchsorted(self._ids, value))
        return pos < self._ids.size and int(self._ids[pos]) == value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:
        return hash((self.kind, self._ids.size, self._ids[:8].tobytes()))

    def __repr__(self) -> str:
        return f"IdMap(kind={self.kind!r}, size={len(self)})"

    def index(self, external_id: int) -> int:
        """Return the position of one external id, raising `UnknownIdError` when absent."""
        if external_id not in self:
            raise UnknownIdError(
                f"unknown {self.kind} {external_id!r}: it is not in this data or model"
            )
        return int(np.searchsorted(self._ids, int(external_id)))

    def to_idx(
        self, external_ids: Iterable[int] | np.ndarray, unknown: UnknownPolicy = "raise"
    ) -> np.ndarray:
        """Translate external ids to int32 positions.

        `unknown` decides what happens to ids that are not in the map: "raise" raises
        `UnknownIdError` naming the first one, "drop" leaves them out (so the result can be
        shorter), and "mask" returns -1 in their place.
        """
        if unknown not in ("raise", "drop", "mask"):
            raise ConfigError(f"unknown-id policy must be raise, drop or mask, not {unknown!r}")
        values, valid = _as_int64(external_ids)
        positions, found = self._find(values)
        found &= valid
        if unknown == "raise" and not found.all():
            first = _listed(external_ids)[int(np.argmin(found))]
            first = first.item() if isinstance(first, np.generic) else first
            raise UnknownIdError(
                f"unknown {self.kind} {first!r}: it is not in this data or model"
            )
        if unknown == "drop":
            return positions[found].astype(np.int32)
        return np.where(found, positions, -1).astype(np.int32)

    def _find(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the positions of int64 `values` and a mask of the ones that are ids here."""
        if self._ids.size == 0:
            return np.zeros(values.shape, dtype=np.int64), np.zeros(values.shape, dtype=bool)
        lookup = self._lookup_table()
        if lookup is not None:
            low, high = int(self._ids[0]), int(self._ids[-1])
            inside = (values >= low) & (values <= high)
            positions = lookup[np.where(inside, values - low, 0)]
            return positions, inside & (positions >= 0)
        positions = np.searchsorted(self._ids, values)
        clipped = np.minimum(positions, self._ids.size - 1)
        return positions, (positions < self._ids.size) & (self._ids[clipped] == values)

    def _lookup_table(self) -> np.ndarray | None:
        """Return a table from `id - min id` to position (-1 for gaps) when ids are dense enough.

        A table lookup is several times faster than a binary search on millions of rows; it
        is built only when it costs at most about 4 bytes × (4 × size + 2**20).
        """
        if self._lookup is None:
            span = int(self._ids[-1]) - int(self._ids[0]) + 1
            if span > 4 * self._ids.size + 2**20:
                return None
            table = np.full(span, -1, dtype=np.int32)
            table[self._ids - self._ids[0]] = np.arange(self._ids.size, dtype=np.int32)
            table.setflags(write=False)
            self._lookup = table
        return self._lookup

    def to_ids(self, positions: Iterable[int] | np.ndarray) -> np.ndarray:
        """Translate int positions back to external int64 ids."""
        idx = np.asarray(
            list(positions) if not isinstance(positions, np.ndarray) else positions, dtype=np.int64
        )
        if idx.size and (idx.min() < 0 or idx.max() >= self._ids.size):
            raise ConfigError(
                f"{self.kind} position out of range 0..{self._ids.size - 1}: got {idx.min()}..{idx.max()}"
            )
        return self._ids[idx]


def _listed(values: Iterable[int] | np.ndarray) -> list | np.ndarray:
    return values if isinstance(values, np.ndarray) else list(values)


def _as_int64(external_ids: Iterable[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert ids to int64 and flag the ones that are whole numbers within int64 range.

    An id that is not (1.5, 2**70, "x") gets the placeholder 0 and False, so no policy ever
    matches it to the id that truncation or wrap-around would give.
    """
    raw = np.asarray(_listed(external_ids))
    if raw.dtype.kind in "ib":
        return raw.astype(np.int64, copy=False), np.ones(raw.shape, dtype=bool)
    if raw.dtype.kind == "u":
        valid = raw <= _INT64_MAX
        return np.where(valid, raw, 0).astype(np.int64), valid
    if raw.dtype.kind == "f":
        valid = np.isfinite(raw) & (raw == np.round(raw)) & (raw >= _INT64_MIN) & (raw < 2.0**63)
        return np.where(valid, raw, 0).astype(np.int64), valid
    values = np.zeros(raw.shape, dtype=np.int64)
    valid = np.zeros(raw.shape, dtype=bool)
    for position, value in enumerate(raw.ravel().tolist()):
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if isinstance(value, float) and number != value:
            continue
        if _INT64_MIN <= number <= _INT64_MAX:
            values.flat[position] = number
            valid.flat[position] = True
    return values, valid
