"""A self-contained HTML report of one evaluation result.

The page needs no network and no other file: charts are matplotlib PNGs embedded as base64
data URIs, and the exact settings and the command that reruns the evaluation are printed
in full. The result itself is written beside it as `result.json`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

from animerec.errors import ConfigError, install_hint

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
RESULT_FILE = "result.json"

# Accuracy metrics drawn side by side in the metric-by-model chart, when present.
ACCURACY_PREFIXES = ("ndcg@", "recall@", "precision@", "map@", "mrr@", "hit_rate@")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
.interval { color: #777; font-size: 0.8rem; }
.warning { background: #fff4ce; border: 1px solid #e0c050; padding: 0.5rem 1rem; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.85rem; }
img { max-width: 100%; }
.wide { overflow-x: auto; }
"""


def write_report(result: dict[str, Any], directory: str | Path) -> Path:
    """Write `report.html` and `result.json` for an `evaluate` result into `directory`
    (created when missing) and return the path of the HTML file."""
    if "models" not in result or "protocol" not in result:
        raise ConfigError("write_report needs a result of animerec.evaluation.runner.evaluate")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).write_text(json.dumps(result, indent=1, sort_keys=False))
    page = render_report(result)
    target = folder / REPORT_FILE
    staging = folder / f".{REPORT_FILE}.tmp"
    staging.write_text(page, encoding="utf-8")
    staging.replace(target)
    logger.info("evaluation report written to %s", target)
    return target


def render_report(result: dict[str, Any]) -> str:
    """Return the report page as an HTML string."""
    protocol = result["protocol"]
    dataset = result.get("dataset", {})
    title = f"Evaluation of {', '.join(result['models'])} on {dataset.get('name', 'a dataset')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        _summary(result),
        _site_aggregates_warning(result),
    ]
    if result.get("kind") == "rating":
        parts += _rating_sections(result)
    else:
        parts += _ranking_sections(result)
    parts += [
        "<h2>Rerun</h2>",
        f"<pre>{_text(result.get('command', ''))}</pre>",
        "<h2>Exact settings</h2>",
        f"<pre>{_text(json.dumps(_settings_view(result), indent=2))}</pre>",
        "<h2>Notes</h2><ul>",
        *(f"<li>{_text(note)}</li>" for note in protocol.get("notes", [])),
        "</ul></body></html>",
    ]
    return "\n".join(part for part in parts if part)


# --- page sections -----------------------------------------------------------------------


def _summary(result: dict[str, Any]) -> str:
    protocol = result["protocol"]
    dataset = result.get("dataset", {})
    rows = [
        ("dataset", f"{dataset.get('name')} ({dataset.get('format')}): "
         f"{dataset.get('n_users')} users, {dataset.get('n_items')} items, "
         f"{dataset.get('n_interactions')} interactions, {dataset.get('n_ratings')} ratings"),
        ("protocol", protocol.get("name")),
        ("seed", protocol.get("seed")),
        ("created", result.get("created")),
        ("animerec", result.get("library_version")),
    ]
    if "n_test_users" in protocol:
        rows.append(("test users", protocol["n_test_users"]))
    if "n_folds" in protocol:
        rows.append(("folds", protocol["n_folds"]))
    body = "".join(f"<tr><td>{_text(key)}</td><td>{_text(value)}</td></tr>" for key, value in rows)
    return f"<table>{body}</table>"


def _site_aggregates_warning(result: dict[str, Any]) -> str:
    users = result.get("site_aggregates_used_by") or []
    if not users:
        return ""
    return (
        '<p class="warning">Models using site-wide aggregates of the catalogue (mean score, '
        f"members) as features: {_text(', '.join(users))}. These aggregates were computed "
        "over all users of the site, test users included, so these models' numbers can be "
        "optimistic compared with the others.</p>"
    )


def _ranking_sections(result: dict[str, Any]) -> list[str]:
    metrics = result["metrics"]
    models = result["models"]
    protocol = result["protocol"]
    confidence = protocol.get("bootstrap", {}).get("confidence", 0.95)
    sections = [
        "<h2>Metrics</h2>",
        f"<p>Means over test users; brackets show the {confidence:.0%} bootstrap interval "
        f"over users ({protocol.get('bootstrap', {}).get('n_resamples')} resamples).</p>",
        _metric_table(models, metrics),
        _image(_accuracy_chart(models, metrics), "accuracy metrics by model"),
        "<h2>Popularity and the long tail</h2>",
        "<p>Share of the recommended slots (top k) per popularity group, next to the share of "
        "the targets. Candidate items are sorted by training watches and cut into groups that "
        "each hold the same share of all watches: group 1 is a few hit titles, the last group "
        "the long tail of many rarely watched ones.</p>",
        _image(_long_tail_chart(models, protocol), "recommendations by popularity group"),
        "<h2>By history length</h2>",
        "<p>History length is the number of fold-in items of a test user.</p>",
        _bucket_table(models, metrics),
        _image(_bucket_chart(models, metrics), "metric by history length"),
        "<h2>Timing</h2>",
        _timing_table(models),
    ]
    return sections


