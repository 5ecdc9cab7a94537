"""Ingest benchmark: the Kaggle 2016 loader plus saving into the SQLite store, at full scale.

animerec side: `load_kaggle_2016` (parse and validate both CSVs, build the catalogue and both
interaction views, write the ingest report) followed by `Store.save_dataset` into a new
SQLite file. Peer: pandas `read_csv` of the same two files, which parses but validates and
builds nothing, so it is a floor rather than an equal. Target: ingest at most 30 s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

TARGET_SECONDS = 30.0


def ingest_worker(params: dict[str, Any]) -> dict[str, Any]:
    from animerec.data.loaders.kaggle2016 import load_kaggle_2016
    from animerec.data.store import Store

    folder = Path(params["folder"])
    scratch = Path(tempfile.mkdtemp(prefix="animerec-bench-ingest-"))
    try:
        started = time.perf_counter()
        dataset, report = load_kaggle_2016(folder, name=_common.DATASET_NAME)
        loaded = time.perf_counter()
        store = Store(scratch / "animerec.sqlite")
        store.save_dataset(dataset, report)
        store.close()
        saved = time.perf_counter()
        store_bytes = (scratch / "animerec.sqlite").stat().st_size
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "total_s": saved - started,
        "load_s": loaded - started,
        "save_s": saved - loaded,
        "rows": report.rows_read,
        "store_mib": store_bytes / 1024**2,
    }


def pandas_worker(params: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    folder = Path(params["folder"])
    started = time.perf_counter()
    anime = pd.read_csv(folder / "anime.csv")
    ratings = pd.read_csv(folder / "rating.csv")
    return {"total_s": time.perf_counter() - started, "rows": len(ratings), "anime": len(anime)}


WORKERS = {"animerec": ingest_worker, "pandas": pandas_worker}


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0], default_repeats=3)
    if _common.run_worker_main(args, WORKERS):
        return
    load_before = os.getloadavg()
    folder = _common.synthetic_folder(args.scale, args.seed)
    params = {"folder": str(folder)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKERS}
    for repeat in range(args.repeats):
        for name in WORKERS:
            result = _common.run_worker(__file__, name, params, args.threads)
            print(f"  run {repeat + 1}/{args.repeats} {name}: {result['total_s']:.2f} s, "
                  f"peak RSS {result['peak_rss_mib']:,.0f} MiB", flush=True)
            runs[name].append(result)

    summary = {
        name: {
            "total_s": _common.summarize([r["total_s"] for r in results]),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        }
        for name, results in runs.items()
    }
    animerec_median = summary["animerec"]["total_s"]["median"]
    pandas_median = summary["pandas"]["total_s"]["median"]
    load_median = _common.summarize([r["load_s"] for r in runs["animerec"]])["median"]
    save_median = _common.summarize([r["save_s"] for r in runs["animerec"]])["median"]
    rows = runs["animerec"][0]["rows"]
    _common.print_table(
        f"Ingest of {rows:,} rating rows (scale {args.scale:g}), median of {args.repeats}",
        ["side", "median s", "min s", "peak RSS MiB", "vs pandas", "target"],
        [
            ["animerec load + store save", animerec_median, summary["animerec"]["total_s"]["min"],
             summary["animerec"]["peak_rss_mib"], animerec_median / pandas_median,
             f"<= {TARGET_SECONDS:g} s: {'met' if animerec_median <= TARGET_SECONDS else 'MISSED'}"],
            ["  of which load_kaggle_2016", load_median, float("nan"), float("nan"), float("nan"), ""],
            ["  of which Store.save_dataset", save_median, float("nan"), float("nan"), float("nan"), ""],
            ["pandas read_csv (peer)", pandas_median, summary["pandas"]["total_s"]["min"],
             summary["pandas"]["peak_rss_mib"], 1.0, ""],
        ],
    )
    summary["animerec"]["load_s_median"] = load_median
    summary["animerec"]["save_s_median"] = save_median
    summary["ratio_animerec_to_pandas"] = animerec_median / pandas_median
    summary["target_s"] = TARGET_SECONDS
    summary["store_mib"] = runs["animerec"][0]["store_mib"]
    summary["runs"] = runs
    _common.write_results("ingest", args, load_before, summary)


if __name__ == "__main__":
    main()
