"""Batch top-10 benchmark: a list for every user of the full-size data with the default model.

animerec side: a model loaded from its bundle scores users in chunks of
`SCORE_CHUNK_ROWS` (`model.score_users`), and `animerec.ranking.Ranker` ranks each chunk with
the default options (seen anime and adult titles excluded, ties broken by anime_id). Peer:
`implicit`'s own batch `recommend` (its C++ top-k, filtering seen items only) on the same
ALS factors, when the default model is ALS. Each side runs in its own subprocess so its peak
resident memory is measured. Target: every user's list in at most 60 s.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import _common

TARGET_SECONDS = 60.0
N = 10


def _load(home: str, model_name: str):
    from animerec.data.store import Store
    from animerec.models.base import load_model

    store = Store(os.path.join(home, "animerec.sqlite"))
    dataset = store.load_dataset(_common.DATASET_NAME)
    model = load_model(store.model_path(dataset.name, model_name))
    store.close()
    return dataset, model


def animerec_worker(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from animerec.models.base import SCORE_CHUNK_ROWS, iter_chunks
    from animerec.ranking import Ranker, RankingOptions

    dataset, model = _load(params["home"], params["model"])
    rss_before = _common.current_rss_mib()
    started = time.perf_counter()
    ranker = Ranker(dataset.catalog, model.items_)
    options = RankingOptions(n=N)
    user_items = dataset.interactions.user_items
    n_users = user_items.shape[0]
    lists = 0
    items_listed = 0
    for chunk in iter_chunks(n_users, SCORE_CHUNK_ROWS):
        user_idx = np.arange(chunk.start, chunk.stop)
        scores = model.score_users(user_idx)
        ranked = ranker.rank(scores, options, seen=user_items[chunk])
        lists += len(ranked)
        items_listed += sum(len(items) for items in ranked)
    seconds = time.perf_counter() - started
    return {
        "total_s": seconds,
        "users": n_users,
        "lists": lists,
        "items_listed": items_listed,
        "rss_before_mib": rss_before,
        "chunk_rows": SCORE_CHUNK_ROWS,
    }


def implicit_worker(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares

    dataset, model = _load(params["home"], params["model"])
    rss_before = _common.current_rss_mib()
    with warnings.catch_warnings():
        # implicit warns about OpenBLAS threads; scoring here uses BLAS like the animerec side.
        warnings.simplefilter("ignore", RuntimeWarning)
        solver = AlternatingLeastSquares(factors=model.item_factors_.shape[1], num_threads=int(params["threads"]))
    solver.user_factors = model.user_factors_
    solver.item_factors = model.item_factors_
    user_items = dataset.interactions.user_items
    started = time.perf_counter()
    ids, _ = solver.recommend(
        np.arange(user_items.shape[0]), user_items, N=N, filter_already_liked_items=True
    )
    seconds = time.perf_counter() - started
    return {"total_s": seconds, "users": int(ids.shape[0]), "lists": int(ids.shape[0]),
            "rss_before_mib": rss_before}


WORKERS = {"animerec": animerec_worker, "implicit": implicit_worker}


def main() -> None:
    from animerec.models.registry import DEFAULT_MODEL

    args = _common.parse_args(__doc__.splitlines()[0], default_repeats=3)
    if _common.run_worker_main(args, WORKERS):
        return
    load_before = os.getloadavg()
    home = _common.prepared_home(args.scale, args.seed, args.threads, DEFAULT_MODEL)
    params = {"home": str(home), "model": DEFAULT_MODEL, "threads": args.threads}
    sides = ["animerec"] + (["implicit"] if DEFAULT_MODEL == "als" else [])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        for name in sides:
            result = _common.run_worker(__file__, name, params, args.threads)
            print(f"  run {repeat + 1}/{args.repeats} {name}: {result['total_s']:.2f} s, "
                  f"peak RSS {result['peak_rss_mib']:,.0f} MiB", flush=True)
            runs[name].append(result)

    summary = {
        name: {
            "total_s": _common.summarize([r["total_s"] for r in results]),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "rss_before_mib": max(r["rss_before_mib"] for r in results),
        }
        for name, results in runs.items()
    }
    ours = summary["animerec"]
    users = runs["animerec"][0]["users"]
    verdict = "met" if ours["total_s"]["median"] <= TARGET_SECONDS else "MISSED"
    rows = [
        [f"animerec {DEFAULT_MODEL} score_users + Ranker", ours["total_s"]["median"],
         ours["total_s"]["min"], users / ours["total_s"]["median"], float("nan"),
         ours["peak_rss_mib"], ours["rss_before_mib"], f"<= {TARGET_SECONDS:g} s: {verdict}"],
    ]
    if "implicit" in summary:
        peer = summary["implicit"]
        rows[0][4] = ours["total_s"]["median"] / peer["total_s"]["median"]
        rows.append(["implicit recommend, batch (peer)", peer["total_s"]["median"], peer["total_s"]["min"],
                     users / peer["total_s"]["median"], 1.0, peer["peak_rss_mib"], peer["rss_before_mib"], ""])
    _common.print_table(
        f"Top-{N} for all {users:,} users (scale {args.scale:g}), {args.threads} threads, median of {args.repeats}",
        ["side", "median s", "min s", "users/s", "ratio", "peak RSS MiB", "RSS before MiB", "target"],
        rows,
    )
    _common.write_results(
        "topn", args, load_before,
        {"model": DEFAULT_MODEL, "summary": summary, "runs": runs, "target_s": TARGET_SECONDS},
    )


if __name__ == "__main__":
    main()
