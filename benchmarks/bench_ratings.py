"""Rating prediction: accuracy on MovieLens 100K's official folds and a speed/accuracy
comparison with Surprise SVD on the real Kaggle 2016 sample.

Usage: python benchmarks/bench_ratings.py [--part all|movielens|anime] [--models ...]
       [--peers surprise-svd,surprise-knnbaseline] [--seed 42] [--repeats 3] [--threads 1]

Part "movielens": `evaluate(..., protocol="rating-predefined")` on folds u1–u5 for every
model and peer, RMSE/MAE as mean ± sample std over folds, and the wall time of the whole
five-fold biasedmf run (split, five fits, five predictions; data loading timed apart).

Part "anime": one random 80/20 split of the rated rows of anime-2016 (rating_holdout_split
with `--seed`); biasedmf (defaults) and Surprise SVD (defaults, rating_scale (1, 10) from the
data) fit on the same training ratings in the same process, alternating order, `--repeats`
times; RMSE, MAE and the median fit time of each. BLAS is limited to `--threads` threads
(default 1, as Surprise is single-threaded).

Results go to benchmarks/results/ratings-<time>.json. No unit test asserts these times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, git_commit, library_versions, machine_info, print_table  # noqa: E402

from animerec.data.loaders import load_format  # noqa: E402
from animerec.evaluation import metrics as m  # noqa: E402
from animerec.evaluation.runner import evaluate  # noqa: E402
from animerec.evaluation.splits import rating_holdout_split  # noqa: E402
from animerec.models.registry import create_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATING_MODELS = "baseline,biasedmf,svdpp,itemknn-baseline"
DEFAULT_PEERS = "surprise-svd,surprise-svdpp,surprise-knnbaseline"


def data_root() -> Path:
    configured = os.environ.get("ANIMEREC_TEST_DATA", "").strip()
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def movielens_part(models: list[str], peers: list[str], seed: int) -> dict[str, Any]:
    folder = data_root() / "movielens-100k"
    started = time.perf_counter()
    dataset, _ = load_format("movielens-100k", folder)
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    biasedmf_only = evaluate(dataset, [("biasedmf", {})], "rating-predefined", seed=seed)
    biasedmf_seconds = time.perf_counter() - started

    result = evaluate(dataset, [(name, {}) for name in models + peers], "rating-predefined", seed=seed)
    rows = []
    for name, entry in result["models"].items():
        if "rmse" not in entry:
            rows.append([name, float("nan"), float("nan"), float("nan"), float("nan"), float("nan")])
            continue
        rows.append([
            name, f"{entry['rmse']:.4f}", f"{entry['rmse_std']:.4f}", f"{entry['mae']:.4f}",
            f"{entry['mae_std']:.4f}", entry["timing"]["fit_seconds"],
        ])
    print_table(
        "MovieLens 100K, official folds u1–u5 (mean and sample std over folds)",
        ["model", "RMSE", "± std", "MAE", "± std", "fit s (5 folds)"],
        rows,
    )
    print(f"whole 5-fold biasedmf run: {biasedmf_seconds:.2f} s (data loading apart: {load_seconds:.2f} s)")
    return {
        "models": result["models"],
        "protocol": result["protocol"],
        "biasedmf_5fold_seconds": round(biasedmf_seconds, 3),
        "biasedmf_5fold_rmse": biasedmf_only["models"]["biasedmf"]["rmse"],
        "load_seconds": round(load_seconds, 3),
    }


def _fit_and_score(name: str, fold, dataset) -> dict[str, float]:
    import dataclasses

    model = create_model(name)
    started = time.perf_counter()
    cpu_started = time.process_time()
    model.fit(dataclasses.replace(dataset, interactions=fold.train))
    fit_seconds = time.perf_counter() - started
    fit_cpu_seconds = time.process_time() - cpu_started
    started = time.perf_counter()
    predicted = np.asarray(model.predict_ratings(fold.user_idx, fold.item_idx), dtype=np.float64)
    predict_seconds = time.perf_counter() - started
    return {
        "rmse": m.rmse(predicted, fold.ratings),
        "mae": m.mae(predicted, fold.ratings),
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "predict_seconds": predict_seconds,
    }


def anime_part(seed: int, repeats: int) -> dict[str, Any]:
    dataset, _ = load_format("kaggle-2016", data_root() / "anime-2016")
    fold = rating_holdout_split(dataset.interactions, test_fraction=0.2, random_state=seed)
    sides = ["biasedmf", "surprise-svd"]
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for repeat in range(repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for side in order:
            runs[side].append(_fit_and_score(side, fold, dataset))
    summary = {}
    for side in sides:
        summary[side] = {
            "rmse": runs[side][0]["rmse"],
            "mae": runs[side][0]["mae"],
            "fit_seconds_median": statistics.median(run["fit_seconds"] for run in runs[side]),
            "fit_seconds": [round(run["fit_seconds"], 3) for run in runs[side]],
            "fit_cpu_seconds_median": statistics.median(run["fit_cpu_seconds"] for run in runs[side]),
            "predict_seconds_median": statistics.median(run["predict_seconds"] for run in runs[side]),
        }
    ours, peer = summary["biasedmf"], summary["surprise-svd"]
    comparison = {
        "speedup": peer["fit_seconds_median"] / ours["fit_seconds_median"],
        "cpu_speedup": peer["fit_cpu_seconds_median"] / ours["fit_cpu_seconds_median"],
        "rmse_reduction_percent": 100.0 * (peer["rmse"] - ours["rmse"]) / peer["rmse"],
    }
    print_table(
        f"anime-2016 sample, random 80/20 of {dataset.interactions.ratings.nnz:,} ratings (seed {seed}), "
        f"{repeats} fits per side",
        ["model", "RMSE", "MAE", "median fit s", "median fit CPU s", "predict s"],
        [[side, f"{summary[side]['rmse']:.4f}", f"{summary[side]['mae']:.4f}",
          summary[side]["fit_seconds_median"], summary[side]["fit_cpu_seconds_median"],
          summary[side]["predict_seconds_median"]] for side in sides],
    )
    # CPU time is reported beside wall time because other processes on a shared machine
    # stretch wall times unevenly; both sides run on one thread, so on an idle machine the
    # two agree.
    print(
        f"biasedmf fits {comparison['speedup']:.1f}× faster (wall) and "
        f"{comparison['cpu_speedup']:.1f}× faster (CPU) than Surprise SVD with "
        f"{comparison['rmse_reduction_percent']:.1f} % lower RMSE"
    )
    return {
        "n_train": int(fold.train.ratings.nnz),
        "n_test": int(fold.ratings.size),
        "rating_scale": list(dataset.interactions.rating_scale),
        "sides": summary,
        "comparison": comparison,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "movielens", "anime"], default="all")
    parser.add_argument("--models", default=RATING_MODELS, help="comma-separated rating models")
    parser.add_argument("--peers", default=DEFAULT_PEERS, help="comma-separated peers ('' for none)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="fits per side in the anime part")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for every model")
    args = parser.parse_args()

    if not data_root().is_dir():
        print(f"data folder {data_root()} not found; set ANIMEREC_TEST_DATA", file=sys.stderr)
        return 1
    models = [name for name in args.models.split(",") if name]
    peers = [name for name in args.peers.split(",") if name]
    output: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine_before": machine_info(),
        "versions": library_versions(),
        "commit": git_commit(),
        "threads": args.threads,
    }
    with threadpool_limits(limits=args.threads):
        if args.part in ("all", "movielens"):
            output["movielens"] = movielens_part(models, peers, args.seed)
        if args.part in ("all", "anime"):
            output["anime"] = anime_part(args.seed, args.repeats)
    output["load_average_after"] = os.getloadavg()

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"ratings-{stamp}.json"
    path.write_text(json.dumps(output, indent=2, default=float))
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
