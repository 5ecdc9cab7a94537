"""Metrics against values computed by hand, empty cases, and a few properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from animerec.errors import ConfigError
from animerec.evaluation import metrics as m

LOG2_3 = math.log2(3)
LOG2_5 = math.log2(5)

# Two users over items 0..9. User 0's list hits at ranks 1 and 3; target {1, 3, 7}.
# User 1's list hits at rank 2 only; target {5}.
RECOMMENDED = [[1, 2, 3, 4], [6, 5, 0, 9]]
TARGET = [{1, 3, 7}, {5}]


def test_precision_hand_values():
    values = m.precision_at_k(RECOMMENDED, TARGET, 4)
    assert values[0] == pytest.approx(2 / 4)
    assert values[1] == pytest.approx(1 / 4)


def test_recall_hand_values():
    values = m.recall_at_k(RECOMMENDED, TARGET, 4)
    assert values[0] == pytest.approx(2 / 3)
    assert values[1] == pytest.approx(1.0)


def test_recall_denominator_is_full_target():
    # 5 relevant items, k = 2, both hits: 2 / 5, not 2 / min(2, 5).
    values = m.recall_at_k([[0, 1]], [{0, 1, 2, 3, 4}], 2)
    assert values[0] == pytest.approx(0.4)


def test_ndcg_hand_values():
    values = m.ndcg_at_k(RECOMMENDED, TARGET, 4)
    # User 0: DCG = 1/log2(2) + 1/log2(4); IDCG (3 relevant) = 1 + 1/log2(3) + 1/log2(4).
    expected_0 = (1 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)
    # User 1: DCG = 1/log2(3); IDCG (1 relevant) = 1.
    expected_1 = 1 / LOG2_3
    assert values[0] == pytest.approx(expected_0)
    assert values[1] == pytest.approx(expected_1)


def test_ndcg_ideal_capped_at_k():
    # 4 relevant, k = 2, both slots hit: the ideal list has only 2 slots, so NDCG = 1.
    values = m.ndcg_at_k([[0, 1]], [{0, 1, 2, 3}], 2)
    assert values[0] == pytest.approx(1.0)


def test_average_precision_hand_values():
    values = m.average_precision_at_k(RECOMMENDED, TARGET, 4)
    # User 0: hits at 1 (P@1 = 1) and 3 (P@3 = 2/3); divide by min(4, 3) = 3.
    assert values[0] == pytest.approx((1 + 2 / 3) / 3)
    # User 1: hit at 2 (P@2 = 1/2); divide by min(4, 1) = 1.
    assert values[1] == pytest.approx(0.5)


def test_hit_rate_hand_values():
    values = m.hit_rate_at_k([[1, 2], [6, 0]], TARGET, 2)
    assert values.tolist() == [1.0, 0.0]


def test_reciprocal_rank_hand_values():
    values = m.reciprocal_rank_at_k([[2, 4, 3], [6, 5, 0], [0, 2, 4]], [{1, 3, 7}, {5}, {9}], 3)
    assert values[0] == pytest.approx(1 / 3)
    assert values[1] == pytest.approx(1 / 2)
    assert values[2] == 0.0


def test_only_first_k_items_count():
    # The hit at rank 3 is outside k = 2.
    assert m.precision_at_k([[0, 1, 7]], [{7}], 2)[0] == 0.0
    assert m.recall_at_k([[0, 1, 7]], [{7}], 3)[0] == 1.0


@pytest.mark.parametrize(
    "metric",
    [
        m.precision_at_k,
        m.recall_at_k,
        m.ndcg_at_k,
        m.average_precision_at_k,
        m.hit_rate_at_k,
        m.reciprocal_rank_at_k,
    ],
)
def test_empty_target_is_undefined(metric):
    values = metric([[1, 2, 3]], [set()], 3)
    assert np.isnan(values[0])


@pytest.mark.parametrize(
    "metric",
    [
        m.precision_at_k,
        m.recall_at_k,
        m.ndcg_at_k,
        m.average_precision_at_k,
        m.hit_rate_at_k,
        m.reciprocal_rank_at_k,
    ],
)
def test_empty_list_scores_zero(metric):
    values = metric([[]], [{1, 2}], 3)
    assert values[0] == 0.0


def test_short_list_precision_keeps_k_denominator():
    values = m.precision_at_k([[4]], [{4}], 5)
    assert values[0] == pytest.approx(1 / 5)


def test_mean_skips_undefined_users():
    assert m.mean(np.array([1.0, np.nan, 0.0])) == pytest.approx(0.5)
    assert math.isnan(m.mean(np.array([np.nan])))
    assert math.isnan(m.mean(np.array([])))


def test_sparse_target_matches_sets():
    target = sp.csr_matrix(
        (np.ones(4, dtype=np.float32), ([0, 0, 0, 1], [1, 3, 7, 5])), shape=(2, 10)
    )
    padded = m.as_padded(RECOMMENDED, 4)
    from_sparse = m.ndcg_at_k(padded, target, 4)
    from_sets = m.ndcg_at_k(RECOMMENDED, TARGET, 4)
    np.testing.assert_allclose(from_sparse, from_sets)


def test_sparse_target_ignores_padding():
    target = sp.csr_matrix(
        (np.ones(1, dtype=np.float32), ([0], [0])), shape=(1, 3)
    )
    hits, n_relevant = m.relevance(np.array([[-1, 0, -1]]), target, 3)
    assert hits.tolist() == [[False, True, False]]
    assert n_relevant.tolist() == [1]


def test_mismatched_user_counts_raise():
    with pytest.raises(ConfigError):
        m.recall_at_k([[1]], [{1}, {2}], 1)


def test_k_below_one_raises():
    with pytest.raises(ConfigError):
        m.recall_at_k([[1]], [{1}], 0)


# --- beyond accuracy ---------------------------------------------------------------------


def test_coverage_hand_value():
    # Distinct items in the top 2: {0, 1, 2} out of 6.
    assert m.coverage_at_k([[0, 1, 5], [1, 2, 4]], 2, 6) == pytest.approx(0.5)


def test_coverage_empty_lists():
    assert m.coverage_at_k([[], []], 3, 4) == 0.0
    assert m.coverage_at_k(np.zeros((0, 3), dtype=np.int64), 3, 4) == 0.0


def test_user_coverage_hand_value():
    assert m.user_coverage_at_k([[1, 2], [], [3]], 2) == pytest.approx(2 / 3)
    assert math.isnan(m.user_coverage_at_k(np.zeros((0, 2), dtype=np.int64), 2))


def test_gini_hand_value():
    # Counts over 4 items: item 0 three times, item 1 once, items 2 and 3 never.
    # Sorted: 0, 0, 1, 3; n = 4, sum = 4.
    # G = ((2-4-1)*0 + (4-4-1)*0 + (6-4-1)*1 + (8-4-1)*3) / (4*4) = (1 + 9) / 16.
    value = m.gini_at_k([[0, 1], [0], [0]], 2, 4)
    assert value == pytest.approx(10 / 16)


def test_gini_counts_only_candidates():
    # Items 2 and 3 are not candidates: counts over items 0, 1 are 3 and 1.
    # Sorted 1, 3; n = 2, sum = 4: G = ((2-2-1)*1 + (4-2-1)*3) / (2*4) = 2 / 8.
    candidates = np.array([True, True, False, False])
    value = m.gini_at_k([[0, 1], [0], [0]], 2, 4, candidates)
    assert value == pytest.approx(2 / 8)


def test_gini_equal_counts_is_zero():
    assert m.gini_at_k([[0, 1], [2, 3]], 2, 4) == pytest.approx(0.0)


def test_gini_no_recommendations_is_undefined():
    assert math.isnan(m.gini_at_k([[], []], 2, 4))


def test_novelty_hand_value():
    counts = np.array([8, 2, 0, 4])
    # n = 8 users: -log2(8/8) = 0, -log2(2/8) = 2, -log2(1/8) = 3 (0 counts as 1).
    values = m.novelty_at_k([[0, 1], [2], []], 2, counts, 8)
    assert values[0] == pytest.approx(1.0)
    assert values[1] == pytest.approx(3.0)
    assert np.isnan(values[2])


def test_mean_popularity_hand_value():
    counts = np.array([8, 2, 0, 4])
    values = m.mean_popularity_at_k([[0, 3], []], 2, counts, 8)
    assert values[0] == pytest.approx((1.0 + 0.5) / 2)
    assert np.isnan(values[1])


def test_intra_list_diversity_hand_value():
    # Items: 0 {A, B}, 1 {B, C}, 2 {A, B}, 3 no genre, 4 no genre.
    genres = np.array(
        [[1, 1, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32
    )
    values = m.intra_list_diversity_at_k([[0, 1, 2], [3, 4], [3, 0], [1], []], 3, genres)
    # List 0 pairs: (0,1) J = 1/3 -> 2/3; (0,2) J = 1 -> 0; (1,2) J = 1/3 -> 2/3.
    assert values[0] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    # Two items without genres are identical.
    assert values[1] == pytest.approx(0.0)
    # An item without genres and one with genres are at distance 1.
    assert values[2] == pytest.approx(1.0)
    assert np.isnan(values[3])
    assert np.isnan(values[4])


def test_intra_list_diversity_accepts_sparse_genres():
    genres = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.float32))
    values = m.intra_list_diversity_at_k([[0, 1]], 2, genres)
    assert values[0] == pytest.approx(1.0)


# --- rating prediction -------------------------------------------------------------------


def test_rmse_and_mae_hand_values():
    predicted = np.array([3.0, 5.0, 8.0])
    actual = np.array([4.0, 5.0, 6.0])
    # Errors -1, 0, 2: squared 1, 0, 4.
    assert m.rmse(predicted, actual) == pytest.approx(math.sqrt(5 / 3))
    assert m.mae(predicted, actual) == pytest.approx(1.0)


def test_rmse_and_mae_empty_are_undefined():
    assert math.isnan(m.rmse(np.array([]), np.array([])))
    assert math.isnan(m.mae(np.array([]), np.array([])))


def test_rating_metrics_reject_nan_predictions():
    with pytest.raises(ConfigError):
        m.rmse(np.array([np.nan]), np.array([1.0]))


def test_rating_metrics_reject_length_mismatch():
    with pytest.raises(ConfigError):
        m.mae(np.array([1.0, 2.0]), np.array([1.0]))


# --- bootstrap ---------------------------------------------------------------------------


def test_bootstrap_constant_values():
    low, high = m.bootstrap_mean_ci(np.full(50, 0.25), np.random.default_rng(0), 200)
    assert low == pytest.approx(0.25)
    assert high == pytest.approx(0.25)


def test_bootstrap_is_seeded_and_brackets_mean():
    values = np.random.default_rng(5).random(300)
    first = m.bootstrap_mean_ci(values, np.random.default_rng(1), 500)
    second = m.bootstrap_mean_ci(values, np.random.default_rng(1), 500)
    assert first == second
    assert first[0] < values.mean() < first[1]


def test_bootstrap_without_values_is_undefined():
    low, high = m.bootstrap_mean_ci(np.array([np.nan]), np.random.default_rng(0), 10)
    assert math.isnan(low) and math.isnan(high)


# --- properties --------------------------------------------------------------------------

lists_and_targets = st.integers(min_value=1, max_value=6).flatmap(
    lambda n_users: st.tuples(
        st.lists(
            st.lists(st.integers(0, 19), max_size=12, unique=True),
            min_size=n_users,
            max_size=n_users,
        ),
        st.lists(
            st.sets(st.integers(0, 19), max_size=10), min_size=n_users, max_size=n_users
        ),
        st.integers(min_value=1, max_value=12),
    )
)


@settings(max_examples=150, deadline=None)
@given(lists_and_targets)
def test_per_user_metrics_within_unit_interval(case):
    recommended, target, k = case
    for metric in (
        m.precision_at_k,
        m.recall_at_k,
        m.ndcg_at_k,
        m.average_precision_at_k,
        m.hit_rate_at_k,
        m.reciprocal_rank_at_k,
    ):
        values = metric(recommended, target, k)
        defined = values[~np.isnan(values)]
        assert np.all(defined >= 0.0), metric.__name__
        assert np.all(defined <= 1.0 + 1e-12), metric.__name__
        assert np.array_equal(np.isnan(values), [len(t) == 0 for t in target]), metric.__name__


@settings(max_examples=150, deadline=None)
@given(st.sets(st.integers(0, 50), min_size=1, max_size=15), st.integers(1, 20))
def test_perfect_list_scores_one(relevant, k):
    # A list that starts with every relevant item (as many as fit in k).
    perfect = sorted(relevant) + [100, 101, 102]
    assert m.ndcg_at_k([perfect], [relevant], k)[0] == pytest.approx(1.0)
    assert m.average_precision_at_k([perfect], [relevant], k)[0] == pytest.approx(1.0)
    assert m.hit_rate_at_k([perfect], [relevant], k)[0] == 1.0
    assert m.precision_at_k([perfect], [relevant], k)[0] == pytest.approx(
        min(k, len(relevant)) / k
    )


@settings(max_examples=100, deadline=None)
@given(lists_and_targets)
def test_sparse_and_set_targets_agree(case):
    recommended, target, k = case
    rows = [row for row, items in enumerate(target) for _ in items]
    cols = [item for items in target for item in sorted(items)]
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(target), 20)
    )
    padded = m.as_padded(recommended, k)
    np.testing.assert_allclose(
        m.recall_at_k(padded, matrix, k), m.recall_at_k(recommended, target, k)
    )
    np.testing.assert_allclose(
        m.ndcg_at_k(padded, matrix, k), m.ndcg_at_k(recommended, target, k)
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=40))
def test_gini_within_unit_interval(counts):
    value = m.gini(np.array(counts))
    if sum(counts) == 0:
        assert math.isnan(value)
    else:
        assert 0.0 <= value < 1.0 + 1e-12


def test_bootstrap_statistic_centred_on_estimate():
    lists = np.array([[0, 1], [2, 3], [4, 5], [0, 2]])

    def coverage(rows: np.ndarray) -> float:
        return m.coverage_at_k(lists[rows], 2, 6)

    low, high = m.bootstrap_statistic_ci(coverage, 4, np.random.default_rng(0), 300)
    assert low < coverage(np.arange(4)) < high
    assert coverage(np.arange(4)) - low == pytest.approx(high - coverage(np.arange(4)))