def _rating_sections(result: dict[str, Any]) -> list[str]:
    models = result["models"]
    header = "<tr><th>model</th><th>RMSE</th><th>MAE</th><th>folds</th><th>fit seconds</th></tr>"
    rows = []
    for name, values in models.items():
        if "skipped" in values:
            rows.append(f"<tr><td>{_text(name)}</td><td colspan=4>{_text(values['skipped'])}</td></tr>")
            continue
        rows.append(
            f"<tr><td>{_text(name)}</td><td>{_mean_std(values['rmse'], values.get('rmse_std'))}</td>"
            f"<td>{_mean_std(values['mae'], values.get('mae_std'))}</td>"
            f"<td>{len(values.get('folds', []))}</td>"
            f"<td>{_number(values.get('timing', {}).get('fit_seconds'), 2)}</td></tr>"
        )
    fold_rows = []
    for name, values in models.items():
        for number, fold in enumerate(values.get("folds", []), start=1):
            fold_rows.append(
                f"<tr><td>{_text(name)}</td><td>{_text(fold.get('name', number))}</td><td>{_number(fold['rmse'])}</td>"
                f"<td>{_number(fold['mae'])}</td><td>{fold['n_test']}</td></tr>"
            )
    return [
        "<h2>Rating prediction</h2>",
        "<p>Mean ± sample standard deviation over folds.</p>",
        f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>",
        _image(_rating_chart(models), "RMSE and MAE by model"),
        "<h2>Per fold</h2>",
        "<table><thead><tr><th>model</th><th>fold</th><th>RMSE</th><th>MAE</th>"
        f"<th>test ratings</th></tr></thead><tbody>{''.join(fold_rows)}</tbody></table>",
    ]


def _metric_table(models: dict[str, Any], metrics: list[str]) -> str:
    header = "".join(f"<th>{_text(metric)}</th>" for metric in metrics)
    rows = []
    for name, values in models.items():
        cells = []
        for metric in metrics:
            interval = values.get("ci", {}).get(metric)
            cell = _number(values.get(metric))
            if interval and None not in interval:
                cell += f'<br><span class="interval">[{_number(interval[0])}, {_number(interval[1])}]</span>'
            cells.append(f"<td>{cell}</td>")
        rows.append(f"<tr><td>{_text(name)}</td>{''.join(cells)}</tr>")
    table = f"<table><thead><tr><th>model</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _bucket_table(models: dict[str, Any], metrics: list[str]) -> str:
    shown = [metric for metric in metrics if metric.startswith(("ndcg@", "recall@", "hit_rate@"))]
    header = "".join(f"<th>{_text(metric)}</th>" for metric in shown)
    rows = []
    for name, values in models.items():
        for bucket, bucket_values in values.get("by_history_length", {}).items():
            cells = "".join(f"<td>{_number(bucket_values.get(metric))}</td>" for metric in shown)
            rows.append(
                f"<tr><td>{_text(name)}</td><td>{_text(bucket)}</td>"
                f"<td>{bucket_values.get('n_users', 0)}</td>{cells}</tr>"
            )
    return (
        "<table><thead><tr><th>model</th><th>history length</th><th>users</th>"
        f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _timing_table(models: dict[str, Any]) -> str:
    keys = sorted({key for values in models.values() for key in values.get("timing", {})})
    header = "".join(f"<th>{_text(key)}</th>" for key in keys)
    rows = []
    for name, values in models.items():
        timing = values.get("timing", {})
        cells = "".join(f"<td>{_number(timing.get(key), 3)}</td>" for key in keys)
        rows.append(f"<tr><td>{_text(name)}</td>{cells}</tr>")
    return f"<table><thead><tr><th>model</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _settings_view(result: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "protocol": {k: v for k, v in result["protocol"].items() if k != "target_popularity_profile"},
        "settings": result.get("settings"),
        "models": {
            name: {"model": values.get("model"), "params": values.get("params")}
            for name, values in result["models"].items()
        },
    }
    return view


