"""Shared helpers of the benchmark scripts: data preparation, worker subprocesses, timing
statistics, the machine description and the results files.

Every script runs the measured work in worker subprocesses (the script itself with
`--worker NAME`). The operating system then reports each worker's peak resident memory
(`os.wait4` returns the child's `ru_maxrss`), and one measurement cannot warm caches or
leak memory into the next. Workers print one JSON object as their last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CACHE = RESULTS / "cache"
DATASET_NAME = "synthetic-kaggle-2016"
DEFAULT_SEED = 2016
# Both sides of every comparison get the same threads: all cores of the benchmark machine.
DEFAULT_THREADS = os.cpu_count() or 1

Worker = Callable[[dict[str, Any]], dict[str, Any]]


# --- command line ------------------------------------------------------------------------


def parse_args(description: str, default_repeats: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size of the synthetic data as a fraction of the full Kaggle 2016 data")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=default_repeats,
                        help="measurements per side (the median is reported)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="CPU threads for both sides of each comparison")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    return parser.parse_args()


def thread_environment(threads: int) -> dict[str, str]:
    """Return os.environ with OpenMP and BLAS thread counts set to `threads`."""
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = str(threads)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_worker_main(args: argparse.Namespace, workers: dict[str, Worker]) -> bool:
    """Run the worker named on the command line, if any, and print its JSON result.

    Returns True when this process was a worker (the caller then exits).
    """
    if args.worker is None:
        return False
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = workers[args.worker](json.loads(args.params))
    result["rss_at_end_mib"] = current_rss_mib()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return True


def run_worker(script: str, name: str, params: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run one worker subprocess; return its JSON result plus `peak_rss_mib` and `wall_s`."""
    command = [sys.executable, script, "--worker", name, "--params", json.dumps(params)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=thread_environment(threads), cwd=REPO)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"worker {name} failed with exit code {process.returncode}:\n{output[-2000:]}")
    result = json.loads(output.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["wall_s"] = wall
    return result


def current_rss_mib() -> float:
    """Return this process's resident memory now, in MiB (Linux only; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --- data --------------------------------------------------------------------------------


def synthetic_folder(scale: float, seed: int) -> Path:
    """Return a folder with the synthetic Kaggle 2016 CSVs, generating them when missing."""
    from animerec.data.synthetic import write_kaggle_2016

    folder = CACHE / f"kaggle2016-synthetic-scale{scale:g}-seed{seed}"
    marker = folder / "complete.json"
    if not marker.is_file():
        print(f"generating synthetic data (scale {scale:g}, seed {seed}) into {folder}", flush=True)
        started = time.perf_counter()
        write_kaggle_2016(folder, scale, random_state=seed)
        marker.write_text(json.dumps({"scale": scale, "seed": seed, "seconds": time.perf_counter() - started}))
    return folder


def prepared_home(scale: float, seed: int, threads: int, model_name: str | None = None) -> Path:
    """Return an animerec home whose store contains the synthetic data set and, when
    `model_name` is given, that model trained with its default parameters.

    The home is cached under benchmarks/results/cache and reused while its marker file exists.
    """
    folder = synthetic_folder(scale, seed)
    home = CACHE / f"home-scale{scale:g}-seed{seed}"
    marker = home / (f"trained-{model_name}.json" if model_name else "ingested.json")
    if marker.is_file():
        return home
    home.mkdir(parents=True, exist_ok=True)
    script = str(Path(__file__).resolve())
    params = {"folder": str(folder), "home": str(home), "model": model_name}
    print(f"preparing {home} (ingest, train {model_name or 'nothing'}; once)", flush=True)
    result = run_worker(script, "prepare", params, threads)
    marker.write_text(json.dumps(result))
    return home


def _prepare_worker(params: dict[str, Any]) -> dict[str, Any]:
    from animerec.data.loaders.kaggle2016 import load_kaggle_2016
    from animerec.data.store import Store
    from animerec.models.registry import create_model

    store = Store(Path(params["home"]) / "animerec.sqlite")
    try:
        names = {row["name"] for row in store.list_datasets()}
        if DATASET_NAME not in names:
            dataset, report = load_kaggle_2016(Path(params["folder"]), name=DATASET_NAME)
            store.save_dataset(dataset, report)
        if not params["model"]:
            return {}
        dataset = store.load_dataset(DATASET_NAME)
        model = create_model(params["model"])
        started = time.perf_counter()
        model.fit(dataset)
        fit_seconds = time.perf_counter() - started
        model.save(store.model_path(dataset.name, params["model"]))
    finally:
        store.close()
    return {"fit_s": fit_seconds}


# --- statistics and output ---------------------------------------------------------------


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p95": percentile(ordered, 95),
        "count": len(ordered),
    }


def percentile(values: list[float], percent: float) -> float:
    """Return a percentile by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * percent / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("animerec", "numpy", "scipy", "pandas", "pyarrow", "implicit"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[_format_cell(value) for value in row] for row in rows]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in range(len(header))]
    print()
    print(title)
    print("  ".join(name.ljust(widths[i]) for i, name in enumerate(header)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)))
    print()


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def write_results(benchmark: str, args: argparse.Namespace, load_before: tuple, results: dict[str, Any]) -> Path:
    """Write one JSON results file under benchmarks/results and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc)
    document = {
        "benchmark": benchmark,
        "date": stamp.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "settings": {"scale": args.scale, "seed": args.seed, "repeats": args.repeats, "threads": args.threads},
        "machine": machine_info(),
        "load_average_before": load_before,
        "versions": library_versions(),
        "results": results,
    }
    path = RESULTS / f"{benchmark}-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(document, indent=2, default=str))
    print(f"results written to {path.relative_to(REPO)}")
    print(f"load average before {tuple(round(v, 2) for v in load_before)}, after "
          f"{tuple(round(v, 2) for v in os.getloadavg())} ({os.cpu_count()} cores)")
    return path


if __name__ == "__main__":
    # This file is also the worker that prepares a cached home (see `prepared_home`).
    arguments = parse_args("internal worker of the benchmark helpers", 1)
    run_worker_main(arguments, {"prepare": _prepare_worker})
