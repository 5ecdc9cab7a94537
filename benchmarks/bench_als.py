"""ALS fit benchmark: animerec's ALS against the `implicit` library called directly.

Both sides fit 64 factors for 15 epochs with the same regularization, alpha and seed on the
same users × items confidence matrix (the one `animerec.models.als.confidence_weights`
builds from the synthetic full-size data), in one process, alternating sides. Both run
`implicit`'s CPU solver with BLAS limited to one thread and OpenMP on `--threads` threads,
the setting `implicit` recommends. animerec's time includes building the confidence matrix
and the untrained-item mask from the interactions. Target: animerec at most 1.2 × implicit.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import _common

TARGET_RATIO = 1.2
N_FACTORS = 64
EPOCHS = 15


def compare_worker(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from animerec.data.store import Store
    from animerec.models.als import ALSConfig, ALSRecommender, confidence_weights

    store = Store(os.path.join(params["home"], "animerec.sqlite"))
    dataset = store.load_dataset(_common.DATASET_NAME)
    store.close()
    threads = int(params["threads"])
    config = ALSConfig(n_factors=N_FACTORS, epochs=EPOCHS, num_threads=threads)
    weights = confidence_weights(dataset.interactions, config.rating_weight, dataset.interactions.rating_scale)

    def fit_animerec() -> float:
        started = time.perf_counter()
        ALSRecommender(config).fit(dataset)
        return time.perf_counter() - started

    def fit_implicit() -> float:
        started = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            solver = AlternatingLeastSquares(
                factors=N_FACTORS,
                regularization=config.regularization,
                alpha=config.alpha,
                iterations=EPOCHS,
                dtype=np.float32,
                num_threads=threads,
                random_state=np.random.default_rng(config.random_state),
            )
            solver.fit(weights, show_progress=False)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"animerec": [], "implicit": []}
    for repeat in range(int(params["repeats"])):
        # Alternate which side goes first so drift in machine load hits both equally.
        order = [("animerec", fit_animerec), ("implicit", fit_implicit)]
        if repeat % 2:
            order.reverse()
        for name, fit in order:
            seconds = fit()
            times[name].append(seconds)
            print(f"  run {repeat + 1} {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return {
        "times": times,
        "nnz": int(weights.nnz),
        "n_users": dataset.interactions.n_users,
        "n_items": dataset.interactions.n_items,
        "config": config.to_dict(),
    }


WORKERS = {"compare": compare_worker}


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0], default_repeats=5)
    if _common.run_worker_main(args, WORKERS):
        return
    load_before = os.getloadavg()
    home = _common.prepared_home(args.scale, args.seed, args.threads)
    params = {"home": str(home), "threads": args.threads, "repeats": args.repeats}
    result = _common.run_worker(__file__, "compare", params, args.threads)

    summary = {name: _common.summarize(values) for name, values in result["times"].items()}
    ratio = summary["animerec"]["median"] / summary["implicit"]["median"]
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    _common.print_table(
        f"ALS fit, {N_FACTORS} factors, {EPOCHS} epochs, {result['nnz']:,} pairs, "
        f"{result['n_users']:,} users × {result['n_items']:,} items, {args.threads} threads, "
        f"median of {args.repeats}",
        ["side", "median s", "min s", "max s", "ratio", "target"],
        [
            ["animerec ALSRecommender.fit", summary["animerec"]["median"], summary["animerec"]["min"],
             summary["animerec"]["max"], ratio, f"<= {TARGET_RATIO:g}x: {verdict}"],
            ["implicit AlternatingLeastSquares.fit (peer)", summary["implicit"]["median"],
             summary["implicit"]["min"], summary["implicit"]["max"], 1.0, ""],
        ],
    )
    _common.write_results(
        "als", args, load_before,
        {**result, "summary": summary, "ratio": ratio, "target_ratio": TARGET_RATIO,
         "peak_rss_mib": result["peak_rss_mib"]},
    )


if __name__ == "__main__":
    main()