# --- charts ------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise ConfigError(
            "the evaluation report draws its charts with matplotlib, which is not installed; "
            f"install it with {install_hint('eval')}"
        ) from err

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(encoded: str | None, description: str) -> str:
    if not encoded:
        return ""
    return f'<p><img alt="{_text(description)}" src="data:image/png;base64,{encoded}"></p>'


def _scored(models: dict[str, Any]) -> dict[str, Any]:
    return {name: values for name, values in models.items() if "skipped" not in values}


def _accuracy_chart(models: dict[str, Any], metrics: list[str]) -> str | None:
    shown = [metric for metric in metrics if metric.startswith(ACCURACY_PREFIXES)]
    models = _scored(models)
    if not shown or not models:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(models)
    for number, (name, values) in enumerate(models.items()):
        heights, low_errors, high_errors = [], [], []
        for metric in shown:
            value = values.get(metric) or 0.0
            low, high = values.get("ci", {}).get(metric) or (None, None)
            heights.append(value)
            # An undefined interval end draws no error bar on that side.
            low_errors.append(0.0 if low is None else max(value - low, 0.0))
            high_errors.append(0.0 if high is None else max(high - value, 0.0))
        positions = [index + number * width for index in range(len(shown))]
        axes.bar(positions, heights, width, label=name, yerr=[low_errors, high_errors], capsize=2)
    axes.set_xticks([index + 0.4 - width / 2 for index in range(len(shown))])
    axes.set_xticklabels(shown)
    axes.set_ylabel("mean over test users")
    axes.legend(fontsize="small")
    return _png(figure)


def _long_tail_chart(models: dict[str, Any], protocol: dict[str, Any]) -> str | None:
    models = _scored(models)
    profiles = {name: values.get("popularity_profile") for name, values in models.items()}
    profiles = {name: profile for name, profile in profiles.items() if profile}
    if not profiles:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    groups = list(range(1, len(next(iter(profiles.values()))) + 1))
    for name, profile in profiles.items():
        axes.plot(groups, profile, marker="o", label=name)
    target = protocol.get("target_popularity_profile")
    if target:
        axes.plot(groups, target, linestyle="--", color="black", label="targets")
    axes.set_xticks(groups)
    axes.set_xlabel("popularity group (equal shares of training watches; 1 = hits)")
    axes.set_ylabel("share of recommended slots")
    axes.legend(fontsize="small")
    return _png(figure)


def _bucket_chart(models: dict[str, Any], metrics: list[str]) -> str | None:
    models = _scored(models)
    metric = next((name for name in metrics if name.startswith("ndcg@")), None)
    if metric is None or not models:
        return None
    labels = list(dict.fromkeys(
        bucket for values in models.values() for bucket in values.get("by_history_length", {})
    ))
    if not labels:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(models)
    for number, (name, values) in enumerate(models.items()):
        buckets = values.get("by_history_length", {})
        heights = [(buckets.get(label, {}).get(metric) or 0.0) for label in labels]
        positions = [index + number * width for index in range(len(labels))]
        axes.bar(positions, heights, width, label=name)
    first = next(iter(models.values())).get("by_history_length", {})
    axes.set_xticks([index + 0.4 - width / 2 for index in range(len(labels))])
    axes.set_xticklabels(
        [f"{label}\n({first.get(label, {}).get('n_users', 0)} users)" for label in labels]
    )
    axes.set_xlabel("history length (fold-in items)")
    axes.set_ylabel(metric)
    axes.legend(fontsize="small")
    return _png(figure)


def _rating_chart(models: dict[str, Any]) -> str | None:
    models = _scored(models)
    if not models:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4))
    width = 0.38
    names = list(models)
    for offset, metric in ((0.0, "rmse"), (width, "mae")):
        heights = [models[name][metric] or 0.0 for name in names]
        errors = [models[name].get(f"{metric}_std") or 0.0 for name in names]
        positions = [index + offset for index in range(len(names))]
        axes.bar(positions, heights, width, yerr=errors, capsize=3, label=metric.upper())
    axes.set_xticks([index + width / 2 for index in range(len(names))])
    axes.set_xticklabels(names)
    axes.set_ylabel("error (rating points)")
    axes.legend(fontsize="small")
    return _png(figure)


# --- formatting --------------------------------------------------------------------------


def _text(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: object, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def _mean_std(mean: object, std: object) -> str:
    if std is None:
        return _number(mean)
    return f"{_number(mean)} ± {_number(std)}"
