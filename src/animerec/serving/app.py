"""The FastAPI application factory: JSON API, web page, error handling and live reload.

Nothing is built at import time. `create_app()` returns a new app, and the service (dataset
and trained model) is loaded when the app starts. `POST /admin/reload` and the SIGHUP signal
replace the service as a whole. A request takes the current service once
and uses it to the end, so requests in flight finish on the old model while new requests get
the new one.

Run it with `animerec serve`, or with uvicorn directly:
`uvicorn --factory animerec.serving.app:app_from_env`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from animerec.errors import (
    ConfigError,
    DataError,
    NotFittedError,
    NotFoundError,
    UnknownIdError,
)
from animerec.ranking import RankingOptions
from animerec.serving.feedback import FeedbackStore
from animerec.serving.middleware import BodySizeLimitMiddleware, RequestLogMiddleware

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STORE_FILE = "animerec.sqlite"

# Environment variables read by `app_from_env` (the CLI sets them for worker processes).
ENV_HOME = "ANIMEREC_HOME"
ENV_DATASET = "ANIMEREC_SERVE_DATASET"
ENV_MODEL = "ANIMEREC_SERVE_MODEL"
ENV_FRANCHISES = "ANIMEREC_SERVE_FRANCHISES"
ENV_FEEDBACK = "ANIMEREC_SERVE_FEEDBACK_DB"
ENV_MAX_BODY = "ANIMEREC_SERVE_MAX_BODY_BYTES"
ENV_ADMIN_TOKEN = "ANIMEREC_ADMIN_TOKEN"
ENV_SUPERVISOR = "ANIMEREC_SERVE_SUPERVISOR_PID"
ENV_USER_CACHE = "ANIMEREC_SERVE_USER_CACHE"


@dataclass(frozen=True)
class ServerSettings:
    """Server settings: the dataset and model to load, and the limits to apply."""

    home: Path | None = None  # animerec home folder; None: ANIMEREC_HOME or the platform default
    dataset: str | None = None  # dataset name in the store; None: the most recently ingested
    model: str | None = None  # registered model name; None: the service's default
    # Franchise groups JSON for collapsing; None: the service derives groups from titles.
    franchises: Path | None = None
    # SQLite file for feedback; None: the store's own file (home/animerec.sqlite).
    feedback_path: Path | None = None
    # Largest accepted request body in bytes (MyAnimeList exports of big lists are a few MB).
    max_body_bytes: int = 16 * 1024 * 1024
    # When set, POST /admin/reload needs the header `Authorization: Bearer <token>`.
    admin_token: str | None = None
    # BLAS threads per server process. One request is a small matrix product, so threads
    # buy little and several worker processes would fight over the cores; None: unchanged.
    blas_threads: int | None = 1
    # Recommendation lists of known users cached per process (least recently used are
    # evicted first); 0 turns the cache off.
    user_list_cache_size: int = 4096
    # The uvicorn supervisor of several worker processes: a reload request is passed on to
    # it as SIGHUP so that it replaces every worker, not only the one that got the request.
    supervisor_pid: int | None = None

    @classmethod
    def from_env(cls) -> "ServerSettings":
        home = os.environ.get(ENV_HOME, "").strip()
        franchises = os.environ.get(ENV_FRANCHISES, "").strip()
        feedback = os.environ.get(ENV_FEEDBACK, "").strip()
        max_body = os.environ.get(ENV_MAX_BODY, "").strip()
        supervisor = os.environ.get(ENV_SUPERVISOR, "").strip()
        user_cache = os.environ.get(ENV_USER_CACHE, "").strip()
        return cls(
            home=Path(home) if home else None,
            dataset=os.environ.get(ENV_DATASET, "").strip() or None,
            model=os.environ.get(ENV_MODEL, "").strip() or None,
            franchises=Path(franchises) if franchises else None,
            feedback_path=Path(feedback) if feedback else None,
            max_body_bytes=int(max_body) if max_body else cls.max_body_bytes,
            admin_token=os.environ.get(ENV_ADMIN_TOKEN, "").strip() or None,
            supervisor_pid=int(supervisor) if supervisor else None,
            user_list_cache_size=int(user_cache) if user_cache else cls.user_list_cache_size,
        )

    def to_env(self) -> dict[str, str]:
        """Return the environment variables that make `from_env` rebuild these settings."""
        values = {
            ENV_HOME: str(self.home) if self.home else None,
            ENV_DATASET: self.dataset,
            ENV_MODEL: self.model,
            ENV_FRANCHISES: str(self.franchises) if self.franchises else None,
            ENV_FEEDBACK: str(self.feedback_path) if self.feedback_path else None,
            ENV_MAX_BODY: str(self.max_body_bytes),
            ENV_ADMIN_TOKEN: self.admin_token,
            ENV_SUPERVISOR: str(self.supervisor_pid) if self.supervisor_pid else None,
            # The default is left out, so that the variable set outside still counts.
            ENV_USER_CACHE: (
                str(self.user_list_cache_size)
                if self.user_list_cache_size != type(self).user_list_cache_size
                else None
            ),
        }
        return {key: value for key, value in values.items() if value}

    def resolved_feedback_path(self) -> Path:
        if self.feedback_path is not None:
            return self.feedback_path
        if self.home is not None:
            return Path(self.home) / STORE_FILE
        from animerec.config import animerec_home

        return animerec_home() / STORE_FILE


def default_service_factory(settings: ServerSettings) -> Callable[[], Any]:
    """Return a callable that opens the stored dataset and trained model named by `settings`."""

    def open_service() -> Any:
        from animerec.service import RecommenderService

        service = RecommenderService.open(
            home=settings.home,
            dataset=settings.dataset,
            model=settings.model,
            franchises=settings.franchises,
        )
        if settings.blas_threads is not None:
            # Limit BLAS threads for the whole process once, now that the model's libraries
            # are loaded, rather than set and restore the limit around every request.
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=settings.blas_threads)
            service.blas_threads = None
        return service

    return open_service


class ServiceHolder:
    """The current service and the way to replace it.

    Swapping is one attribute assignment, which is atomic in CPython, so a request sees
    either the old service or the new one, never a mix. The new service is built in a worker
    thread, so the event loop keeps answering requests on the old one meanwhile.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self.current: Any = None
        self.generation = 0
        self.loaded_at: float | None = None
        self._lock: asyncio.Lock | None = None

    async def load(self, reason: str) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            started = time.perf_counter()
            service = await run_in_threadpool(self._open_and_warm)
            self.current = service
            self.generation += 1
            self.loaded_at = time.time()
            freeze_heap()
            logger.info(
                "service loaded (%s, generation %d) in %.2f s: %s",
                reason, self.generation, time.perf_counter() - started, describe_service(service),
            )
            return service

    def _open_and_warm(self) -> Any:
        service = self._factory()
        warm_up(service)
        return service

    async def reload(self, reason: str) -> Any:
        """Load a fresh service and swap it in; on failure keep serving the current one."""
        try:
            return await self.load(reason)
        except Exception:
            logger.exception("reload (%s) failed; still serving generation %d", reason, self.generation)
            raise


