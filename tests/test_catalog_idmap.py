"""IdMap, Catalog title lookup and Interactions, on small arrays and the real 2016 catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hypothesis import given, settings
from hypothesis import strategies as st

from animerec.data import IdMap, Interactions
from animerec.data.interactions import histories_to_interactions
from animerec.data.loaders.kaggle2016 import load_kaggle_2016
from animerec.errors import ConfigError, NotFoundError, UnknownIdError

# --- IdMap ------------------------------------------------------------------------------


def test_idmap_sorted_unique():
    ids = IdMap([30, 5, 30, 1], kind="anime_id")

    assert ids.ids.tolist() == [1, 5, 30]
    assert len(ids) == 3
    assert not ids.ids.flags.writeable


def test_idmap_round_trip():
    ids = IdMap([30, 5, 1], kind="anime_id")

    assert ids.to_idx([30, 1]).tolist() == [2, 0]
    assert ids.to_ids(np.array([2, 0])).tolist() == [30, 1]
    assert ids.to_idx([30]).dtype == np.int32
    assert ids.index(5) == 1


def test_idmap_unknown_policies():
    ids = IdMap([1, 5, 30], kind="anime_id")

    assert ids.to_idx([5, 7, 30], unknown="mask").tolist() == [1, -1, 2]
    assert ids.to_idx([5, 7, 30], unknown="drop").tolist() == [1, 2]
    with pytest.raises(UnknownIdError, match="unknown anime_id 7"):
        ids.to_idx(np.array([5, 7]))
    with pytest.raises(UnknownIdError, match="unknown anime_id 7"):
        ids.index(7)
    with pytest.raises(ConfigError, match="raise, drop or mask"):
        ids.to_idx([5], unknown="ignore")


def test_idmap_rejects_non_integral_ids():
    ids = IdMap([1, 5, 30], kind="anime_id")

    assert 1.5 not in ids
    assert 5.0 in ids
    assert 2**70 not in ids
    assert None not in ids
    assert ids.to_idx([1.5, 5.0, 2**70], unknown="mask").tolist() == [-1, 1, -1]
    assert ids.to_idx(np.array([1.7, 30.0]), unknown="mask").tolist() == [-1, 2]
    with pytest.raises(UnknownIdError, match="1.5"):
        ids.index(1.5)
    with pytest.raises(UnknownIdError, match=str(2**70)):
        ids.to_idx([5, 2**70])


@pytest.mark.parametrize("ids", [[5, 9, 100], [1, 10**15]], ids=["dense", "sparse"])
def test_idmap_lookup_paths_agree(ids):
    # Dense ids use a lookup table and sparse ids a binary search, and both must agree.
    id_map = IdMap(ids, kind="anime_id")
    queries = [-(2**63), 2**63 - 1, ids[0] - 1, ids[0], ids[-1], ids[-1] + 1, 7]

    expected = [ids.index(query) if query in ids else -1 for query in queries]

    assert id_map.to_idx(queries, unknown="mask").tolist() == expected
    assert id_map.to_idx(np.array(queries, dtype=np.int64), unknown="mask").tolist() == expected


def test_idmap_empty():
    ids = IdMap([], kind="user_id")

    assert len(ids) == 0
    assert 3 not in ids
    assert ids.to_idx([3], unknown="mask").tolist() == [-1]
    assert ids.to_idx([3], unknown="drop").tolist() == []


def test_idmap_position_out_of_range():
    ids = IdMap([1, 5], kind="anime_id")

    with pytest.raises(ConfigError, match="out of range"):
        ids.to_ids([2])


# --- Interactions -----------------------------------------------------------------------


def test_from_arrays_rejects_duplicates():
    items = IdMap([1, 2], kind="anime_id")

    with pytest.raises(ConfigError, match="1 rows repeat"):
        Interactions.from_arrays(np.array([7, 7]), np.array([2, 2]), np.array([3.0, 4.0]), items=items)


def test_history_known_values():
    items = IdMap([10, 20, 30], kind="anime_id")
    interactions = Interactions.from_arrays(
        np.array([1, 1, 1, 2]),
        np.array([30, 10, 20, 20]),
        np.array([np.nan, 8.0, 6.0, np.nan]),
        items=items,
    )

    item_idx, rating = interactions.history(0)

    assert item_idx.tolist() == [0, 1, 2]
    assert rating.tolist()[:2] == [8.0, 6.0]
    assert np.isnan(rating[2])
    assert np.isnan(interactions.history(1)[1]).all()


def test_fold_in_known_values():
    items = IdMap([10, 20, 30], kind="anime_id")

    folded = histories_to_interactions(
        [[(30, 9.0), (10, None), (30, 7.0)], [], [(20, 4.0)]], items, weights=[[1.0, 0.5, 0.75], [], [-0.5]]
    )

    assert folded.user_items.toarray().tolist() == [[0.5, 0.0, 0.75], [0.0, 0.0, 0.0], [0.0, -0.5, 0.0]]
    assert folded.ratings.toarray().tolist() == [[0.0, 0.0, 7.0], [0.0, 0.0, 0.0], [0.0, 4.0, 0.0]]
    assert folded.users.ids.tolist() == [0, 1, 2]


_fold_in_entry = st.tuples(
    st.sampled_from([3, 10, 20, 30, 41]),
    st.one_of(st.none(), st.integers(1, 10).map(float)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_fold_in_entry, max_size=8), min_size=1, max_size=5))
def test_fold_in_matches_from_arrays(histories):
    """Folded histories equal the general builder's result, the later of repeated entries winning."""
    items = IdMap([3, 10, 20, 30, 41], kind="anime_id")
    rows, anime, ratings = [], [], []
    for person, history in enumerate(histories):
        last = {anime_id: rating for anime_id, rating in history}
        for anime_id, rating in last.items():
            rows.append(person)
            anime.append(anime_id)
            ratings.append(np.nan if rating is None else rating)
    expected = Interactions.from_arrays(
        np.array(rows, dtype=np.int64), np.array(anime, dtype=np.int64), np.array(ratings, dtype=np.float32),
        users=IdMap(range(len(histories)), kind="person"), items=items,
    )

    folded = histories_to_interactions(histories, items)

    assert (folded.user_items != expected.user_items).nnz == 0
    assert (folded.ratings != expected.ratings).nnz == 0
    assert folded.user_items.has_sorted_indices
    assert np.all(np.diff(folded.user_items.indptr) >= 0)


