"""Franchise groups from titles and from a file, and collapsing them in the ranking step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from animerec.data.catalog import Catalog
from animerec.data.frames import catalog_frame
from animerec.errors import DataError
from animerec.franchise import (
    franchises_from_groups,
    franchises_from_titles,
    load_franchises,
    prefer_watched,
    read_franchise_file,
    title_stem,
)
from animerec.ranking import Ranker, RankingOptions

DATA = Path(os.environ.get("ANIMEREC_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ANIME_2016 = DATA / "anime-2016" / "anime.csv"
COLLECTION = DATA / "anime-franchises" / "mal_collection.json"


def small_catalog(rows: list[tuple[int, str]], extra: dict | None = None) -> Catalog:
    ids = [anime_id for anime_id, _ in rows]
    return Catalog(
        catalog_frame(
            anime_id=ids,
            title=[title for _, title in rows],
            genres=[("Action",)] * len(rows),
            type=["TV"] * len(rows),
            episodes=[12] * len(rows),
            score=[None] * len(rows),
            members=[None] * len(rows),
            extra=extra,
        )
    )


@pytest.fixture(scope="module")
def catalog_2016() -> Catalog:
    if not ANIME_2016.is_file():
        pytest.skip(f"real data not found at {ANIME_2016}; set ANIMEREC_TEST_DATA")
    raw = pd.read_csv(ANIME_2016)
    return Catalog(
        catalog_frame(
            anime_id=raw["anime_id"],
            title=raw["name"],
            genres=[tuple(g.split(", ")) if isinstance(g, str) else () for g in raw["genre"]],
            type=raw["type"],
            episodes=[None] * len(raw),
            score=raw["rating"],
            members=raw["members"],
        )
    )


@pytest.mark.parametrize(
    ("title", "stem"),
    [
        ("Gintama°", "gintama"),
        ("Gintama&#039;: Enchousen", "gintama"),
        ("Gintama Movie: Kanketsu-hen - Yorozuya yo Eien Nare", "gintama"),
        ("Haikyuu!! Second Season", "haikyuu"),
        ("Haikyuu!! Movie 1: Owari to Hajimari", "haikyuu"),
        ("Natsume Yuujinchou Shi", "natsume yuujinchou"),
        ("Initial D Fourth Stage", "initial d"),
        ("Initial D Final Stage", "initial d"),
        ("Durarara!!x2 Shou", "durarara"),
        ("K-On! Movie", "k-on"),
        ("K-On!!", "k-on"),
        ("Code Geass: Hangyaku no Lelouch R2", "code geass"),
        ("Hunter x Hunter (2011)", "hunter x hunter"),
        ("Sword Art Online II", "sword art online"),
        ("Naruto: Shippuuden", "naruto"),
        ("Fullmetal Alchemist: Brotherhood Specials", "fullmetal alchemist"),
        ("Steins;Gate Movie: Fuka Ryouiki no Déjà vu", "steins;gate"),
        ("Shingeki no Kyojin Season 2", "shingeki no kyojin"),
    ],
)
def test_title_stem_strips_markers(title: str, stem: str) -> None:
    assert title_stem(title) == stem


@pytest.mark.parametrize(
    ("title", "stem"),
    [
        ("Air Gear", "air gear"),
        ("Go", "go"),
        ("Re:Zero kara Hajimeru Isekai Seikatsu", "re:zero kara hajimeru isekai seikatsu"),
        ("Re: Cutie Honey", "re: cutie honey"),
        ("Final Fantasy VII: Advent Children", "final fantasy vii"),
    ],
)
def test_title_stem_keeps_distinct_names(title: str, stem: str) -> None:
    assert title_stem(title) == stem


def test_titles_group_real_sequels(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)

    gintama = franchises.group_of(918)
    assert gintama >= 0
    for anime_id in (9969, 28977, 15417, 15335):  # Gintama', Gintama°, Enchousen, a movie
        assert franchises.group_of(anime_id) == gintama
    assert franchises.group_of(5114) == franchises.group_of(121)  # FMA Brotherhood and FMA
    assert franchises.group_of(20583) == franchises.group_of(28891)  # Haikyuu!! seasons 1, 2


def test_titles_keep_unrelated_apart(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)

    air = catalog_2016.resolve("Air")
    air_gear = catalog_2016.resolve("Air Gear")
    assert franchises.group_of(air) != franchises.group_of(air_gear)
    steins_gate = franchises.group_of(9253)
    assert steins_gate != franchises.group_of(918)
    assert franchises.group_of(32281) == -1  # Kimi no Na wa. has no sequel in the data


def test_start_order_by_id_without_dates(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)

    members = franchises.members(franchises.group_of(918))
    first = int(franchises.items.ids[members[0]])
    assert first == 918  # Gintama (2006) has the smallest MAL id of its group
    assert franchises.start_order[members[0]] == 0


def test_titles_join_word_extended_stems(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)

    dxd = franchises.group_of(11617)  # High School DxD
    assert franchises.group_of(15451) == dxd  # High School DxD New
    assert franchises.group_of(24703) == dxd  # High School DxD BorN
    dragon_ball = franchises.group_of(223)
    assert franchises.group_of(813) == dragon_ball  # Dragon Ball Z
    assert franchises.group_of(225) == dragon_ball  # Dragon Ball GT


def test_titles_keep_short_prefixes_apart() -> None:
    catalog = small_catalog(
        [(1, "My Life"), (2, "My Life As"), (3, "Monster"), (4, "Monster Musume")]
    )

    franchises = franchises_from_titles(catalog, catalog.items)

    assert franchises.n_groups == 0


def test_start_order_puts_main_entries_first(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)

    members = franchises.members(franchises.group_of(11757))
    ordered = [int(franchises.items.ids[m]) for m in members]

    # Sword Art Online (TV) and II (TV) precede the Sword Art Offline special (16099),
    # though the special has the smaller MAL id than II (21881).
    assert ordered[:2] == [11757, 21881]
    assert ordered.index(21881) < ordered.index(16099)


def test_start_order_side_entry_after_tv() -> None:
    catalog = small_catalog([(10, "Saga"), (20, "Saga: Recap"), (30, "Saga: Part Two")])
    catalog.frame.loc[catalog.frame["anime_id"] == 20, "type"] = "Special"

    franchises = franchises_from_titles(catalog, catalog.items)

    assert franchises.start_order.tolist() == [0, 2, 1]


def test_start_order_prefers_dates() -> None:
    catalog = small_catalog(
        [(10, "Saga: Part Two"), (20, "Saga"), (30, "Saga OVA")],
        extra={"aired_start": ["2012-04-01", "2010-01-05", "2011"]},
    )

    franchises = franchises_from_titles(catalog, catalog.items)

    assert franchises.n_groups == 1
    assert franchises.start_order.tolist() == [2, 0, 1]


def test_start_order_falls_back_to_ids() -> None:
    catalog = small_catalog(
        [(10, "Saga: Part Two"), (20, "Saga"), (30, "Saga OVA")],
        extra={"aired_start": ["2012-04-01", None, "2011"]},
    )

    franchises = franchises_from_titles(catalog, catalog.items)

    assert franchises.start_order.tolist() == [0, 1, 2]


def test_groups_from_file(tmp_path: Path) -> None:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps([
        {"name": "Saga", "ids": [10, 30, 999]},
        {"name": "Lonely", "ids": [20, 998]},
        {"name": "Again", "ids": [30, 40]},
    ]))
    catalog = small_catalog([(10, "A"), (20, "B"), (30, "C"), (40, "D")])

    franchises = load_franchises(catalog, catalog.items, path)

    assert franchises.franchise_of.tolist() == [0, -1, 0, -1]
    assert franchises.names == ("Saga",)


def test_real_collection_file(catalog_2016: Catalog) -> None:
    if not COLLECTION.is_file():
        pytest.skip(f"franchise file not found at {COLLECTION}")

    franchises = load_franchises(catalog_2016, catalog_2016.items, COLLECTION)

    assert franchises.group_of(5114) == franchises.group_of(121)
    assert franchises.group_of(5114) >= 0
    assert franchises.group_of(1) != franchises.group_of(5114)


@pytest.mark.parametrize(
    "content",
    ['{"name": "x"}', '[{"name": "x", "ids": "1, 2"}]', '[{"ids": [1, "2"]}]', "[1, 2", ""],
)
def test_bad_franchise_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "groups.json"
    path.write_text(content)

    with pytest.raises(DataError, match="groups.json"):
        read_franchise_file(path)


def test_missing_franchise_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_franchise_file(tmp_path / "absent.json")


# --- collapsing in the ranking step ---------------------------------------------------------


@pytest.fixture()
def saga_ranker() -> Ranker:
    # Items 0..2 are one franchise in start order 0, 1, 2; items 3 and 4 stand alone.
    catalog = small_catalog([(1, "Saga"), (2, "Saga 2nd Season"), (3, "Saga Movie"), (4, "Other"), (5, "Else")])
    groups = franchises_from_groups([("Saga", [1, 2, 3])], catalog, catalog.items)
    return Ranker(catalog, catalog.items, groups.franchise_of, groups.start_order)


def ids_of(recommendations) -> list[int]:
    return [r.anime_id for r in recommendations]


def test_collapse_shows_earliest_unseen(saga_ranker: Ranker) -> None:
    scores = np.array([[0.1, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)
    options = RankingOptions(n=3, collapse_franchises=True)

    lists = saga_ranker.rank(scores, options)

    assert ids_of(lists[0]) == [1, 4, 5]
    assert lists[0][0].score == pytest.approx(0.9)


def test_collapse_skips_seen_entries(saga_ranker: Ranker) -> None:
    scores = np.array([[0.1, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], dtype=np.float32))
    options = RankingOptions(n=3, collapse_franchises=True)

    lists = saga_ranker.rank(scores, options, seen=seen)

    assert ids_of(lists[0]) == [2, 4, 5]


def test_collapse_shows_unscored_first_entry(saga_ranker: Ranker) -> None:
    # A model that cannot score the first season (-inf) still leads the person to it.
    scores = np.array([[-np.inf, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)
    options = RankingOptions(n=2, collapse_franchises=True)

    lists = saga_ranker.rank(scores, options)

    assert ids_of(lists[0]) == [1, 4]


def test_collapse_off_keeps_every_entry(saga_ranker: Ranker) -> None:
    scores = np.array([[0.1, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)

    lists = saga_ranker.rank(scores, RankingOptions(n=3))

    assert ids_of(lists[0]) == [3, 2, 4]


def test_collapse_drops_franchise_with_denied_start(saga_ranker: Ranker) -> None:
    """Not interested in the first season means not interested in the franchise."""
    scores = np.array([[0.1, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)
    options = RankingOptions(n=3, collapse_franchises=True, deny=(1,))

    lists = saga_ranker.rank(scores, options)

    assert ids_of(lists[0]) == [4, 5]


def mixed_saga_ranker() -> Ranker:
    # Saga's first season is tagged Horror; its movie and "Other" are movies.
    catalog = Catalog(
        catalog_frame(
            anime_id=[1, 2, 3, 4, 5],
            title=["Saga", "Saga 2nd Season", "Saga Movie", "Other", "Else"],
            genres=[("Horror", "Mystery"), ("Mystery",), ("Mystery",), ("Mystery",), ("Mystery",)],
            type=["TV", "TV", "Movie", "Movie", "TV"],
            episodes=[12, 12, 1, 1, 12],
            score=[None] * 5,
            members=[None] * 5,
        )
    )
    groups = franchises_from_groups([("Saga", [1, 2, 3])], catalog, catalog.items)
    return Ranker(catalog, catalog.items, groups.franchise_of, groups.start_order)


def test_collapse_drops_franchise_with_filtered_start() -> None:
    """A genre filter that excludes the first season does not surface the second."""
    scores = np.array([[0.1, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)
    options = RankingOptions(n=3, collapse_franchises=True, exclude_genres=("Horror",))

    lists = mixed_saga_ranker().rank(scores, options)

    assert ids_of(lists[0]) == [4, 5]


def test_collapse_starts_at_requested_type() -> None:
    """Asking for movies starts a franchise at its first unseen movie."""
    scores = np.array([[0.1, 0.5, 0.9, 0.3, 0.2]], dtype=np.float32)
    options = RankingOptions(n=3, collapse_franchises=True, types=("Movie",))

    lists = mixed_saga_ranker().rank(scores, options)

    assert ids_of(lists[0]) == [3, 4]


def test_collapse_fills_list_past_block(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)
    ranker = Ranker(catalog_2016, catalog_2016.items, franchises.franchise_of, franchises.start_order)
    rng = np.random.default_rng(0)
    scores = rng.random((3, len(catalog_2016.items))).astype(np.float32)

    lists = ranker.rank(scores, RankingOptions(n=200, collapse_franchises=True))

    for recommendations in lists:
        assert len(recommendations) == 200
        groups = [franchises.franchise_of[r.item_idx] for r in recommendations]
        grouped = [g for g in groups if g >= 0]
        assert len(grouped) == len(set(grouped))


def test_prefer_watched_moves_unwatched_entries_last() -> None:
    # Group 0 is items 0..2 in start order 0, 1, 2; item 0 has no viewer.
    order = prefer_watched(np.array([0, 1, 2, 0]), np.array([False, True, True, True]))

    assert order[1] < order[2] < order[0]
    assert order[3] == 0


def test_collapse_skips_unwatched_reairing(catalog_2016: Catalog) -> None:
    """FLCL's TV re-airing (no viewers in the sample) does not replace the original OVA."""
    franchises = franchises_from_groups([("FLCL", [227, 33010])], catalog_2016, catalog_2016.items)
    items = catalog_2016.items
    watched = np.ones(len(items), dtype=bool)
    watched[items.index(33010)] = False
    ranker = Ranker(catalog_2016, items, franchises.franchise_of, prefer_watched(franchises.start_order, watched))
    scores = np.full((1, len(items)), -np.inf, dtype=np.float32)
    scores[0, items.index(227)] = 1.0

    listed = ranker.rank(scores, RankingOptions(n=1, collapse_franchises=True))[0]

    assert [r.anime_id for r in listed] == [227]


def test_start_order_film_after_series() -> None:
    catalog = small_catalog(
        [(10, "Saga Movie"), (20, "Saga"), (30, "Saga: Recap")],
        extra={"aired_start": ["2007-09-15", "2007-10-04", "2008-01-01"]},
    )
    catalog.frame.loc[catalog.frame["anime_id"] == 10, "type"] = "Movie"
    catalog.frame.loc[catalog.frame["anime_id"] == 30, "type"] = "Special"

    franchises = franchises_from_titles(catalog, catalog.items)

    # The film aired first, but the series is where a person starts.
    assert franchises.n_groups == 1
    assert franchises.start_order.tolist() == [1, 0, 2]


def test_start_order_clannad_series_before_film(catalog_2016: Catalog) -> None:
    franchises = franchises_from_titles(catalog_2016, catalog_2016.items)

    members = franchises.members(franchises.group_of(2167))
    ordered = [int(franchises.items.ids[m]) for m in members]

    # Clannad (TV, 2167) comes before Clannad Movie (1723), which has the smaller MAL id.
    assert 1723 in ordered
    assert ordered[0] == 2167
