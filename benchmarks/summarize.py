"""Print a Markdown table of the latest speed and memory results in benchmarks/results.

Usage: .venv/bin/python benchmarks/summarize.py

Reads the newest JSON file of each of bench_ingest, bench_als, bench_ease, bench_topn and
bench_foldin and prints one row per measured side, for pasting into benchmarks/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("ingest", "als", "ease", "topn", "foldin")


def latest(benchmark: str) -> dict[str, Any] | None:
    files = sorted(RESULTS.glob(f"{benchmark}-*.json"))
    return json.loads(files[-1].read_text()) if files else None


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def rows_for(benchmark: str, document: dict[str, Any]) -> list[list[str]]:
    results = document["results"]
    if benchmark == "ingest":
        ours, peer = results["animerec"], results["pandas"]
        return [
            ["ingest, load + store save", seconds(ours["total_s"]["median"]), seconds(ours["total_s"]["min"]),
             f"{results['ratio_animerec_to_pandas']:.1f}", f"{ours['peak_rss_mib']:,.0f} MiB", "≤ 30 s"],
            ["  pandas `read_csv` (peer)", seconds(peer["total_s"]["median"]), seconds(peer["total_s"]["min"]),
             "1", f"{peer['peak_rss_mib']:,.0f} MiB", ""],
        ]
    if benchmark == "als":
        ours, peer = results["summary"]["animerec"], results["summary"]["implicit"]
        return [
            ["ALS fit, 64 factors, 15 epochs", seconds(ours["median"]), seconds(ours["min"]),
             f"{results['ratio']:.2f} (min/min {ours['min'] / peer['min']:.2f})",
             f"{results['peak_rss_mib']:,.0f} MiB (both sides)", "ratio ≤ 1.2"],
            ["  `implicit` fit (peer)", seconds(peer["median"]), seconds(peer["min"]), "1", "", ""],
        ]
    if benchmark == "ease":
        ours, peer = results["summary"]["animerec"], results["summary"]["numpy"]
        ratio = ours["fit_s"]["median"] / peer["fit_s"]["median"]
        return [
            ["EASE fit", seconds(ours["fit_s"]["median"]), seconds(ours["fit_s"]["min"]), f"{ratio:.2f}",
             f"{ours['peak_rss_mib']:,.0f} MiB ({ours['rss_before_fit_mib']:,.0f} before fit)",
             "≤ 90 s, ≤ 3 GiB"],
            ["  textbook NumPy float64 (peer)", seconds(peer["fit_s"]["median"]), seconds(peer["fit_s"]["min"]),
             "1", f"{peer['peak_rss_mib']:,.0f} MiB", ""],
        ]
    if benchmark == "topn":
        ours = results["summary"]["animerec"]
        rows = [["top 10 for all 73,515 users", seconds(ours["total_s"]["median"]),
                 seconds(ours["total_s"]["min"]), "", f"{ours['peak_rss_mib']:,.0f} MiB", "≤ 60 s"]]
        peer = results["summary"].get("implicit")
        if peer:
            rows[0][3] = f"{ours['total_s']['median'] / peer['total_s']['median']:.2f}"
            rows.append(["  `implicit` batch `recommend` (peer)", seconds(peer["total_s"]["median"]),
                         seconds(peer["total_s"]["min"]), "1", f"{peer['peak_rss_mib']:,.0f} MiB", ""])
        return rows
    summary = results["summary"]
    peer = summary.get("implicit (peer)")
    rows = []
    for name, stats in summary.items():
        ratio = f"{stats['median'] / peer['median']:.2f}" if peer else ""
        label = {"service": "fold-in, 20 titles, `recommend_history`",
                 "model + Ranker": "  `score_histories` + `Ranker` only",
                 "implicit (peer)": "  `implicit` `recalculate_user` (peer)"}.get(name, name)
        rows.append([label, f"{stats['median']:.2f} ms", f"p95 {stats['p95']:.2f} ms", ratio,
                     f"{results['peak_rss_mib']:,.0f} MiB (all paths)" if name == "service" else "",
                     "median and p95 ≤ 20 ms" if name == "service" else ""])
    return rows


def main() -> None:
    header = ["measurement", "median", "min (p95 for latency)", "ratio to peer", "peak RSS", "target"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    notes = []
    for benchmark in BENCHMARKS:
        document = latest(benchmark)
        if document is None:
            continue
        for row in rows_for(benchmark, document):
            print("| " + " | ".join(row) + " |")
        load = ", ".join(f"{value:.1f}" for value in document["load_average_before"])
        notes.append(f"{benchmark}: {document['date']}, commit {document['commit']}, "
                     f"{document['settings']['repeats']} repeats, load average before {load}")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
