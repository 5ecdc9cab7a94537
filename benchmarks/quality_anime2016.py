"""Top-n quality of the registered models on the real Kaggle 2016 sample, side by side.

Usage: python benchmarks/quality_anime2016.py [--models popular,itemknn,als,ease]
       [--protocol strong-generalization] [--seed 42] [--report DIR]

Reads anime.csv and rating.csv from ANIMEREC_TEST_DATA/anime-2016 (default:
../shared/data/anime-2016 beside the repository), runs `animerec.evaluation.runner.evaluate`
with BLAS limited to `--threads` threads, prints a table and writes the full result to
benchmarks/results/quality-<protocol>-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from threadpoolctl import threadpool_limits

from animerec.data.loaders import load_format
from animerec.evaluation.runner import PROTOCOLS, evaluate

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="popular,itemknn,als,ease",
                        help="comma-separated registered model names")
    parser.add_argument("--protocol", default="strong-generalization", choices=PROTOCOLS)
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and the bootstrap")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--report", default=None, help="folder for the HTML report")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data_root = Path(os.environ.get("ANIMEREC_TEST_DATA", REPO.parent / "shared" / "data"))
    folder = data_root / "anime-2016"
    if not (folder / "rating.csv").is_file():
        print(f"real data not found at {folder}; set ANIMEREC_TEST_DATA", file=sys.stderr)
        return 2
    dataset, _ = load_format("kaggle-2016", folder)

    specs = [(name.strip(), {}) for name in args.models.split(",") if name.strip()]
    command = " ".join(["python", "benchmarks/quality_anime2016.py", *sys.argv[1:]])
    with threadpool_limits(args.threads):
        result = evaluate(
            dataset, specs, protocol=args.protocol, seed=args.seed,
            n_bootstrap=args.bootstrap, report_dir=args.report, command=command,
        )

    names = result["metrics"]
    print("model".ljust(12) + "".join(name.rjust(16) for name in names[:8]) + "fit_s".rjust(9))
    for model, values in result["models"].items():
        if "skipped" in values:
            print(model.ljust(12) + "  " + values["skipped"])
            continue
        cells = "".join(_format(values.get(name)).rjust(16) for name in names[:8])
        fit = values["timing"]["fit_seconds"]
        print(model.ljust(12) + cells + f"{fit:9.1f}")

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = REPO / "benchmarks" / "results" / f"quality-{args.protocol}-{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1))
    print(f"result written to {target}")
    return 0


def _format(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
