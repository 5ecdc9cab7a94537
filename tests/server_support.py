"""Helpers for the server and web tests: a trained home on the real data and a live server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx

from animerec.data.interactions import Dataset

# Small and quick ALS settings: the tests check the server, not recommendation quality.
TEST_ALS = {"n_factors": 16, "epochs": 3, "random_state": 7, "num_threads": 1}


def build_home(home: Path, data_dir: Path, **als_params: object) -> Dataset:
    """Ingest the real anime-2016 files into a new store under `home` and train ALS on them."""
    from animerec.data.loaders import load_format
    from animerec.data.store import Store

    dataset, report = load_format("kaggle-2016", data_dir / "anime-2016")
    store = Store(home / "animerec.sqlite")
    try:
        store.save_dataset(dataset, report)
        train_als(home, dataset, **als_params)
    finally:
        store.close()
    return dataset


def train_als(home: Path, dataset: Dataset, **als_params: object) -> None:
    """Train ALS on `dataset` and save it where the service looks for it."""
    from animerec.data.store import Store
    from animerec.models.als import ALSRecommender

    params = {**TEST_ALS, **als_params}
    store = Store(home / "animerec.sqlite")
    try:
        ALSRecommender(**params).fit(dataset).save(store.model_path(dataset.name, "als"))
    finally:
        store.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThreadedServer:
    """A real uvicorn server on 127.0.0.1 running an app in a background thread."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def start(self, timeout: float = 120.0) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the test server stopped during start-up; see the log above")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the test server did not start within {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_for_health(url: str, timeout: float = 120.0) -> dict:
    """Poll GET /health until it returns 200 and return its body."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=5.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError as err:
            last_error = err
        time.sleep(0.2)
    raise TimeoutError(f"{url}/health did not answer within {timeout} s (last error: {last_error})")
