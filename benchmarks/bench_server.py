"""Load test of the HTTP server on 127.0.0.1: latency percentiles, throughput, robustness.

The script starts `animerec serve` as a subprocess on a free local port, on the real
anime-2016 data with the default model (ALS), and drives it over keep-alive connections in a
closed loop: each connection sends its next request when the previous response arrived, so
`--concurrency` requests are in flight at once. The timed runs use `wrk` (a load generator
written in C, with a Lua script that rotates user ids and histories) when it is installed,
else the script's own asyncio HTTP/1.1 client; `--client` picks one. The Python client costs
about as much CPU per request as the server, so on a small machine it takes cores away from
the server; the mixed run always uses the Python client, which checks every answer.

Scenarios:
  user     GET /users/{id}/recommendations?n=10 for known users, `--duration` seconds
  history  POST /recommendations?n=10 with 20 liked titles, `--duration` seconds
  mixed    at least `--mixed-requests` requests of every kind, about 10 % malformed, and
           feedback writes; checks zero 5xx, that the server still answers afterwards,
           and that every feedback write answered 201 is in the SQLite store.

Only 127.0.0.1 is ever contacted. Results are printed and written to
benchmarks/results/server.json.

    .venv/bin/python benchmarks/bench_server.py                  # full run (about 3 minutes)
    .venv/bin/python benchmarks/bench_server.py --duration 10 --mixed-requests 2000   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_HOME = RESULTS / "cache" / "server-home"
HOST = "127.0.0.1"
# Feedback written by the mixed run goes to user ids from here up, far from real ids.
BENCH_USER_BASE = 900_000_000
HISTORY_LENGTH = 20
MAX_BODY_BYTES = 16 * 1024 * 1024  # the server's default limit


# --- preparing the data and the server ---------------------------------------------------


def data_folder(argument: str | None) -> Path:
    if argument:
        return Path(argument)
    configured = os.environ.get("ANIMEREC_TEST_DATA", "").strip()
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def prepare_home(home: Path, data: Path) -> None:
    """Ingest anime-2016 and train the default model into `home` unless already there."""
    cli = [sys.executable, "-m", "animerec", "--home", str(home)]
    if not (home / "animerec.sqlite").exists():
        source = data / "anime-2016"
        if not source.is_dir():
            sys.exit(f"anime-2016 data not found at {source}; pass --data or set ANIMEREC_TEST_DATA")
        subprocess.run([*cli, "ingest", "kaggle-2016", str(source)], check=True)
    if not list(home.glob("models/*/als/model.json")):
        subprocess.run([*cli, "train", "als"], check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_server(
    home: Path, port: int, workers: int, log_path: Path, access_log: bool, user_cache: int | None
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "animerec", "--home", str(home), "serve",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--access-log" if access_log else "--no-access-log",
    ]
    environment = dict(os.environ)
    if user_cache is not None:
        environment["ANIMEREC_SERVE_USER_CACHE"] = str(user_cache)
    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with status {process.returncode}; see {log_path}")
        status, _ = asyncio.run(single_request(port, build_get("/health")))
        if status == 200:
            return process
        time.sleep(0.5)
    process.terminate()
    sys.exit(f"/health returned no 200 within 180 s; see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load_sample(
    home: Path, seed: int, n_users: int = 500
) -> tuple[list[int], list[str], list[int]]:
    """Return `n_users` known user ids (0: all), titles of often-watched anime, and all
    catalogue anime ids."""
    import numpy as np

    from animerec.data.store import Store

    store = Store(home / "animerec.sqlite")
    try:
        dataset = store.load_dataset()
    finally:
        store.close()
    rng = random.Random(seed)
    users = [int(u) for u in dataset.interactions.users.ids]
    watchers = np.asarray(dataset.interactions.user_items.getnnz(axis=0))
    popular = np.argsort(-watchers, kind="stable")[:400]
    catalog = dataset.catalog
    anime_ids = dataset.interactions.items.ids
    titles = []
    for position in popular:
        title = catalog.title(int(anime_ids[position]))
        # A title is usable in a request when it names exactly one anime.
        try:
            catalog.resolve_title(title)
        except Exception:
            continue
        titles.append(title)
    sample = rng.sample(users, min(n_users, len(users))) if n_users > 0 else rng.sample(users, len(users))
    return sample, titles, [int(a) for a in anime_ids]


# --- a small HTTP/1.1 client ------------------------------------------------------------


def build_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def build_post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one response; return (status, body, whether the server closes the connection)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    chunked = False
    close = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        return status, b"".join(parts), close
    return status, await reader.readexactly(length), close


async def single_request(port: int, raw: bytes) -> tuple[int, bytes]:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return 0, b""
    try:
        writer.write(raw)
        status, body, _ = await read_response(reader)
        return status, body
    except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError):
        return 0, b""
    finally:
        writer.close()


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    by_kind: dict[str, dict[int, int]] = field(default_factory=dict)
    connection_errors: int = 0
    feedback_created: int = 0
    started: float = 0.0
    finished: float = 0.0

    def record(self, kind: str, status: int, latency_ms: float) -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        per_kind = self.by_kind.setdefault(kind, {})
        per_kind[status] = per_kind.get(status, 0) + 1
        if kind == "feedback" and status == 201:
            self.feedback_created += 1


RequestMaker = Callable[[], tuple[str, bytes]]


async def run_load(
    port: int, concurrency: int, make_request: RequestMaker, duration: float, max_requests: int | None
) -> Tally:
    """Drive the server with `concurrency` connections until the time or request budget ends."""
    tally = Tally()
    issued = 0
    deadline = time.perf_counter() + duration

    async def connection() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.perf_counter() < deadline and (max_requests is None or issued < max_requests):
                issued += 1
                kind, raw = make_request()
                started = time.perf_counter()
                try:
                    writer.write(raw)
                    status, _, close = await read_response(reader)
                except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError):
                    tally.connection_errors += 1
                    close, status = True, 0
                if status:
                    tally.record(kind, status, (time.perf_counter() - started) * 1000.0)
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    tally.started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    tally.finished = time.perf_counter()
    return tally


def summarize(name: str, tally: Tally) -> dict:
    latencies = sorted(tally.latencies_ms)
    count = len(latencies)
    elapsed = tally.finished - tally.started

    def percentile(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(count - 1, int(q * count))]

    return {
        "scenario": name,
        "requests": count,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(count / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(0.50), 2),
        "p95_ms": round(percentile(0.95), 2),
        "p99_ms": round(percentile(0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "by_kind": {kind: {str(k): v for k, v in sorted(s.items())} for kind, s in tally.by_kind.items()},
        "connection_errors": tally.connection_errors,
    }


# --- wrk, a load generator in C ------------------------------------------------------------

# The Lua script: `requests` (filled in per scenario) holds ready-made requests, and each
# wrk thread walks through them from its own offset. `done` prints one JSON line.
WRK_SCRIPT = """
local requests = {%s}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end