def test_fold_in_rejects_unknown_anime():
    items = IdMap([10, 20], kind="anime_id")

    with pytest.raises(UnknownIdError, match="99"):
        histories_to_interactions([[(10, None), (99, 5.0)]], items)


def test_history_ignores_rating_outside_watched():
    items = IdMap([10, 20, 30], kind="anime_id")
    users = IdMap([1], kind="user_id")
    watched = sp.csr_matrix(np.array([[1.0, 0.0, 1.0]], dtype=np.float32))
    ratings = sp.csr_matrix(np.array([[0.0, 9.0, 4.0]], dtype=np.float32))
    interactions = Interactions(users, items, watched, ratings)

    item_idx, rating = interactions.history(0)

    assert item_idx.tolist() == [0, 2]
    assert np.isnan(rating[0])
    assert rating[1] == 4.0


# --- the real catalogue -----------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data):
    directory = shared_data / "anime-2016"
    if not (directory / "anime.csv").is_file():
        pytest.skip(f"{directory} has no anime.csv")
    dataset, _ = load_kaggle_2016(directory)
    return dataset


def test_real_items_map(real):
    items = real.catalog.items

    assert len(items) == 12_294
    assert np.all(np.diff(items.ids) > 0)
    assert items.to_ids(items.to_idx(items.ids)).tolist() == items.ids.tolist()
    assert 28977 in items
    assert 2 not in items


