"""The API endpoints. Each takes the current service once and works on it to the end."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import weakref
from collections import OrderedDict
from pathlib import Path as FilePath
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from animerec.errors import ConfigError, UnknownIdError
from animerec.ranking import RankingOptions
from animerec.serving.schemas import (
    ERROR_RESPONSES,
    MAX_ID,
    AnimeOut,
    FeedbackOut,
    FeedbackRequest,
    HistoryRequest,
    RecommendationList,
)

logger = logging.getLogger(__name__)

MAX_N = 100
MAX_FILTER_VALUES = 50
MAX_QUERY_LENGTH = 200


class JSONBody(Response):
    """A JSON response rendered with the standard library, numpy scalars and NaN made safe."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            text = _dumps(content)
        except ValueError:
            # A NaN or infinity somewhere deeper than `_clean` looks: replace them all.
            text = _dumps(_finite(content))
        return text.encode("utf-8")


def _dumps(content: Any) -> str:
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_to_plain
    )


def _finite(value: Any) -> Any:
    """Return `value` with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return value


def _to_plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.ndarray, tuple, set, frozenset)):
        return list(value.tolist() if isinstance(value, np.ndarray) else value)
    if isinstance(value, FilePath):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _clean(record: dict) -> dict:
    """Replace non-finite floats (not valid JSON) with None."""
    return {
        key: (None if isinstance(value, float) and not math.isfinite(value) else value)
        for key, value in record.items()
    }


def current_service(request: Request) -> Any:
    service = request.app.state.holder.current
    if service is None:
        raise HTTPException(status_code=503, detail="the model is still loading; retry in a moment")
    return service


def _split_values(values: list[str], name: str) -> tuple[str, ...]:
    """Accept repeated parameters and comma-separated lists alike (`genres=Action,Comedy`)."""
    parts = [part.strip() for value in values for part in value.split(",")]
    parts = [part for part in parts if part]
    if len(parts) > MAX_FILTER_VALUES:
        raise ConfigError(f"{name} takes at most {MAX_FILTER_VALUES} values, got {len(parts)}")
    return tuple(parts)


class UserListCache:
    """Rendered responses of known users without feedback, the most recently used kept.

    Keys are (user_id, options). The entries belong to one service and are dropped when a
    reload brings another. A user with feedback never reaches the cache, because the route
    checks for feedback first and builds those lists fresh, so new feedback shows on the
    next request.
    """

    def __init__(self, size: int) -> None:
        self.size = max(0, int(size))
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._owner: weakref.ref | None = None

    def get(self, service: Any, key: tuple) -> bytes | None:
        """Return the stored body for `key` under `service`, or None."""
        if not self.size:
            return None
        if self._owner is None or self._owner() is not service:
            self._entries.clear()
            self._owner = weakref.ref(service)
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, service: Any, key: tuple, body: bytes) -> None:
        """Store `body` for `key` when `service` is still the one the entries belong to."""
        if not self.size or self._owner is None or self._owner() is not service:
            return
        self._entries[key] = body
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


async def ranking_options(
    n: int = Query(10, ge=1, le=MAX_N, description="Length of the list (1–100)."),
    genres: list[str] = Query([], description="Keep anime with at least one of these genres."),
    exclude_genres: list[str] = Query([], description="Drop anime with any of these genres."),
    types: list[str] = Query([], description="Keep only these types (TV, Movie, OVA, ...)."),
    exclude_types: list[str] = Query([], description="Drop these types."),
    include_adult: bool = Query(False, description="Include adult titles (genre Hentai)."),
    collapse: bool = Query(
        True,
        description="At most one title per franchise (groups from the server's franchise file, else from titles).",
    ),
) -> RankingOptions:
    return RankingOptions(
        n=n,
        genres=_split_values(genres, "genres"),
        exclude_genres=_split_values(exclude_genres, "exclude_genres"),
        types=_split_values(types, "types"),
        exclude_types=_split_values(exclude_types, "exclude_types"),
        include_adult=include_adult,
        collapse_franchises=collapse,
    )


def _model_name(service: Any) -> str:
    model = getattr(service, "model", None)
    return str(getattr(model, "name", None) or type(model).__name__)


def _rating_scale(service: Any) -> tuple[float, float]:
    return tuple(service.dataset.interactions.rating_scale)  # type: ignore[return-value]


def _check_rating(service: Any, rating: float | None) -> None:
    if rating is None:
        return
    low, high = _rating_scale(service)
    if not (math.isfinite(rating) and low <= rating <= high):
        raise ConfigError(f"rating {rating} is outside the rating scale {low:g}–{high:g}")


def known_history(service: Any, user_id: int) -> list[tuple[int, float | None]]:
    """Return a training user's history as (anime_id, rating or None); empty when unknown."""
    interactions = service.dataset.interactions
    if user_id not in interactions.users:
        return []
    item_idx, ratings = interactions.history(interactions.users.index(user_id))
    anime_ids = interactions.items.ids[item_idx]
    return [
        (int(anime_id), None if math.isnan(rating) else float(rating))
        for anime_id, rating in zip(anime_ids.tolist(), ratings.tolist())
    ]


