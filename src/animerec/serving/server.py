"""Run the API under uvicorn: one process, or a supervisor with several worker processes.

With one worker the app reloads itself on SIGHUP. With several, uvicorn's supervisor gets
SIGHUP and replaces the workers one by one, starting each new worker before stopping the
old one, and a stopping worker finishes the requests it has in flight.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path

from animerec.errors import ConfigError, install_hint

logger = logging.getLogger(__name__)

APP_FACTORY = "animerec.serving.app:app_from_env"
ENV_LOG_LEVEL = "ANIMEREC_SERVE_LOG_LEVEL"
ENV_ACCESS_LOG = "ANIMEREC_SERVE_ACCESS_LOG"
WORKER_READY_TIMEOUT_S = 120


def check_serve_extra() -> None:
    """Raise `ConfigError` with the install command when the server packages are missing."""
    missing = []
    for module in ("fastapi", "uvicorn", "multipart"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(
            f"the HTTP server needs {', '.join(missing)}, which are not installed: "
            f"run {install_hint('serve')}"
        )


def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    home: Path | None = None,
    dataset: str | None = None,
    model: str | None = None,
    franchises: Path | None = None,
    access_log: bool = True,
    log_level: str = "info",
) -> None:
    """Serve the API and web page until interrupted (blocks)."""
    check_serve_extra()
    import uvicorn

    from animerec.serving.app import ServerSettings

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {port}")

    settings = ServerSettings(
        home=home,
        dataset=dataset,
        model=model,
        franchises=franchises,
        supervisor_pid=os.getpid() if workers > 1 else None,
    )
    # Worker processes start fresh interpreters, so settings travel in the environment.
    os.environ.update(settings.to_env())
    os.environ[ENV_LOG_LEVEL] = log_level.upper()
    os.environ[ENV_ACCESS_LOG] = "1" if access_log else "0"
    configure_server_logging()

    logger.info(
        "serving on http://%s:%d with %d worker(s); docs at /docs", host, port, workers
    )
    options: dict = {}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
        # A new worker loads the dataset and the model before it is ready, which takes
        # longer than uvicorn's 5 s default on a busy machine; a replacement that is not
        # ready in time makes the supervisor abort a reload.
        options["timeout_worker_healthcheck"] = WORKER_READY_TIMEOUT_S
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # the app logs each request itself
        log_config=None,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=30,
        **options,
    )


def configure_server_logging() -> None:
    """Log the server's records (requests, reloads, errors) to stderr.

    Called in the main process and again in each worker process, which does not inherit the
    parent's logging setup. A handler already on the root logger (the CLI's) is kept.
    """
    level = getattr(logging, os.environ.get(ENV_LOG_LEVEL, "INFO").upper(), logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
    for name in ("animerec", "uvicorn.error"):
        logging.getLogger(name).setLevel(level)
    access = logging.getLogger("animerec.serving.access")
    access.setLevel(level if os.environ.get(ENV_ACCESS_LOG, "1") == "1" else logging.WARNING)