@pytest.mark.parametrize(
    ("text", "anime_id"),
    [
        ("Gintama°", 28977),
        ("gintama°", 28977),
        ("Gintama'", 9969),
        ("GINTAMA&#039;", 9969),
        ("Gintama", 918),
        ("steins;gate", 9253),
        ("steins gate", 9253),
        ("Fullmetal Alchemist Brotherhood", 5114),
        ("re zero kara hajimeru isekai seikatsu", 31240),
        ("  Steins;Gate  ", 9253),
        ("Pokemon Diamond &amp; Pearl", 1565),
        ("Pokemon Diamond & Pearl", 1565),
        ("Les Miserables: Shoujo Cosette", 1695),
        ("Les Misérables: Shoujo Cosette", 1695),
        ("5114", 5114),
        (5114, 5114),
    ],
)
def test_real_resolve(real, text, anime_id):
    assert real.catalog.resolve(text) == anime_id


def test_real_resolve_ambiguous(real):
    with pytest.raises(NotFoundError) as caught:
        real.catalog.resolve("saru kani gassen")

    message = str(caught.value)
    assert "ambiguous" in message
    assert "OVA, id 22399" in message
    assert "Movie, id 30059" in message


def test_real_resolve_punctuation_ambiguous(real):
    """Without punctuation "Gintama!" could be Gintama or Gintama', so both are listed."""
    with pytest.raises(NotFoundError) as caught:
        real.catalog.resolve("Gintama!")

    message = str(caught.value)
    assert "ambiguous" in message
    assert "id 918" in message
    assert "id 9969" in message


def test_real_resolve_every_title_without_punctuation(real):
    """Each title whose punctuation-free form names one anime resolves from that form."""
    from collections import Counter

    from animerec.data.catalog import fold_punctuation, normalize_title

    catalog = real.catalog
    folded = [fold_punctuation(normalize_title(str(t))) for t in catalog.frame["title"]]
    counts = Counter(folded)
    checked = 0
    for anime_id, key in zip(catalog.items.ids.tolist(), folded):
        # A key of digits only reads as an anime id, and an exact title match wins first.
        if counts[key] != 1 or not key or key.isdigit() or key in catalog._title_positions():
            continue
        assert catalog.resolve(key) == anime_id, key
        checked += 1

    assert checked > 1000


def test_real_resolve_typo_lists_closest(real):
    with pytest.raises(NotFoundError) as caught:
        real.catalog.resolve("Fullmetal Alchemist Brotherhod")

    assert "Closest matches" in str(caught.value)
    assert "Fullmetal Alchemist: Brotherhood (id 5114)" in str(caught.value)


def test_real_resolve_unknown_prefix(real):
    with pytest.raises(NotFoundError) as caught:
        real.catalog.resolve("Gintama Zzz")

    assert "Gintama (id 918)" in str(caught.value)


def test_real_resolve_nothing_close(real):
    with pytest.raises(NotFoundError, match="nothing close"):
        real.catalog.resolve("qqqqqqqqqqqqqqqq")


def test_real_resolve_unknown_id(real):
    with pytest.raises(UnknownIdError, match="999999999"):
        real.catalog.resolve(999_999_999)


def test_real_search_order(real):
    found = real.catalog.search("gintama", n=6)

    assert found[0] == 918
    assert len(found) == 6
    assert all("gintama" in real.catalog.title(anime_id).casefold() for anime_id in found)
    members = [real.catalog.row(anime_id)["members"] for anime_id in found[1:]]
    assert members == sorted(members, reverse=True)


def test_real_search_entities_and_case(real):
    assert real.catalog.search("GINTAMA&#039;: ENCHOUSEN", n=1) == [15417]
    assert real.catalog.search("", n=5) == []


def test_real_titles_unknown_id(real):
    assert real.catalog.titles(np.array([28977, 2])) == ["Gintama°", "anime 2"]


def test_real_history_matches_file(real, shared_data):
    rows = pd.read_csv(shared_data / "anime-2016" / "rating.csv", engine="pyarrow")
    user_id = 1_000_065
    expected = rows[rows["user_id"] == user_id].sort_values("anime_id")
    interactions = real.interactions

    item_idx, rating = interactions.history(interactions.users.index(user_id))

    assert interactions.items.to_ids(item_idx).tolist() == expected["anime_id"].tolist()
    expected_rating = expected["rating"].to_numpy(np.float32)
    expected_rating[expected_rating == -1] = np.nan
    assert np.array_equal(rating, expected_rating, equal_nan=True)