def _resolve_all(service: Any, references: list[int | str]) -> tuple[int, ...]:
    catalog = service.dataset.catalog
    return tuple(catalog.resolve(reference) for reference in references)


def build_router() -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES)

    @router.get("/health", tags=["service"])
    async def health(request: Request) -> Response:
        """Report that the server is up, and which dataset and model it serves."""
        from animerec.serving.app import describe_service

        holder = request.app.state.holder
        service = current_service(request)
        return JSONBody(
            {
                "status": "ok",
                **describe_service(service),
                "generation": holder.generation,
                "loaded_at": holder.loaded_at,
            }
        )

    @router.get("/filters", tags=["anime"])
    async def filters(request: Request) -> Response:
        """List the genre and type labels the filters accept."""
        catalog = current_service(request).dataset.catalog
        return JSONBody({"genres": catalog.genre_labels(), "types": catalog.type_labels()})

    @router.get("/anime/search", tags=["anime"])
    async def search(
        request: Request,
        q: str = Query(..., min_length=1, max_length=MAX_QUERY_LENGTH, description="Title text."),
        n: int = Query(10, ge=1, le=MAX_N),
    ) -> Response:
        """Find anime by title: exact, prefix and substring matches, then close spellings."""
        service = current_service(request)
        items = [_clean(item) for item in service.search(q, n=n)]
        return JSONBody({"query": q, "items": items})

    @router.get("/anime/{anime_id}", tags=["anime"], response_model=AnimeOut)
    async def anime(request: Request, anime_id: int = Path(ge=0, le=MAX_ID)) -> Response:
        """Return one anime's metadata."""
        return JSONBody(_clean(current_service(request).anime(anime_id)))

    @router.get("/anime/{anime_id}/similar", tags=["anime"])
    async def similar(
        request: Request,
        anime_id: int = Path(ge=0, le=MAX_ID),
        n: int = Query(10, ge=1, le=MAX_N),
        include_adult: bool = Query(False),
    ) -> Response:
        """Return the anime most similar to one anime under the current model."""
        service = current_service(request)
        anime = service.anime(anime_id)
        items = [_clean(item) for item in service.similar(anime_id, n=n, include_adult=include_adult)]
        items = _with_mean_scores(service, items)
        for item in items:
            if not item.get("reasons"):
                item["reasons"] = [f"similar to {anime['title']}"]
        return JSONBody({"anime": _clean(anime), "model": _model_name(service), "items": items})

    @router.get(
        "/users/{user_id}/recommendations", tags=["recommendations"], response_model=RecommendationList
    )
    async def user_recommendations(
        request: Request,
        user_id: int = Path(ge=0, le=MAX_ID),
        options: RankingOptions = Depends(ranking_options),
    ) -> Response:
        """Recommend for a user of the training data, or for anyone who sent feedback.

        Feedback is folded in without retraining: rated and watched anime join the user's
        history and leave the list, not-interested anime leave the list. A known user whose
        feedback is only "not interested" keeps the model's own scores.
        """
        service = current_service(request)
        feedback = request.app.state.feedback.for_user(user_id)
        if not feedback:
            cache: UserListCache | None = getattr(request.app.state, "user_lists", None)
            key = (user_id, options)
            body = cache.get(service, key) if cache is not None else None
            if body is None:
                items = service.recommend_user(user_id, options)
                response = _recommendations(service, items, user_id=user_id, source="model")
                if cache is not None:
                    cache.put(service, key, bytes(response.body))
                return response
            return Response(body, media_type=JSONBody.media_type)

        # Lists shaped by feedback skip the cache, because new feedback must show at once.
        options = options.replace(deny=options.deny + tuple(feedback.not_interested))
        model = service.model
        if not feedback.history and model is not None and int(user_id) in model.users_:
            # "Not interested" entries add no history, so the model's own scores stay and
            # the marked anime only leave the list.
            items = service.recommend_user(user_id, options)
            return _recommendations(service, items, user_id=user_id, source="model")

        history = known_history(service, user_id) + feedback.history
        if not history:
            raise UnknownIdError(
                f"unknown user_id {user_id}: the model has no history for this user and the "
                "feedback has only 'not interested' entries; rate or mark watched one anime first"
            )
        items = service.recommend_history(history, options)
        history_size = len({anime_id for anime_id, _ in history})
        return _recommendations(
            service, items, user_id=user_id, source="fold-in", history_size=history_size
        )

    @router.post(
        "/recommendations",
        tags=["recommendations"],
        response_model=RecommendationList,
        openapi_extra={"requestBody": _history_request_body()},
    )
    async def history_recommendations(
        request: Request, options: RankingOptions = Depends(ranking_options)
    ) -> Response:
        """Recommend for a posted history (ids or titles, optional ratings) or an uploaded
        MyAnimeList export (multipart field `file`), folded in without retraining."""
        service = current_service(request)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            history, exclude = await _read_export(request, service)
        else:
            body = _parse_history(await request.body())
            # Resolve titles here, so that an anime named by id and by title counts once.
            history = [
                (service.resolve(reference), rating) for reference, rating in body.entries()
            ]
            exclude = _resolve_all(service, body.exclude)
        for _, rating in history:
            _check_rating(service, rating)
        if exclude:
            options = options.replace(deny=options.deny + exclude)
        items = service.recommend_history(history, options)
        history_size = len({anime_id for anime_id, _ in history})
        return _recommendations(service, items, source="fold-in", history_size=history_size)

    @router.get("/users/{user_id}/feedback", tags=["feedback"])
    async def user_feedback(request: Request, user_id: int = Path(ge=0, le=MAX_ID)) -> Response:
        """Return a user's current feedback state and the logged feedback rows."""
        store = request.app.state.feedback
        state = store.for_user(user_id)
        return JSONBody(
            {
                "user_id": user_id,
                "history": [{"anime_id": a, "rating": r} for a, r in state.history],
                "not_interested": state.not_interested,
                "rows": store.rows(user_id),
            }
        )

    @router.post(
        "/users/{user_id}/feedback", tags=["feedback"], status_code=201, response_model=FeedbackOut
    )
    async def add_feedback(
        request: Request, body: FeedbackRequest, user_id: int = Path(ge=0, le=MAX_ID)
    ) -> Response:
        """Store one piece of feedback; the next recommendation request uses it."""
        service = current_service(request)
        if body.anime_id not in service.dataset.catalog.items:
            raise UnknownIdError(f"unknown anime_id {body.anime_id}: it is not in the catalogue")
        _check_rating(service, body.rating)
        row = request.app.state.feedback.add(user_id, body.anime_id, body.action, body.rating)
        return JSONBody(row, status_code=201)

    @router.post("/admin/reload", tags=["service"])
    async def reload(request: Request) -> Response:
        """Load the newest trained model and swap it in; requests in flight finish on the old one."""
        settings = request.app.state.settings
        if settings.admin_token is not None:
            expected = f"Bearer {settings.admin_token}"
            if request.headers.get("authorization", "") != expected:
                raise HTTPException(status_code=401, detail="reload needs the admin token")
        holder = request.app.state.holder
        try:
            service = await holder.reload("POST /admin/reload")
        except Exception as err:
            raise HTTPException(
                status_code=503,
                detail=f"reload failed, still serving the previous model: {err}",
            ) from err
        if settings.supervisor_pid:
            logger.info("asking the supervisor %d to replace every worker", settings.supervisor_pid)
            os.kill(settings.supervisor_pid, signal.SIGHUP)
        from animerec.serving.app import describe_service

        return JSONBody(
            {
                "status": "reloaded",
                **describe_service(service),
                "generation": holder.generation,
                "loaded_at": holder.loaded_at,
            }
        )

    return router


