"""Quality of the registered models on real data, side by side.

Usage: python benchmarks/quality.py [--models popular,itemknn,als,ease]
       [--protocol strong-generalization] [--seed 42] [--report DIR]
       [--format kaggle-2016] [--data DIR]

Loads the data with the loader of `--format` from `--data` (default: the format's folder
under ANIMEREC_TEST_DATA, else ../shared/data beside the repository), runs
`animerec.evaluation.runner.evaluate` with BLAS limited to `--threads` threads, prints a
table and writes the full result to benchmarks/results/quality-<protocol>-<time>.json.
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
# Folder of each format under the shared data root.
DEFAULT_FOLDERS = {"kaggle-2016": "anime-2016", "movielens-100k": "movielens-100k", "mal-2020": "anime-2020"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="popular,itemknn,als,ease",
                        help="comma-separated registered model names")
    parser.add_argument("--protocol", default="strong-generalization", choices=PROTOCOLS)
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and the bootstrap")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--report", default=None, help="folder for the HTML report")
    parser.add_argument("--format", default="kaggle-2016", help="data format (loader name)")
    parser.add_argument("--data", default=None, help="data folder (default: see above)")
    parser.add_argument("--n-folds", type=int, default=5, help="folds of rating-kfold")
    parser.add_argument("--fold-set", default="folds", help="metadata key of rating-predefined folds")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data_root = Path(os.environ.get("ANIMEREC_TEST_DATA", REPO.parent / "shared" / "data"))
    folder = Path(args.data) if args.data else data_root / DEFAULT_FOLDERS.get(args.format, "")
    if not folder.is_dir():
        print(f"data folder not found: {folder}; pass --data or set ANIMEREC_TEST_DATA", file=sys.stderr)
        return 2
    dataset, _ = load_format(args.format, folder)

    specs = [(name.strip(), {}) for name in args.models.split(",") if name.strip()]
    command = " ".join(["python", "benchmarks/quality.py", *sys.argv[1:]])
    with threadpool_limits(args.threads):
        result = evaluate(
            dataset, specs, protocol=args.protocol, seed=args.seed,
            n_bootstrap=args.bootstrap, n_folds=args.n_folds, fold_set=args.fold_set, report_dir=args.report,
            command=command,
        )

    names = result["metrics"]
    print("model".ljust(12) + "".join(name.rjust(16) for name in names[:8]) + "fit_s".rjust(9))
    for model, values in result["models"].items():
        if "skipped" in values:
            print(model.ljust(12) + "  " + values["skipped"])
            continue
        cells = "".join(_cell(values, name).rjust(16) for name in names[:8])
        fit = values["timing"]["fit_seconds"]
        print(model.ljust(12) + cells + f"{fit:9.1f}")

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = REPO / "benchmarks" / "results" / f"quality-{args.protocol}-{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1))
    print(f"result written to {target}")
    return 0


def _cell(values: dict, name: str) -> str:
    """Format one metric; rating metrics get their spread over folds."""
    value = values.get(name)
    text = "n/a" if value is None else f"{float(value):.4f}"
    spread = values.get(f"{name}_std")
    return f"{text} ± {spread:.4f}" if spread is not None else text


if __name__ == "__main__":
    raise SystemExit(main())
