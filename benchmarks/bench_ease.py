"""EASE fit benchmark: time and peak memory of fitting animerec's EASE at full scale.

Each fit runs in its own subprocess that first loads the synthetic data set from the store.
The operating system reports that process's peak resident memory, which includes the
loaded data. Peer: the textbook NumPy form of EASE (dense float64 XᵀX, `np.linalg.inv`,
B = −P / diag(P)) on the same trained items with the same λ, which is what most EASE code
does. Targets: animerec's fit at most 90 s and the process's peak at most 3 GiB.
"""

from __future__ import annotations

import os
import time
from typing import Any

import _common

TARGET_SECONDS = 90.0
TARGET_PEAK_MIB = 3 * 1024


def _load_dataset(home: str):
    from animerec.data.store import Store

    store = Store(os.path.join(home, "animerec.sqlite"))
    dataset = store.load_dataset(_common.DATASET_NAME)
    store.close()
    return dataset


def animerec_worker(params: dict[str, Any]) -> dict[str, Any]:
    from animerec.models.ease import EASERecommender

    dataset = _load_dataset(params["home"])
    rss_before = _common.current_rss_mib()
    model = EASERecommender()
    started = time.perf_counter()
    model.fit(dataset)
    seconds = time.perf_counter() - started
    return {
        "fit_s": seconds,
        "rss_before_fit_mib": rss_before,
        "n_trained_items": int(model.trained_idx_.size),
        "regularization": model.config.regularization,
    }


def numpy_worker(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from animerec.models.ease import EASEConfig

    dataset = _load_dataset(params["home"])
    rss_before = _common.current_rss_mib()
    regularization = EASEConfig().regularization
    started = time.perf_counter()
    user_items = dataset.interactions.user_items
    trained = np.flatnonzero(user_items.getnnz(axis=0) > 0)
    compact = user_items[:, trained].astype(np.float64)
    gram = (compact.T @ compact).toarray()
    gram[np.diag_indices_from(gram)] += regularization
    inverse = np.linalg.inv(gram)
    weights = inverse / (-np.diag(inverse))
    weights[np.diag_indices_from(weights)] = 0.0
    seconds = time.perf_counter() - started
    return {"fit_s": seconds, "rss_before_fit_mib": rss_before, "n_trained_items": int(trained.size)}


WORKERS = {"animerec": animerec_worker, "numpy": numpy_worker}


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0], default_repeats=2)
    if _common.run_worker_main(args, WORKERS):
        return
    load_before = os.getloadavg()
    home = _common.prepared_home(args.scale, args.seed, args.threads)
    params = {"home": str(home)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKERS}
    for repeat in range(args.repeats):
        for name in WORKERS:
            result = _common.run_worker(__file__, name, params, args.threads)
            print(f"  run {repeat + 1}/{args.repeats} {name}: fit {result['fit_s']:.2f} s, "
                  f"peak RSS {result['peak_rss_mib']:,.0f} MiB "
                  f"({result['rss_before_fit_mib']:,.0f} MiB before fit)", flush=True)
            runs[name].append(result)

    summary = {
        name: {
            "fit_s": _common.summarize([r["fit_s"] for r in results]),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "rss_before_fit_mib": max(r["rss_before_fit_mib"] for r in results),
        }
        for name, results in runs.items()
    }
    ours, peer = summary["animerec"], summary["numpy"]
    items = runs["animerec"][0]["n_trained_items"]
    time_verdict = "met" if ours["fit_s"]["median"] <= TARGET_SECONDS else "MISSED"
    memory_verdict = "met" if ours["peak_rss_mib"] <= TARGET_PEAK_MIB else "MISSED"
    _common.print_table(
        f"EASE fit on {items:,} trained items (scale {args.scale:g}), {args.threads} threads, "
        f"median of {args.repeats}",
        ["side", "median s", "min s", "ratio", "peak RSS MiB", "RSS before fit MiB", "targets"],
        [
            ["animerec EASERecommender.fit", ours["fit_s"]["median"], ours["fit_s"]["min"],
             ours["fit_s"]["median"] / peer["fit_s"]["median"], ours["peak_rss_mib"],
             ours["rss_before_fit_mib"],
             f"<= {TARGET_SECONDS:g} s: {time_verdict}; <= 3 GiB: {memory_verdict}"],
            ["textbook NumPy float64 (peer)", peer["fit_s"]["median"], peer["fit_s"]["min"], 1.0,
             peer["peak_rss_mib"], peer["rss_before_fit_mib"], ""],
        ],
    )
    _common.write_results(
        "ease", args, load_before,
        {"summary": summary, "runs": runs, "target_s": TARGET_SECONDS, "target_peak_mib": TARGET_PEAK_MIB},
    )


if __name__ == "__main__":
    main()
