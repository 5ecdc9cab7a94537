"""Import a person's MyAnimeList anime list export (XML, optionally gzipped).

MyAnimeList exports a list as `<myanimelist>` with one `<myinfo>` block and one `<anime>`
block per entry; each entry has `<series_animedb_id>`, `<series_title>`, `<my_score>`
(0 = not scored) and `<my_status>` (Watching, Completed, On-Hold, Dropped, Plan to Watch).

The file comes from the person, so it is parsed as untrusted input: documents with a DTD,
entity declarations or external references are rejected (defusedxml), and a file whose
decompressed size exceeds `MAX_EXPORT_BYTES` is rejected before it is parsed.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from animerec.data.watch_status import WatchStatus, parse_status, status_weight
from animerec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# A list of 10,000 entries exports to about 10 MB of XML; 64 MB leaves ample room.
MAX_EXPORT_BYTES = 64 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_ANIME_EXPORT_TYPE = "1"


@dataclass(frozen=True)
class ListEntry:
    """One anime on a person's list. `rating` is None when the person gave no score."""

    anime_id: int
    title: str
    rating: float | None
    status: WatchStatus
    watched_episodes: int | None = None

    @property
    def weight(self) -> float:
        return status_weight(self.status)


@dataclass(frozen=True)
class MalExport:
    """A parsed list export: the account name (when present) and the entries in file order."""

    user_name: str | None
    entries: tuple[ListEntry, ...]

    def history(self) -> list[tuple[int, float | None]]:
        """Return (anime_id, rating or None) pairs, the history format the service takes."""
        return [(entry.anime_id, entry.rating) for entry in self.entries]

    def weights(self) -> list[float]:
        """Return the implicit weight of each entry, aligned with `history()`."""
        return [entry.weight for entry in self.entries]


def read_mal_export(
    source: str | os.PathLike[str] | bytes, *, max_bytes: int = MAX_EXPORT_BYTES
) -> MalExport:
    """Parse a MyAnimeList anime list export from a path or from the file's bytes.

    Gzipped files are recognised by their content, not their name. Raises `DataError` for a
    file that is too large, not XML, unsafe XML, a manga list, or has an invalid entry.
    """
    if max_bytes <= 0:
        raise ConfigError(f"max_bytes must be positive, got {max_bytes}")
    label = "<upload>" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else _read_file(Path(source), max_bytes)
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data, label, max_bytes)
    if len(data) > max_bytes:
        raise DataError(
            f"list export is {len(data):,} bytes, more than the limit of {max_bytes:,}; "
            "export a smaller list or raise the limit",
            path=label,
        )
    root = _parse_xml(data, label)
    return _read_root(root, label)


def _read_file(path: Path, max_bytes: int) -> bytes:
    if not path.is_file():
        raise DataError("list export not found; pass the XML or .xml.gz file from MyAnimeList", path=str(path))
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DataError(
            f"list export is larger than the limit of {max_bytes:,} bytes", path=str(path)
        )
    return data


def _gunzip(data: bytes, label: str, max_bytes: int) -> bytes:
    """Decompress at most max_bytes + 1 bytes, so a compressed bomb stops early."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            expanded = handle.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"list export is not a valid gzip file: {err}", path=label) from err
    if len(expanded) > max_bytes:
        raise DataError(
            f"decompressed list export is larger than the limit of {max_bytes:,} bytes",
            path=label,
        )
    return expanded


def _parse_xml(data: bytes, label: str):
    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import ParseError, fromstring
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "reading a MyAnimeList export needs defusedxml: pip install 'defusedxml>=0.7'"
        ) from err

    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise DataError(
            f"list export rejected: it contains a DTD, an entity or an external reference "
            f"({type(err).__name__}), which a MyAnimeList export never has",
            path=label,
        ) from err
    except ParseError as err:
        line = err.position[0] if getattr(err, "position", None) else None
        raise DataError(f"list export is not well-formed XML: {err}", path=label, line=line) from err


def _read_root(root, label: str) -> MalExport:
    if root.tag != "myanimelist":
        raise DataError(
            f"root element is <{root.tag}>, expected <myanimelist>; is this a MyAnimeList export?",
            path=label,
        )
    info = root.find("myinfo")
    user_name = None
    if info is not None:
        user_name = _text(info, "user_name") or None
        export_type = _text(info, "user_export_type")
        if export_type and export_type != _ANIME_EXPORT_TYPE:
            raise DataError(
                f"this export has user_export_type {export_type} (a manga list); export the anime list",
                path=label,
            )

    entries: list[ListEntry] = []
    for number, element in enumerate(root.iter("anime"), start=1):
        entries.append(_read_entry(element, number, label))
    if not entries:
        raise DataError("list export has no <anime> entries", path=label)
    logger.info("read %d entries from the list export %s", len(entries), label)
    return MalExport(user_name, tuple(entries))


def _read_entry(element, number: int, label: str) -> ListEntry:
    raw_id = _text(element, "series_animedb_id")
    if not raw_id.isdigit() or int(raw_id) <= 0:
        raise DataError(
            f"anime entry {number} has series_animedb_id {raw_id!r}; expected a positive integer",
            path=label,
            value=raw_id,
        )
    title = _text(element, "series_title")

    raw_score = _text(element, "my_score") or "0"
    try:
        score = int(raw_score)
    except ValueError:
        score = -1
    if not 0 <= score <= 10:
        raise DataError(
            f"anime entry {number} ({title or raw_id}) has my_score {raw_score!r}; expected 0-10",
            path=label,
            value=raw_score,
        )

    raw_status = _text(element, "my_status")
    try:
        status = parse_status(raw_status)
    except DataError as err:
        raise DataError(f"anime entry {number} ({title or raw_id}): {err}", path=label) from err

    episodes_text = _text(element, "my_watched_episodes")
    episodes = int(episodes_text) if episodes_text.isdigit() else None
    return ListEntry(
        anime_id=int(raw_id),
        title=title,
        rating=float(score) if score > 0 else None,
        status=status,
        watched_episodes=episodes,
    )


def _text(parent, tag: str) -> str:
    child = parent.find(tag)
    return (child.text or "").strip() if child is not None else ""
