"""Reading MyAnimeList list exports: real structure, gzip, unsafe XML and invalid entries."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from animerec.data.malexport import read_mal_export
from animerec.data.watch_status import STATUS_WEIGHTS, WatchStatus, parse_status
from animerec.errors import DataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPORT = FIXTURES / "mal_export_anime.xml"


def entry_xml(anime_id: str, score: str, status: str, title: str = "Title") -> str:
    return (
        f"<anime><series_animedb_id>{anime_id}</series_animedb_id>"
        f"<series_title><![CDATA[{title}]]></series_title>"
        f"<my_score>{score}</my_score><my_status>{status}</my_status></anime>"
    )


def export_bytes(*entries: str) -> bytes:
    return ("<?xml version='1.0' encoding='UTF-8'?><myanimelist>" + "".join(entries) + "</myanimelist>").encode()


def test_export_entries_in_file_order() -> None:
    export = read_mal_export(EXPORT)

    assert export.user_name == "example_fan"
    assert [e.anime_id for e in export.entries] == [1, 5114, 21, 9253, 11757, 32281]
    assert export.entries[1].title == "Fullmetal Alchemist: Brotherhood"


def test_export_ratings_zero_is_unscored() -> None:
    export = read_mal_export(EXPORT)

    assert export.history() == [
        (1, 9.0), (5114, 10.0), (21, None), (9253, None), (11757, 3.0), (32281, None)
    ]


def test_export_statuses_and_weights() -> None:
    export = read_mal_export(EXPORT)

    assert [e.status for e in export.entries] == [
        WatchStatus.COMPLETED,
        WatchStatus.COMPLETED,
        WatchStatus.WATCHING,
        WatchStatus.ON_HOLD,
        WatchStatus.DROPPED,
        WatchStatus.PLAN_TO_WATCH,
    ]
    assert export.weights() == [1.0, 1.0, 0.8, 0.3, -0.5, 0.1]
    assert export.entries[2].watched_episodes == 312


def test_status_weights_signs() -> None:
    assert STATUS_WEIGHTS[WatchStatus.DROPPED] < 0
    assert STATUS_WEIGHTS[WatchStatus.COMPLETED] > STATUS_WEIGHTS[WatchStatus.ON_HOLD] > 0
    assert STATUS_WEIGHTS[WatchStatus.WATCHING] > STATUS_WEIGHTS[WatchStatus.PLAN_TO_WATCH] > 0


@pytest.mark.parametrize(
    ("text", "status"),
    [("On-Hold", WatchStatus.ON_HOLD), ("plan to  watch", WatchStatus.PLAN_TO_WATCH),
     ("6", WatchStatus.PLAN_TO_WATCH), ("1", WatchStatus.WATCHING), ("COMPLETED", WatchStatus.COMPLETED)],
)
def test_parse_status_names_and_codes(text: str, status: WatchStatus) -> None:
    assert parse_status(text) is status


@pytest.mark.parametrize("text", ["5", "Reading", "", "finished"])
def test_parse_status_invalid(text: str) -> None:
    with pytest.raises(DataError, match="unknown list status"):
        parse_status(text)


def test_gzipped_export_from_path(tmp_path: Path) -> None:
    path = tmp_path / "animelist.xml.gz"
    path.write_bytes(gzip.compress(EXPORT.read_bytes()))

    export = read_mal_export(path)

    assert len(export.entries) == 6


def test_export_from_bytes() -> None:
    export = read_mal_export(export_bytes(entry_xml("5", "7", "Completed")))

    assert export.history() == [(5, 7.0)]
    assert export.user_name is None


def test_billion_laughs_rejected() -> None:
    with pytest.raises(DataError, match="rejected"):
        read_mal_export(FIXTURES / "mal_export_billion_laughs.xml")


def test_external_entity_rejected() -> None:
    with pytest.raises(DataError, match="rejected"):
        read_mal_export(FIXTURES / "mal_export_external_entity.xml")


def test_manga_export_rejected() -> None:
    with pytest.raises(DataError, match="manga"):
        read_mal_export(FIXTURES / "mal_export_manga.xml")


def test_size_limit(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="limit of 1,000"):
        read_mal_export(EXPORT, max_bytes=1000)


def test_gzip_bomb_stops_at_limit(tmp_path: Path) -> None:
    # 20 MB of spaces compress to about 20 KB; the limit applies to the decompressed size.
    payload = export_bytes(entry_xml("1", "9", "Completed")) + b" " * 20_000_000
    path = tmp_path / "bomb.xml.gz"
    path.write_bytes(gzip.compress(payload))

    with pytest.raises(DataError, match="decompressed"):
        read_mal_export(path, max_bytes=1_000_000)


def test_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "list.xml.gz"
    path.write_bytes(gzip.compress(EXPORT.read_bytes())[:200])

    with pytest.raises(DataError, match="gzip"):
        read_mal_export(path)


def test_not_xml() -> None:
    with pytest.raises(DataError, match="not well-formed"):
        read_mal_export(b"anime_id,rating\n1,9\n")


def test_wrong_root() -> None:
    with pytest.raises(DataError, match="<html>"):
        read_mal_export(b"<html><body/></html>")


def test_empty_list() -> None:
    with pytest.raises(DataError, match="no <anime> entries"):
        read_mal_export(export_bytes())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (entry_xml("abc", "7", "Completed"), "series_animedb_id"),
        (entry_xml("0", "7", "Completed"), "series_animedb_id"),
        (entry_xml("5", "11", "Completed"), "my_score"),
        (entry_xml("5", "seven", "Completed"), "my_score"),
        (entry_xml("5", "7", "Reading"), "unknown list status"),
    ],
)
def test_invalid_entry(entry: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_mal_export(export_bytes(entry_xml("1", "5", "Completed"), entry))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_mal_export(tmp_path / "absent.xml")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=10**9),
            st.integers(min_value=0, max_value=10),
            st.sampled_from(["Watching", "Completed", "On-Hold", "Dropped", "Plan to Watch"]),
            st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).filter(
                lambda t: "]]>" not in t
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_export_round_trip(rows: list[tuple[int, int, str, str]]) -> None:
    data = export_bytes(*(entry_xml(str(a), str(s), status, title) for a, s, status, title in rows))

    export = read_mal_export(data)

    assert [e.anime_id for e in export.entries] == [a for a, _, _, _ in rows]
    assert [e.rating for e in export.entries] == [float(s) if s else None for _, s, _, _ in rows]
    assert [e.title for e in export.entries] == [t.strip() for _, _, _, t in rows]
