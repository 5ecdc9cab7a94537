"""Request and response bodies of the HTTP API (pydantic models, also used for /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bounds that keep one request cheap; larger lists are rejected with 422.
MAX_HISTORY = 5000
MAX_TITLE_LENGTH = 300
# Ids are stored as int64; larger numbers cannot name anything.
MAX_ID = 2**62

AnimeRef = int | str


class HistoryEntry(BaseModel):
    """One anime a person watched: an id or a title, and an optional rating."""

    model_config = ConfigDict(extra="forbid")

    anime_id: int | None = Field(None, ge=0, le=MAX_ID)
    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE_LENGTH)
    rating: float | None = Field(None, description="Rating on the data's scale (1–10 for anime); omit for watched, not rated.")

    @model_validator(mode="after")
    def _one_reference(self) -> "HistoryEntry":
        if (self.anime_id is None) == (self.title is None):
            raise ValueError("give exactly one of anime_id or title")
        return self

    @property
    def reference(self) -> AnimeRef:
        return self.anime_id if self.anime_id is not None else str(self.title)


class HistoryRequest(BaseModel):
    """A history to recommend for: `liked` (ids or titles), `history` (with ratings), or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"liked": [1, "Steins;Gate", "Cowboy Bebop"]},
                {"history": [{"anime_id": 1, "rating": 9}, {"title": "Toradora!"}], "exclude": [5114]},
            ]
        },
    )

    liked: list[AnimeRef] = Field(default_factory=list, max_length=MAX_HISTORY)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=MAX_HISTORY)
    # Anime the person does not want to see ("not interested"), ids or titles.
    exclude: list[AnimeRef] = Field(default_factory=list, max_length=MAX_HISTORY)

    @model_validator(mode="after")
    def _not_empty(self) -> "HistoryRequest":
        if not self.liked and not self.history:
            raise ValueError("the history is empty: give at least one anime in liked or history")
        for reference in [*self.liked, *self.exclude]:
            if isinstance(reference, int) and not 0 <= reference <= MAX_ID:
                raise ValueError(f"anime id {reference} is out of range")
            if isinstance(reference, str) and not 0 < len(reference.strip()) <= MAX_TITLE_LENGTH:
                raise ValueError(
                    f"titles must have 1 to {MAX_TITLE_LENGTH} characters, got {len(reference)}"
                )
        return self

    def entries(self) -> list[tuple[AnimeRef, float | None]]:
        liked: list[tuple[AnimeRef, float | None]] = [(ref, None) for ref in self.liked]
        return liked + [(entry.reference, entry.rating) for entry in self.history]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"anime_id": 1, "action": "rate", "rating": 8},
                {"anime_id": 5114, "action": "watched"},
                {"anime_id": 20, "action": "not_interested"},
            ]
        },
    )

    anime_id: int = Field(ge=0, le=MAX_ID)
    action: Literal["rate", "watched", "not_interested"]
    rating: float | None = Field(None, description="Required for action 'rate', absent otherwise.")

    @model_validator(mode="after")
    def _rating_matches_action(self) -> "FeedbackRequest":
        if self.action == "rate" and self.rating is None:
            raise ValueError("action 'rate' needs a rating")
        if self.action != "rate" and self.rating is not None:
            raise ValueError(f"action {self.action!r} takes no rating; use action 'rate'")
        return self


class AnimeOut(BaseModel):
    anime_id: int
    title: str
    type: str | None = None
    episodes: int | None = None
    genres: list[str] = []
    score: float | None = None
    members: int | None = None


class RecommendationOut(BaseModel):
    anime_id: int
    title: str
    score: float
    type: str | None = None
    episodes: int | None = None
    genres: list[str] = []
    rank: int
    reasons: list[str]


class RecommendationList(BaseModel):
    model: str
    items: list[RecommendationOut]
    user_id: int | None = None
    # "model": the trained model's own list; "fold-in": computed from a history at request time.
    source: Literal["model", "fold-in"] = "model"
    history_size: int | None = None


class FeedbackOut(BaseModel):
    feedback_id: int
    user_id: int
    anime_id: int
    action: str
    rating: float | None
    created_at: float


class ErrorOut(BaseModel):
    detail: str
    errors: list[dict] | None = None


ERROR_RESPONSES: dict[int | str, dict] = {
    404: {"model": ErrorOut, "description": "Unknown user, anime or title"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    422: {"model": ErrorOut, "description": "Invalid parameter or body"},
}