function init(args)
  counter = offset
end

function request()
  counter = counter + 1
  local r = requests[(counter %% #requests) + 1]
  return wrk.format(r[1], r[2], r[3], r[4])
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p95_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _lua_string(text: str) -> str:
    """Quote `text` as a Lua string literal."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def wrk_script(requests: list[tuple[str, str, str | None]]) -> str:
    """Return the Lua script for (method, path, JSON body or None) requests."""
    entries = []
    for method, path, body in requests:
        headers = "{['Content-Type'] = 'application/json'}" if body is not None else "{}"
        lua_body = _lua_string(body) if body is not None else "nil"
        entries.append(f"{{{_lua_string(method)}, {_lua_string(path)}, {headers}, {lua_body}}}")
    return WRK_SCRIPT % ",\n".join(entries)


def run_wrk(
    port: int, concurrency: int, requests: list[tuple[str, str, str | None]], duration: float,
    name: str,
) -> dict:
    """Drive the server with wrk for `duration` seconds and summarize like `summarize`."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "requests.lua"
        script.write_text(wrk_script(requests))
        command = [
            "wrk", "-t", "2", "-c", str(concurrency), "-d", f"{int(duration)}s",
            "--timeout", "10s", "-s", str(script), f"http://{HOST}:{port}",
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    line = next(
        (row for row in completed.stdout.splitlines() if row.startswith("WRK_RESULT ")), None
    )
    if completed.returncode != 0 or line is None:
        sys.exit(f"wrk failed (status {completed.returncode}): {completed.stderr.strip()}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    seconds = result["duration_us"] / 1e6
    errors = {key: result[key] for key in ("connect", "read", "write", "timeout") if result[key]}
    return {
        "scenario": name,
        "client": "wrk",
        "requests": result["requests"],
        "seconds": round(seconds, 2),
        "throughput_rps": round(result["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p95_ms": round(result["p95_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "max_ms": round(result["max_us"] / 1000, 2),
        # wrk counts answers outside 2xx/3xx, not each status.
        "statuses": {"2xx": result["requests"] - result["status"], "other": result["status"]},
        "connection_errors": sum(errors.values()),
        "socket_errors": errors,
    }


def user_request_list(users: list[int]) -> list[tuple[str, str, str | None]]:
    return [("GET", f"/users/{u}/recommendations?n=10", None) for u in users]


def history_request_list(titles: list[str], rng: random.Random) -> list[tuple[str, str, str | None]]:
    return [
        ("POST", "/recommendations?n=10", json.dumps({"liked": rng.sample(titles, HISTORY_LENGTH)}))
        for _ in range(50)
    ]


# --- scenarios -----------------------------------------------------------------------------


def user_requests(users: list[int], rng: random.Random) -> RequestMaker:
    prepared = [build_get(f"/users/{u}/recommendations?n=10") for u in users]
    return lambda: ("user", rng.choice(prepared))


def history_requests(titles: list[str], rng: random.Random) -> RequestMaker:
    bodies = []
    for _ in range(50):
        liked = rng.sample(titles, HISTORY_LENGTH)
        bodies.append(build_post("/recommendations?n=10", json.dumps({"liked": liked}).encode()))
    return lambda: ("history", rng.choice(bodies))


def malformed_requests(users: list[int]) -> list[tuple[str, bytes]]:
    user = users[0]
    return [
        ("malformed", build_post("/recommendations", b"{not json")),
        ("malformed", build_post("/recommendations", b'{"liked": []}')),
        ("malformed", build_post("/recommendations", b'{"liked": [{"x": 1}]}')),
        ("malformed", build_post("/recommendations", b'{"history": [{"anime_id": 1, "rating": 99}]}')),
        ("malformed", build_get(f"/users/{user}/recommendations?n=0")),
        ("malformed", build_get(f"/users/{user}/recommendations?n=1000")),
        ("malformed", build_get(f"/users/{user}/recommendations?genres=NoSuchGenre")),
        ("malformed", build_get("/anime/not-a-number")),
        ("malformed", build_get("/anime/search?q=")),
        ("malformed", build_post(f"/users/{BENCH_USER_BASE}/feedback", b'{"anime_id": 1, "action": "love"}')),
        ("malformed", build_post(f"/users/{BENCH_USER_BASE}/feedback", b'{"anime_id": 1, "action": "rate"}')),
        ("malformed", build_post("/recommendations", b"\xff\xfe\x00\x01")),
        # A declared body over the limit: the server returns 413 without reading it.
        ("malformed", f"POST /recommendations HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()),
    ]


def mixed_requests(
    users: list[int], titles: list[str], anime_ids: list[int], rng: random.Random
) -> RequestMaker:
    user_maker = user_requests(users, rng)
    history_maker = history_requests(titles, rng)
    broken = malformed_requests(users)
    counter = {"feedback": 0}
    actions = ("rate", "watched", "not_interested")

    def feedback() -> tuple[str, bytes]:
        counter["feedback"] += 1
        user_id = BENCH_USER_BASE + counter["feedback"] % 500
        action = rng.choice(actions)
        body = {"anime_id": rng.choice(anime_ids), "action": action}
        if action == "rate":
            body["rating"] = rng.randint(1, 10)
        return "feedback", build_post(f"/users/{user_id}/feedback", json.dumps(body).encode())

    def folded_user() -> tuple[str, bytes]:
        user_id = BENCH_USER_BASE + rng.randrange(500)
        return "feedback-user", build_get(f"/users/{user_id}/recommendations?n=10")

    def make() -> tuple[str, bytes]:
        roll = rng.random()
        if roll < 0.10:
            return rng.choice(broken)
        if roll < 0.35:
            return user_maker()
        if roll < 0.55:
            return history_maker()
        if roll < 0.65:
            return feedback()
        if roll < 0.70:
            return folded_user()
        if roll < 0.80:
            prefix = rng.choice(titles)[: rng.randint(3, 8)]
            return "search", build_get(f"/anime/search?q={_quote(prefix)}")
        if roll < 0.90:
            return "similar", build_get(f"/anime/{rng.choice(anime_ids)}/similar?n=10")
        return "anime", build_get(f"/anime/{rng.choice(anime_ids)}")

    return make


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def count_bench_feedback(home: Path) -> int:
    with sqlite3.connect(home / "animerec.sqlite") as connection:
        try:
            row = connection.execute(
                "SELECT COUNT(*) FROM feedback WHERE user_id >= ?", (BENCH_USER_BASE,)
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def clear_bench_feedback(home: Path) -> None:
    with sqlite3.connect(home / "animerec.sqlite") as connection:
        try:
            connection.execute("DELETE FROM feedback WHERE user_id >= ?", (BENCH_USER_BASE,))
        except sqlite3.OperationalError:
            pass


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="animerec home to serve (prepared when empty)")
    parser.add_argument("--data", default=None, help="folder with anime-2016/ (default: ../shared/data)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in flight at once")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per timed scenario")
    parser.add_argument("--mixed-requests", type=int, default=10_000, help="requests in the mixed run")
    parser.add_argument("--scenarios", default="user,history,mixed", help="comma-separated scenarios to run")
    parser.add_argument("--users", type=int, default=500, help="known users the user run rotates through (0: all)")
    parser.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto",
        help="load generator of the timed runs (auto: wrk when installed)",
    )
    parser.add_argument(
        "--user-cache", type=int, default=None,
        help="known users' answers each worker keeps (0: off; default: the server's)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--access-log", action="store_true", help="log every request (to results/server.log)")
    args = parser.parse_args()

    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    prepare_home(home, data_folder(args.data))
    users, titles, anime_ids = load_sample(home, args.seed, args.users)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk); use --client python")
    clear_bench_feedback(home)
    RESULTS.mkdir(parents=True, exist_ok=True)

    port = free_port()
    load_before = load_average()
    server = start_server(
        home, port, args.workers, RESULTS / "server.log", args.access_log, args.user_cache
    )
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load_before": load_before},
        "settings": {
            "workers": args.workers, "concurrency": args.concurrency, "duration_s": args.duration,
            "access_log": args.access_log, "client": client, "users": len(users),
            "user_cache": "server default" if args.user_cache is None else args.user_cache,
            "model": "als (default settings)", "data": "anime-2016",
        },
        "scenarios": [],
    }
    try:
        rng = random.Random(args.seed)
        scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
        # Warm-up: the first requests of each kind fill caches (masks, imports).
        asyncio.run(run_load(port, 4, user_requests(users, rng), 3.0, 200))
        asyncio.run(run_load(port, 4, history_requests(titles, rng), 3.0, 200))
        for name in scenarios:
            if name == "user" and client == "wrk":
                summary = run_wrk(port, args.concurrency, user_request_list(users), args.duration, name)
            elif name == "history" and client == "wrk":
                requests = history_request_list(titles, rng)
                summary = run_wrk(port, args.concurrency, requests, args.duration, name)
            elif name == "user":
                tally = asyncio.run(run_load(port, args.concurrency, user_requests(users, rng), args.duration, None))
            elif name == "history":
                tally = asyncio.run(run_load(port, args.concurrency, history_requests(titles, rng), args.duration, None))
            elif name == "mixed":
                maker = mixed_requests(users, titles, anime_ids, rng)
                tally = asyncio.run(run_load(port, args.concurrency, maker, 600.0, args.mixed_requests))
            else:
                sys.exit(f"unknown scenario {name!r}; choose from user, history, mixed")
            if name == "mixed" or client == "python":
                summary = summarize(name, tally)
                summary["client"] = "python"
            if name == "mixed":
                health, _ = asyncio.run(single_request(port, build_get("/health")))
                stored = count_bench_feedback(home)
                summary["server_errors_5xx"] = sum(v for k, v in tally.statuses.items() if k >= 500)
                summary["malformed_sent"] = sum(tally.by_kind.get("malformed", {}).values())
                summary["malformed_answered_4xx"] = sum(
                    v for k, v in tally.by_kind.get("malformed", {}).items() if 400 <= k < 500
                )
                summary["health_after"] = health
                summary["feedback_created"] = tally.feedback_created
                summary["feedback_rows_in_store"] = stored
            results["scenarios"].append(summary)
            print(json.dumps(summary, indent=2))
    finally:
        stop_server(server)
        results["machine"]["load_after"] = load_average()
        (RESULTS / "server.json").write_text(json.dumps(results, indent=2))

    print_table(results)
    mixed = next((s for s in results["scenarios"] if s["scenario"] == "mixed"), None)
    if mixed is not None:
        ok = (
            mixed["server_errors_5xx"] == 0
            and mixed["health_after"] == 200
            and mixed["feedback_created"] == mixed["feedback_rows_in_store"]
            and mixed["connection_errors"] == 0
        )
        print("mixed run checks:", "passed" if ok else "FAILED")
        if not ok:
            sys.exit(1)


def print_table(results: dict) -> None:
    print()
    print(f"load before: {results['machine']['load_before']}")
    print(f"load after:  {results['machine']['load_after']}")
    print()
    print("| scenario | client | requests | req/s | p50 ms | p95 ms | p99 ms | statuses |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for s in results["scenarios"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in s["statuses"].items())
        print(
            f"| {s['scenario']} | {s['client']} | {s['requests']} | {s['throughput_rps']} | {s['p50_ms']} | "
            f"{s['p95_ms']} | {s['p99_ms']} | {statuses} |"
        )


if __name__ == "__main__":
    main()