def _recommendations(service: Any, items: list[dict], **fields: Any) -> Response:
    model = _model_name(service)
    fallback = (
        "one of the most watched anime in the data"
        if model == "popular"
        else f"scored high for this history by the {model} model"
    )
    cleaned = _with_mean_scores(service, [_clean(item) for item in items])
    for item in cleaned:
        if not item.get("reasons"):
            item["reasons"] = [fallback]
    return JSONBody({"model": model, **fields, "items": cleaned})


def _with_mean_scores(service: Any, items: list[dict]) -> list[dict]:
    """Add `mean_score`, the catalogue's mean user score, next to the model's `score`."""
    if not items:
        return items
    catalog = service.dataset.catalog
    positions = catalog.items.to_idx([item["anime_id"] for item in items], unknown="mask")
    scores = _mean_scores(catalog)
    for item, position in zip(items, positions.tolist()):
        value = float(scores[position]) if position >= 0 else math.nan
        item["mean_score"] = value if math.isfinite(value) else None
    return items


# Catalogue mean scores as float arrays, keyed by id() of the catalogue they came from. The
# catalogue is kept in the entry so that its id cannot be reused while the entry exists.
_mean_score_cache: dict[int, tuple[Any, np.ndarray]] = {}
_MEAN_SCORE_CACHE_SIZE = 4


