"""Fold-in latency benchmark: one recommendation list for a new person with 20 liked titles.

The default model is trained once on the full-size synthetic data and loaded from its bundle,
as a server would. Each call recommends 10 anime for a different person (20 anime drawn by
popularity, each rated 7–10 or left unrated) through three paths, interleaved call by call:

- `RecommenderService.recommend_history` (title resolution, fold-in, ranking, reasons): the
  path the CLI and the HTTP API use, and the one the target applies to;
- `model.score_histories` + `Ranker.rank` alone, without the service's extras;
- peer, when the default model is ALS: `implicit`'s `recommend(..., recalculate_user=True)`
  on the same factors and one OpenMP thread, which solves the person's factor exactly
  (Cholesky) and takes the top 10. Building the person's confidence row is included.

All three paths run with BLAS on one thread: the service limits BLAS that way for its
single-person requests (more threads only add contention), and the other two paths get the
same limit. Target: median and 95th percentile of the service path at most 20 ms.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import _common

TARGET_MS = 20.0
HISTORY_LENGTH = 20
N = 10
WARMUP_CALLS = 5


def compare_worker(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import scipy.sparse as sp
    from threadpoolctl import ThreadpoolController

    from animerec.data.interactions import histories_to_interactions
    from animerec.ranking import RankingOptions
    from animerec.service import RecommenderService

    service = RecommenderService.open(
        home=params["home"], dataset=_common.DATASET_NAME, model=params["model"]
    )
    model = service.model
    assert model is not None and service.ranker is not None
    options = RankingOptions(n=N)
    n_calls = int(params["calls"])

    # People: 20 distinct anime each, drawn in proportion to how many users watched them.
    rng = np.random.default_rng(int(params["seed"]))
    popularity = np.asarray(service.dataset.interactions.user_items.getnnz(axis=0), dtype=np.float64)
    probabilities = popularity / popularity.sum()
    item_ids = model.items_.ids
    people = []
    for _ in range(n_calls + WARMUP_CALLS):
        chosen = rng.choice(item_ids.size, size=HISTORY_LENGTH, replace=False, p=probabilities)
        ratings = [None if rng.random() < 0.2 else float(rng.integers(7, 11)) for _ in chosen]
        people.append([(int(item_ids[i]), rating) for i, rating in zip(chosen, ratings)])

    def via_service(history) -> None:
        service.recommend_history(history, options)

    def via_model(history) -> None:
        histories = histories_to_interactions([history], model.items_, model.rating_scale_)
        scores = model.score_histories(histories)
        service.ranker.rank(scores, options, seen=histories.user_items)

    paths = {"service": via_service, "model + Ranker": via_model}

    if params["model"] == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        from animerec.models.als import confidence_weights

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            solver = AlternatingLeastSquares(
                factors=model.item_factors_.shape[1],
                regularization=model.config.regularization,
                alpha=model.config.alpha,
                # One person per call: with more OpenMP threads, implicit's per-call thread
                # start-up costs more than the solve (15 ms against 0.7 ms on 2 busy cores).
                num_threads=1,
            )
        solver.user_factors = model.user_factors_
        solver.item_factors = model.item_factors_

        def via_implicit(history) -> None:
            histories = histories_to_interactions([history], model.items_, model.rating_scale_)
            row = sp.csr_matrix(
                confidence_weights(histories, model.config.rating_weight, model.rating_scale_)
            )
            solver.recommend(0, row, N=N, recalculate_user=True, filter_already_liked_items=True)

        paths["implicit (peer)"] = via_implicit

    controller = ThreadpoolController()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for call, history in enumerate(people):
        for name, path in paths.items():
            started = time.perf_counter()
            if name == "service":
                path(history)  # the service sets its own BLAS limit
            else:
                with controller.limit(limits=1, user_api="blas"):
                    path(history)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if call >= WARMUP_CALLS:
                times[name].append(elapsed_ms)
    service.close()
    return {"times_ms": times, "calls": n_calls, "n_items": len(model.items_)}


WORKERS = {"compare": compare_worker}


def main() -> None:
    from animerec.models.registry import DEFAULT_MODEL

    args = _common.parse_args(__doc__.splitlines()[0], default_repeats=300)
    if _common.run_worker_main(args, WORKERS):
        return
    load_before = os.getloadavg()
    home = _common.prepared_home(args.scale, args.seed, args.threads, DEFAULT_MODEL)
    params = {"home": str(home), "model": DEFAULT_MODEL, "threads": args.threads,
              "calls": args.repeats, "seed": args.seed}
    result = _common.run_worker(__file__, "compare", params, args.threads)

    summary = {name: _common.summarize(values) for name, values in result["times_ms"].items()}
    ours = summary["service"]
    peer = summary.get("implicit (peer)")
    verdict = "met" if ours["median"] <= TARGET_MS and ours["p95"] <= TARGET_MS else "MISSED"
    rows = []
    for name, stats in summary.items():
        ratio = stats["median"] / peer["median"] if peer else float("nan")
        target = f"median and p95 <= {TARGET_MS:g} ms: {verdict}" if name == "service" else ""
        rows.append([name, stats["median"], stats["p95"], stats["max"], ratio, target])
    _common.print_table(
        f"Fold-in, {HISTORY_LENGTH} liked titles -> top {N}, {DEFAULT_MODEL} model, "
        f"{result['n_items']:,} items, {result['calls']} calls (scale {args.scale:g})",
        ["path", "median ms", "p95 ms", "max ms", "ratio", "target"],
        rows,
    )
    _common.write_results(
        "foldin", args, load_before,
        {"model": DEFAULT_MODEL, "summary": summary, "target_ms": TARGET_MS,
         "peak_rss_mib": result["peak_rss_mib"], "times_ms": result["times_ms"]},
    )


if __name__ == "__main__":
    main()
