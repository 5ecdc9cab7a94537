"""The shared ranking step: top-n with ties by anime_id, filters, seen and adult exclusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from animerec.data.catalog import Catalog
from animerec.errors import ConfigError
from animerec.ranking import Ranker, RankingOptions, top_n

GENRES = ("Action", "Comedy", "Drama", "Hentai")
TYPES = ("TV", "Movie", "OVA")


def make_catalog(anime_ids, genres, types) -> Catalog:
    frame = pd.DataFrame(
        {
            "anime_id": list(anime_ids),
            "title": [f"Anime {a}" for a in anime_ids],
            "genres": list(genres),
            "type": list(types),
            "episodes": pd.array([1] * len(anime_ids), dtype="Int64"),
            "score": [np.nan] * len(anime_ids),
            "members": pd.array([10] * len(anime_ids), dtype="Int64"),
        }
    )
    return Catalog(frame)


@pytest.fixture
def catalog() -> Catalog:
    # Positions 0..5 are anime ids 10, 20, ..., 60.
    return make_catalog(
        [10, 20, 30, 40, 50, 60],
        [("Action",), ("Comedy",), ("Action", "Drama"), ("Hentai",), (), ("Drama",)],
        ["TV", "Movie", "TV", "OVA", None, "Movie"],
    )


def ranked_ids(ranker: Ranker, scores, options: RankingOptions, seen=None) -> list[int]:
    lists = ranker.rank(np.asarray([scores], dtype=np.float32), options, seen=seen)
    return [r.anime_id for r in lists[0]]


# --- top_n ------------------------------------------------------------------------------------


def test_top_n_breaks_ties_by_position() -> None:
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0], dtype=np.float32)

    assert top_n(scores, 2) == [(1, 3.0), (2, 3.0)]
    assert top_n(scores, 4) == [(1, 3.0), (2, 3.0), (4, 3.0), (3, 2.0)]


def test_top_n_skips_non_finite() -> None:
    scores = np.array([np.nan, -np.inf, 0.5, np.inf, -1.0], dtype=np.float32)

    assert top_n(scores, 10) == [(2, 0.5), (4, -1.0)]
    assert top_n(np.full(3, -np.inf), 2) == []
    assert top_n(scores, 0) == []


def test_top_n_tie_at_cut() -> None:
    # The 3rd place is a four-way tie: the smallest positions win it.
    scores = np.array([0.0, 5.0, 1.0, 1.0, 9.0, 1.0, 1.0], dtype=np.float32)

    assert [i for i, _ in top_n(scores, 3)] == [4, 1, 2]


# --- filters ----------------------------------------------------------------------------------


def test_adult_excluded_by_default(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    scores = [1, 2, 3, 9, 4, 5]

    assert ranked_ids(ranker, scores, RankingOptions(n=6)) == [60, 50, 30, 20, 10]
    assert ranked_ids(ranker, scores, RankingOptions(n=2, include_adult=True)) == [40, 60]


def test_genre_filters(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    scores = [1, 2, 3, 9, 4, 5]

    assert ranked_ids(ranker, scores, RankingOptions(genres=("Action",))) == [30, 10]
    assert ranked_ids(ranker, scores, RankingOptions(genres=("drama", "COMEDY"))) == [60, 30, 20]
    assert ranked_ids(ranker, scores, RankingOptions(exclude_genres=("Drama",))) == [50, 20, 10]
    assert ranked_ids(
        ranker, scores, RankingOptions(genres=("Action",), exclude_genres=("Drama",))
    ) == [10]


def test_type_filters(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    scores = [1, 2, 3, 9, 4, 5]

    assert ranked_ids(ranker, scores, RankingOptions(types=("Movie",))) == [60, 20]
    assert ranked_ids(ranker, scores, RankingOptions(types=("ova",), include_adult=True)) == [40]
    # An anime without a type is kept unless types are restricted.
    assert ranked_ids(ranker, scores, RankingOptions(exclude_types=("TV", "Movie"))) == [50]


def test_allow_and_deny_lists(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    scores = [1, 2, 3, 9, 4, 5]

    assert ranked_ids(ranker, scores, RankingOptions(allow=(10, 20, 999))) == [20, 10]
    assert ranked_ids(ranker, scores, RankingOptions(allow=())) == []
    assert ranked_ids(ranker, scores, RankingOptions(deny=(60, 50, 999))) == [30, 20, 10]
    # The adult filter still applies inside an allow list.
    assert ranked_ids(ranker, scores, RankingOptions(allow=(40, 10))) == [10]


def test_seen_excluded_unless_asked(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    scores = [1, 2, 3, 9, 4, 5]
    seen = sp.csr_matrix(([1.0, 1.0], ([0, 0], [5, 2])), shape=(1, 6))

    assert ranked_ids(ranker, scores, RankingOptions(), seen=seen) == [50, 20, 10]
    assert ranked_ids(ranker, scores, RankingOptions(exclude_seen=False), seen=seen) == [60, 50, 30, 20, 10]


def test_unscorable_items_never_listed(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    scores = [1, -np.inf, 3, 9, -np.inf, 5]

    assert ranked_ids(ranker, scores, RankingOptions(n=10)) == [60, 30, 10]


def test_sequences_given_as_lists(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)
    options = RankingOptions(genres=["Action"], deny=[10], allow=[10, 30, 50], types="TV")

    assert options.genres == ("Action",)
    assert options.types == ("TV",)
    assert ranked_ids(ranker, [1, 2, 3, 9, 4, 5], options) == [30]


def test_invalid_labels_raise(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)

    with pytest.raises(ConfigError, match="Mecha"):
        ranker.candidate_mask(RankingOptions(genres=("Mecha",)))
    with pytest.raises(ConfigError, match="Podcast"):
        ranker.candidate_mask(RankingOptions(exclude_types=("Podcast",)))


@pytest.mark.parametrize("n", [0, -1, 1001])
def test_invalid_n_raises(n: int) -> None:
    with pytest.raises(ConfigError, match="n must be"):
        RankingOptions(n=n)


def test_score_shape_checked(catalog: Catalog) -> None:
    ranker = Ranker(catalog, catalog.items)

    with pytest.raises(ConfigError, match="columns"):
        ranker.rank(np.zeros((1, 4), dtype=np.float32), RankingOptions())
    with pytest.raises(ConfigError, match="seen"):
        ranker.rank(np.zeros((1, 6)), RankingOptions(), seen=sp.csr_matrix((2, 6)))


# --- property: the list is the filtered, unseen top-n in (-score, anime_id) order -----------

N_ITEMS = 12

scores_strategy = st.lists(
    st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0, 2.0, 7.25]), min_size=N_ITEMS, max_size=N_ITEMS
)


@settings(max_examples=200, deadline=None)
@given(
    anime_ids=st.lists(
        st.integers(1, 60_000), min_size=N_ITEMS, max_size=N_ITEMS, unique=True
    ),
    genres=st.lists(
        st.frozensets(st.sampled_from(GENRES), max_size=2), min_size=N_ITEMS, max_size=N_ITEMS
    ),
    types=st.lists(st.sampled_from(TYPES), min_size=N_ITEMS, max_size=N_ITEMS),
    scores=scores_strategy,
    seen_positions=st.frozensets(st.integers(0, N_ITEMS - 1)),
    wanted_genres=st.frozensets(st.sampled_from(GENRES[:3]), max_size=2),
    unwanted_genres=st.frozensets(st.sampled_from(GENRES[:3]), max_size=1),
    wanted_types=st.frozensets(st.sampled_from(TYPES), max_size=2),
    deny_positions=st.frozensets(st.integers(0, N_ITEMS - 1), max_size=3),
    include_adult=st.booleans(),
    n=st.integers(1, N_ITEMS + 2),
)
def test_ranked_list_property(
    anime_ids, genres, types, scores, seen_positions, wanted_genres, unwanted_genres,
    wanted_types, deny_positions, include_adult, n,
) -> None:
    # Every label the options name must exist in the catalogue, as the ranker checks them.
    genres = [tuple(sorted(g)) for g in genres]
    genres[0] = GENRES
    types = list(types)
    types[1:1 + len(TYPES)] = TYPES
    catalog = make_catalog(anime_ids, genres, types)
    by_id = {a: (g, t, s) for a, g, t, s in zip(anime_ids, genres, types, scores)}
    ranker = Ranker(catalog, catalog.items)
    sorted_ids = catalog.items.ids
    row_scores = np.array([by_id[int(a)][2] for a in sorted_ids], dtype=np.float32)
    seen_ids = {int(sorted_ids[p]) for p in seen_positions}
    denied = tuple(int(sorted_ids[p]) for p in deny_positions)
    seen = sp.csr_matrix(
        (np.ones(len(seen_positions)), ([0] * len(seen_positions), sorted(seen_positions))),
        shape=(1, N_ITEMS),
    )
    options = RankingOptions(
        n=n,
        include_adult=include_adult,
        genres=tuple(sorted(wanted_genres)),
        exclude_genres=tuple(sorted(unwanted_genres)),
        types=tuple(sorted(wanted_types)),
        deny=denied,
    )

    listed = ranker.rank(row_scores[None, :], options, seen=seen)[0]

    def eligible(anime_id: int) -> bool:
        item_genres, item_type, score = by_id[anime_id]
        return (
            np.isfinite(score)
            and anime_id not in seen_ids
            and anime_id not in denied
            and (include_adult or "Hentai" not in item_genres)
            and (not wanted_genres or bool(wanted_genres.intersection(item_genres)))
            and not unwanted_genres.intersection(item_genres)
            and (not wanted_types or item_type in wanted_types)
        )

    expected = sorted(
        (a for a in by_id if eligible(a)), key=lambda a: (-by_id[a][2], a)
    )[:n]
    listed_ids = [r.anime_id for r in listed]
    assert not seen_ids.intersection(listed_ids)
    assert not set(denied).intersection(listed_ids)
    assert [(-r.score, r.anime_id) for r in listed] == sorted((-r.score, r.anime_id) for r in listed)
    assert listed_ids == expected