def _mean_scores(catalog: Any) -> np.ndarray:
    cached = _mean_score_cache.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    scores = catalog.frame["score"].to_numpy(dtype=np.float64, na_value=np.nan)
    if len(_mean_score_cache) >= _MEAN_SCORE_CACHE_SIZE:
        _mean_score_cache.clear()
    _mean_score_cache[id(catalog)] = (catalog, scores)
    return scores


def _parse_history(raw: bytes) -> HistoryRequest:
    try:
        return HistoryRequest.model_validate_json(raw)
    except ValidationError as err:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error.get("loc", ()))} for error in err.errors()]
        ) from err


async def _read_export(request: Request, service: Any) -> tuple[list, tuple[int, ...]]:
    """Read an uploaded MyAnimeList export and return (history, anime to exclude)."""
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as err:
        if err.status_code == 413:
            raise
        raise ConfigError(f"invalid multipart body: {err.detail}") from err
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ConfigError("the multipart body needs a file field named 'file' with the export")
    data = await upload.read()
    from animerec.serving.upload import history_from_export

    return history_from_export(data, upload.filename or "", service)


def _history_request_body() -> dict:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HistoryRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "MyAnimeList list export (XML, optionally gzipped)",
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }


def add_openapi_schemas(app: FastAPI) -> None:
    """Add the body schemas that routes reading their body by hand refer to."""
    build_default = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build_default()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        history = HistoryRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(history.pop("$defs", {}))
        components["HistoryRequest"] = history
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def mount_web(app: FastAPI, static_dir: FilePath) -> None:
    """Serve the web page at / and its assets under /static."""
    index = static_dir / "index.html"

    @app.get("/", include_in_schema=False)
    async def web_page() -> FileResponse:
        return FileResponse(index, media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir), name="static")
