"""Reasons for recommendations: which of the person's titles led to each one, and what it
shares with them.

Up to three short reasons per recommendation, strongest first:

1. The person's titles that contributed most to the recommendation ("because you liked
   Cowboy Bebop and Trigun"). For a content or hybrid model the contribution of a history
   title is its profile weight times its feature similarity to the recommendation; for any
   other model it is the title's weight times the model's own item-item similarity.
2. For a content or hybrid model, the feature blocks the recommendation shares most with
   the titles named in the first reason ("shares genres: Action, Space", "same studio:
   Sunrise"). For other models, the
   recommendation's genres that are most common among the person's liked titles.

A title counts as liked when it is unrated, or rated at or above the person's mean rating.
The similarities of the whole list to the liked titles come from one
`item_similarity_block` call (recommendations × liked titles), and the titles to name are
chosen for every recommendation at once, so the cost grows little with the list length.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from animerec.models.base import Recommender
from animerec.ranking import Recommendation

if TYPE_CHECKING:
    from animerec.service import RecommenderService

MAX_REASONS = 3
# History titles named in the "because you liked" reason.
MAX_TITLES = 2
SECOND_TITLE_SHARE = 0.5
# Feature labels named per "shares ..." reason.
MAX_LABELS = 3

# Blocks that most anime share with many others.
_BROAD_BLOCKS = frozenset({"type", "length", "era", "age rating"})

# The phrase that introduces each feature block in a reason.
_BLOCK_PHRASES = {
    "genres": "shares genres",
    "type": "same type",
    "length": "similar length",
    "studio": "same studio",
    "source": "same source",
    "era": "same era",
    "age rating": "same age rating",
    "synopsis words": "similar story",
    "site popularity": "similar site popularity",
}


def liked_weights(history_ratings: np.ndarray, rating_scale: tuple[float, float]) -> np.ndarray:
    """Return each history title's weight in reasons.

    A rated title weighs what it weighs in the content model's profile, 1 + (rating − the
    person's mean) / (scale width / 4) clipped to [0, 3], so a favourite outweighs a title
    merely liked. A title rated below the middle of the scale weighs 0 (it is not named as
    liked, even by a person whose ratings are all low). An unrated title weighs 1.
    """
    ratings = np.asarray(history_ratings, dtype=np.float64)
    weights = np.ones(ratings.shape, dtype=np.float64)
    rated = ~np.isnan(ratings)
    if rated.any():
        low, high = rating_scale
        spread = max((high - low) / 4.0, 1e-6)
        mean = float(ratings[rated].mean())
        weights[rated] = np.clip(1.0 + (ratings[rated] - mean) / spread, 0.0, 3.0)
        weights[rated & (ratings < (low + high) / 2.0)] = 0.0
    return weights


def explain(
    model: Recommender,
    title_of: Callable[[int], str],
    history_idx: np.ndarray,
    history_ratings: np.ndarray,
    recommendations: Sequence[Recommendation],
    genres_of: Callable[[int], Sequence[str]] | None = None,
    unrated_liked: bool = False,
) -> list[list[str]]:
    """Return up to `MAX_REASONS` reasons for each recommendation.

    `title_of` and `genres_of` take a model item position; `history_idx` are model item
    positions of the person's titles, `history_ratings` their ratings (NaN where unrated).
    A reason names an unrated title as "liked" when `unrated_liked` is true (the person
    named it in a request), else as "watched".
    """
    history_idx = np.asarray(history_idx, dtype=np.int64)
    history_ratings = np.asarray(history_ratings, dtype=np.float32)
    if not recommendations:
        return []
    weights = liked_weights(history_ratings, getattr(model, "rating_scale_", (1.0, 10.0)))
    liked = weights > 0
    liked_idx = history_idx[liked]
    liked_weight = weights[liked]
    liked_rated = ~np.isnan(history_ratings[liked])

    content = _content_model(model)
    genre_counts = _genre_counts(liked_idx, genres_of) if content is None and genres_of else None
    # The liked titles' feature rows, sliced once for the whole list.
    view = content.history_view(liked_idx, liked_weight) if content is not None and liked_idx.size else None

    items = np.fromiter((rec.item_idx for rec in recommendations), dtype=np.int64, count=len(recommendations))
    top_titles = (
        _top_titles(model, content, view, liked_idx, liked_weight, items)
        if liked_idx.size
        else [[] for _ in recommendations]
    )

    reasons: list[list[str]] = []
    for rec, titles in zip(recommendations, top_titles):
        found: list[str] = []
        if titles:
            verb = "liked" if unrated_liked or liked_rated[titles].any() else "watched"
            names = " and ".join(title_of(int(liked_idx[t])) for t in titles)
            found.append(f"because you {verb} {names}")
        if view is not None:
            # Features shared with the named titles, else with the whole liked history.
            rows = np.asarray(titles) if titles else None
            shared = view.shared_features(rec.item_idx, n=MAX_LABELS, rows=rows)
            # Broad blocks (type, length, era) carry little information ("same type: TV" fits
            # most of a list), so they come after the others and only join a list of fewer
            # than two reasons.
            shared.sort(key=lambda entry: entry[0] in _BROAD_BLOCKS)
            for label, values in shared:
                if label in _BROAD_BLOCKS and len(found) >= 2:
                    continue
                phrase = _BLOCK_PHRASES.get(label, f"shares {label}")
                found.append(f"{phrase}: {', '.join(values)}")
        elif genre_counts and genres_of is not None:
            shared = sorted(
                (g for g in genres_of(rec.item_idx) if genre_counts.get(g)),
                key=lambda g: (-genre_counts[g], g),
            )[:MAX_LABELS]
            if shared:
                found.append(f"shares genres: {', '.join(shared)}")
        reasons.append(found[:MAX_REASONS])
    return reasons


def service_reasons(
    service: "RecommenderService",
    history_idx: np.ndarray,
    history_ratings: np.ndarray,
    recommendations: Sequence[Recommendation],
    unrated_liked: bool = False,
) -> list[list[str]]:
    """Build the reasons `RecommenderService` attaches: `explain` with the service's titles
    and genres. Popularity gets none, because it ignores the history."""
    model = service.model
    if model is None or not len(history_idx):
        return [[] for _ in recommendations]
    if not getattr(model, "has_item_similarity", True) and _content_model(model) is None:
        # Popularity ignores the history, so no reason drawn from the history is true.
        return [[] for _ in recommendations]

    def genres_of(item_idx: int) -> Sequence[str]:
        genres = service._genres[item_idx]
        return genres if isinstance(genres, tuple) else ()

    return explain(
        model,
        service.title_of_item,
        history_idx,
        history_ratings,
        recommendations,
        genres_of,
        unrated_liked=unrated_liked,
    )


def _content_model(model: Recommender):
    """Return the content model inside `model` (itself or a hybrid's component), or None."""
    from animerec.models.content import ContentRecommender

    if isinstance(model, ContentRecommender):
        return model
    component = getattr(model, "content_", None)
    return component if isinstance(component, ContentRecommender) else None


def _top_titles(
    model,
    content,
    view,
    liked_idx: np.ndarray,
    liked_weight: np.ndarray,
    items: np.ndarray,
) -> list[list[int]]:
    """Return, for each item, positions (into liked_idx) of the history titles that
    contribute most to it."""
    contributions = _contributions(model, content, view, liked_idx, liked_weight, items)
    if contributions is None:
        return [[] for _ in items]
    # Each row from the largest contribution down, ties broken by the smaller item position.
    order = np.lexsort((np.broadcast_to(liked_idx, contributions.shape), -contributions), axis=-1)
    top = order[:, :MAX_TITLES]
    values = np.take_along_axis(contributions, top, axis=-1)
    # A further title is named only when it contributes at least half as much as the first.
    named = (values > 0) & (values >= SECOND_TITLE_SHARE * values[:, :1])
    return [[int(p) for p in row[keep]] for row, keep in zip(top, named)]


def _contributions(
    model,
    content,
    view,
    liked_idx: np.ndarray,
    liked_weight: np.ndarray,
    items: np.ndarray,
) -> np.ndarray | None:
    """Return how much each liked title adds to each item (items × liked titles, float64),
    or None when the model has no item similarity."""
    if view is not None and content is model:
        return np.stack([view.contributions(int(item)) for item in items]).astype(np.float64)
    if view is not None and hasattr(model, "combine_similarities"):
        # A hybrid: its CF part as one block, its content part from the view.
        cf = model.cf_.item_similarity_block(items, liked_idx)
        content_part = np.stack([view.similarities(int(item)) for item in items])
        similarity = model.combine_similarities(cf, content_part).astype(np.float64)
        return similarity * liked_weight
    if getattr(model, "has_item_similarity", True):
        similarity = model.item_similarity_block(items, liked_idx).astype(np.float64)
        return np.where(np.isfinite(similarity), similarity, 0.0) * liked_weight
    return None


def _genre_counts(liked_idx: np.ndarray, genres_of: Callable[[int], Sequence[str]]) -> Counter:
    counts: Counter = Counter()
    for item in liked_idx:
        counts.update(genres_of(int(item)))
    return counts