def freeze_heap() -> None:
    """Collect garbage once, then exempt every object alive now from later collections.

    A loaded service is some 120,000 objects that live as long as it does; a full
    collection walks them all (about 35 ms), which showed as the slowest requests under
    load. Frozen objects are still freed by reference counting when a reload drops them.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def warm_up(service: Any) -> None:
    """Build the service's lazy indexes before it takes requests, so that the first
    requests after a start or reload do not pay for them (about a second in all)."""
    try:
        # A search that finds nothing builds the title indexes (normalized titles, trigrams).
        service.search("zzqx warm-up", 1)
        # A collapsed list builds the franchise groups.
        interactions = service.dataset.interactions
        most_watched = int(interactions.items.ids[interactions.user_items.getnnz(axis=0).argmax()])
        service.recommend_history(
            [(most_watched, None)], RankingOptions(n=1, collapse_franchises=True)
        )
    except Exception:
        logger.warning("warming up the service failed; the first requests will be slower", exc_info=True)


def describe_service(service: Any) -> dict[str, Any]:
    """Return the names and sizes that /health shows for a service."""
    model = getattr(service, "model", None)
    dataset = getattr(service, "dataset", None)
    info: dict[str, Any] = {
        "model": getattr(model, "name", None) or type(model).__name__,
        "dataset": getattr(dataset, "name", None),
    }
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        info["model_config"] = config.to_dict()
    interactions = getattr(dataset, "interactions", None)
    if interactions is not None:
        info["n_users"] = int(interactions.n_users)
        info["n_items"] = int(interactions.n_items)
    return info


def create_app(
    service_factory: Callable[[], Any] | None = None,
    *,
    settings: ServerSettings | None = None,
) -> FastAPI:
    """Build the app. `service_factory` returns a `RecommenderService` (called at start-up
    and on each reload); without it the service is opened from the store named in `settings`."""
    settings = settings or ServerSettings()
    factory = service_factory or default_service_factory(settings)
    holder = ServiceHolder(factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feedback_path = settings.resolved_feedback_path()
        if settings.blas_threads is not None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=settings.blas_threads)
        app.state.feedback = FeedbackStore(feedback_path)
        logger.info("feedback kept in %s", feedback_path)
        await holder.load("start-up")
        remove_handler = _install_sighup(holder)
        try:
            yield
        finally:
            remove_handler()
            app.state.feedback.close()
            logger.info("server stopped")

    # Swagger UI and ReDoc from files shipped with fastapi-offline, not from a CDN, so /docs
    # works on a machine without internet access.
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="animerec",
        summary="Anime recommendations: for known users, for a posted history, similar titles.",
        version=_library_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.holder = holder
    from animerec.serving.routes import UserListCache

    app.state.user_lists = UserListCache(settings.user_list_cache_size)

    _add_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLogMiddleware)

    from animerec.serving.routes import add_openapi_schemas, build_router, mount_web

    app.include_router(build_router())
    add_openapi_schemas(app)
    mount_web(app, STATIC_DIR)
    return app


def app_from_env() -> FastAPI:
    """App factory for `uvicorn --factory` and worker processes: settings from the environment."""
    from animerec.serving.server import ENV_LOG_LEVEL, configure_server_logging

    if ENV_LOG_LEVEL in os.environ:
        configure_server_logging()
    return create_app(settings=ServerSettings.from_env())


def _library_version() -> str:
    import animerec

    return animerec.__version__


def _install_sighup(holder: ServiceHolder) -> Callable[[], None]:
    """Reload the service on SIGHUP when this process runs the event loop in its main thread.

    Under several uvicorn workers the supervisor process gets SIGHUP and replaces the
    workers instead, and a server running in a background thread (tests) has no handler.
    """
    if not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        logger.info("SIGHUP received: reloading the service")
        task = loop.create_task(holder.reload("SIGHUP"))
        task.add_done_callback(_log_reload_failure)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (RuntimeError, ValueError, NotImplementedError):
        logger.debug("SIGHUP reload not available (not in the main thread)")
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGHUP)


def _log_reload_failure(task: asyncio.Task) -> None:
    # ServiceHolder.reload has logged the failure already; this only retrieves it.
    if not task.cancelled():
        task.exception()


# --- errors -----------------------------------------------------------------------------

ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UnknownIdError, 404),
    (NotFoundError, 404),
    (ConfigError, 422),
    (DataError, 422),
    (NotFittedError, 503),
)


def error_response(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    async def on_animerec_error(request: Request, exc: Exception) -> JSONResponse:
        for kind, status in ERROR_STATUS:
            if isinstance(exc, kind):
                break
        else:
            status = 422
        logger.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
        return error_response(status, str(exc))

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_plain_error(e) for e in exc.errors()[:20]]
        summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
        logger.info("%s %s -> 422: %s", request.method, request.url.path, summary)
        return error_response(422, f"invalid request: {summary}", errors=errors)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        response = error_response(exc.status_code, str(exc.detail))
        if headers:
            response.headers.update(headers)
        return response

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error(
            "unexpected error on %s %s", request.method, request.url.path, exc_info=exc
        )
        return error_response(500, "internal error: the server logged the details")

    from animerec.errors import AnimerecError

    app.add_exception_handler(AnimerecError, on_animerec_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)


def _plain_error(error: dict) -> dict:
    """Keep the JSON-safe parts of a pydantic error (its `input` can be anything)."""
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "invalid value"))
    context = error.get("ctx") or {}
    if error.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
        # FastAPI's own body parser reports ("body", character offset) with the json
        # module's reason in ctx. Word it like pydantic's "Invalid JSON: ..." errors.
        reason = str(context.get("error", "the body is not valid JSON"))
        message = f"Invalid JSON: {reason} at character {loc[1]}"
        loc = loc[:1]
    elif error.get("type") == "value_error":
        message = message.removeprefix("Value error, ")
    location = ".".join(str(part) for part in loc)
    return {"location": location, "message": message}
