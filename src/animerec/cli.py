"""The `animerec` command line: ingest data, train models, recommend, search and evaluate.

A thin layer over `animerec.service`, `animerec.data` and `animerec.evaluation`: each
command parses its options, calls the library and prints the result as a Rich table or, with
`--json`, as JSON on stdout. Progress and logs go to stderr. Every error animerec raises on
purpose ends the command with exit code 1 and one line on stderr; bad usage exits with 2.

Importing this module does no work beyond building the argument parser: numpy, pandas and the
models are imported inside the commands that need them.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import math
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional, TypeVar

import typer

from animerec.errors import AnimerecError, ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from animerec.ranking import RankingOptions
    from animerec.service import RecommenderService

logger = logging.getLogger("animerec.cli")

# Recent Typer releases vendor Click as typer._click and older ones import the click
# package, so take the exception classes from wherever this Typer's BadParameter lives.
_click_exceptions = sys.modules[typer.BadParameter.__module__]
ClickException: type[Exception] = _click_exceptions.ClickException
UsageError: type[Exception] = _click_exceptions.UsageError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_EVALUATE_MODELS = "popular,itemknn,als,ease"

app = typer.Typer(
    name="animerec",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# --- global options ------------------------------------------------------------------------


@dataclass
class GlobalOptions:
    """Options given before the command name, shared by every command."""

    home: Path | None = None
    dataset: str | None = None
    verbose: int = 0


def _version_callback(value: bool) -> None:
    if value:
        from animerec import __version__

        typer.echo(f"animerec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[
        Optional[Path],
        typer.Option(
            "--home",
            envvar="ANIMEREC_HOME",
            help="Folder for the store and trained models (default: the platform's user data folder).",
            show_envvar=True,
        ),
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option("--dataset", help="Dataset name to use (default: the most recently ingested)."),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="Log more: -v for steps, -vv for debugging."),
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Anime recommendations from what people watched and rated.

    Start with `animerec ingest kaggle-2016 DATA_DIR`, then `animerec train als`, then
    `animerec recommend --liked "Cowboy Bebop" --liked "Monster" --liked "Steins;Gate"`.
    """
    ctx.obj = GlobalOptions(home=home, dataset=dataset, verbose=verbose)
    configure_logging(verbose)


def configure_logging(verbose: int) -> None:
    """Send log records to stderr: warnings by default, steps with -v, everything with -vv."""
    if verbose <= 0:
        level = logging.WARNING
    elif verbose == 1:
        level = logging.INFO
    else:
        level = logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_animerec_cli", False):
            root.removeHandler(handler)
    if verbose > 0:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=_stderr_console(), show_path=verbose > 1, rich_tracebacks=False
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler._animerec_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def _globals(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


# --- error handling and output -------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print one error line on stderr and return the `typer.Exit` to raise."""
    one_line = " ".join(str(message).split())
    typer.echo(f"error: {one_line}", err=True)
    return typer.Exit(code)


def guarded(command: F) -> F:
    """Turn errors raised inside a command into one line on stderr and a non-zero exit.

    Tracebacks appear only for unexpected errors and only with -vv.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except BrokenPipeError:
            raise  # the reader of stdout went away (`| head`); main() exits quietly
        except AnimerecError as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except OSError as err:
            raise fail(f"{err.strerror or err}: {err.filename or ''}".rstrip(": ")) from None
        except Exception as err:  # a bug: keep the one-line promise, show details on request
            verbose = logging.getLogger().level <= logging.DEBUG
            if verbose:
                traceback.print_exc(file=sys.stderr)
            hint = "" if verbose else " (run with -vv for the traceback)"
            raise fail(f"unexpected {type(err).__name__}: {err}{hint}") from None

    return wrapper  # type: ignore[return-value]


# Output width when stdout is not a terminal; Rich would otherwise fold tables at 80 columns.
PIPE_WIDTH = 140


def _stdout_console() -> "Console":
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=PIPE_WIDTH)
    return console


def _stderr_console() -> "Console":
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def progress(message: str) -> Iterator[Callable[[str], None]]:
    """Show a spinner with `message` on stderr and yield a function that updates it.

    When stderr is not a terminal (a log file, CI), the steps are logged at INFO level
    instead, so they appear with -v and a failing command still writes one line.
    """
    console = _stderr_console()
    if not console.is_terminal:
        logger.info("%s", message)
        yield lambda step: logger.info("  %s", step)
        return
    with console.status(message) as status:
        yield lambda step: status.update(f"{message} {step}")


def print_json(value: Any) -> None:
    """Write `value` as indented JSON on stdout (NaN and infinities become null)."""
    typer.echo(json.dumps(_json_safe(value), indent=2, ensure_ascii=False))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_results(results: list[dict], caption: str) -> None:
    """Print anime results (recommendations, similar anime, search hits) as a table."""
    from rich.table import Table
    from rich.text import Text

    console = _stdout_console()
    if not results:
        console.print(f"{caption}: nothing matched.", markup=False)
        return
    table = Table(title=caption, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("anime_id", justify="right")
    table.add_column("title", overflow="fold")
    table.add_column("type")
    table.add_column("eps", justify="right")
    table.add_column("genres", overflow="ellipsis", no_wrap=True, max_width=32)
    table.add_column("score", justify="right")
    with_reasons = any(row.get("reasons") for row in results)
    if with_reasons:
        table.add_column("why", overflow="fold")
    for position, row in enumerate(results, start=1):
        cells = [
            Text(str(row.get("rank") or position)),
            Text(str(row["anime_id"])),
            Text(html.unescape(str(row.get("title") or ""))),
            Text(str(row.get("type") or "")),
            Text("" if row.get("episodes") is None else str(row["episodes"])),
            Text(", ".join(row.get("genres") or [])),
            Text(_format_score(row.get("score"))),
        ]
        if with_reasons:
            cells.append(Text(html.unescape("; ".join(row.get("reasons") or []))))
        table.add_row(*cells)
    console.print(table)


def _format_score(score: Any) -> str:
    if score is None or (isinstance(score, float) and not math.isfinite(score)):
        return ""
    return f"{float(score):.4g}"


def print_records(records: list[dict], columns: list[str], caption: str) -> None:
    """Print a list of flat records as a table with the given columns."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=caption, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(*(Text(_format_cell(record.get(column))) for column in columns))
    _stdout_console().print(table)


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return _format_score(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={_format_cell(item)}" for key, item in value.items())
    return str(value)


def parse_assignments(values: list[str] | None, option: str) -> dict[str, str]:
    """Parse repeated NAME=VALUE options into a dict; later values win."""
    parsed: dict[str, str] = {}
    for value in values or []:
        name, separator, setting = value.partition("=")
        if not separator or not name.strip():
            raise ConfigError(f"{option} needs NAME=VALUE, got {value!r}")
        parsed[name.strip()] = setting.strip()
    return parsed


# --- shared option types -------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
CountOption = Annotated[int, typer.Option("-n", "--n", min=1, max=1000, help="Number of results.")]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="Trained model to use (default: als when trained, else the most recently trained).",
    ),
]
IncludeAdultOption = Annotated[
    bool, typer.Option("--include-adult", help="Allow adult titles (genre Hentai), excluded by default.")
]


def open_service(
    ctx: typer.Context,
    model: str | None,
    *,
    with_model: bool = True,
    franchises: Path | None = None,
) -> "RecommenderService":
    """Open the service for the global --home and --dataset with a spinner on stderr."""
    from animerec.service import RecommenderService

    options = _globals(ctx)
    if not with_model:
        loading = "dataset"
    else:
        loading = f"dataset and model {model}" if model else "dataset and model"
    with progress(f"Loading {loading}…"):
        return RecommenderService.open(
            options.home, options.dataset, model, with_model=with_model, franchises=franchises
        )


def open_store(ctx: typer.Context):
    """Open the store under the global --home."""
    from animerec.service import open_store as open_service_store

    return open_service_store(_globals(ctx).home)


# --- ingest --------------------------------------------------------------------------------


@app.command()
@guarded
def ingest(
    ctx: typer.Context,
    format_name: Annotated[
        str,
        typer.Argument(
            metavar="FORMAT",
            help="Source format, for example kaggle-2016 (`animerec datasets --formats` lists all).",
        ),
    ],
    directory: Annotated[
        Optional[str],
        typer.Argument(
            metavar="[DIR]",
            help="Folder with the source files (default: $ANIMEREC_DATA).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        Optional[str], typer.Option("--name", help="Dataset name (default: the format name).")
    ] = None,
    unknown_anime: Annotated[
        str,
        typer.Option(
            "--unknown-anime",
            metavar="[drop|error]",
            help="Ratings of anime missing from the catalogue: drop (counted in the report) or error.",
        ),
    ] = "drop",
    json_output: JsonOption = False,
) -> None:
    """Read source files into the store under a dataset name, and print what was used."""
    from animerec.config import resolve_data_dir
    from animerec.data.loaders import format_names, load_format

    if unknown_anime not in ("drop", "error"):
        raise ConfigError(f"--unknown-anime must be drop or error, got {unknown_anime!r}")
    formats = format_names()
    if format_name not in formats:
        raise ConfigError(f"unknown format {format_name!r}; known formats: {', '.join(formats)}")
    data_dir = resolve_data_dir(directory)

    store = open_store(ctx)
    try:
        with progress(f"Ingesting {format_name} from {data_dir}…") as step:
            dataset, report = load_format(
                format_name, data_dir, name=name, unknown_anime=unknown_anime, progress=step
            )
            step("saving to the store")
            store.save_dataset(dataset, report)
    finally:
        store.close()

    if json_output:
        print_json(report.to_dict())
        return
    for line in report.summary_lines():
        typer.echo(line)
    typer.echo(f"Saved dataset {dataset.name!r}. Next: `animerec train als`.")


# --- train ---------------------------------------------------------------------------------


@app.command()
@guarded
def train(
    ctx: typer.Context,
    model_name: Annotated[str, typer.Argument(metavar="MODEL", help="Registered model (see `animerec models`).")],
    settings: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="NAME=VALUE", help="Model parameter, repeatable (e.g. --set n_factors=128)."),
    ] = None,
    no_tuned: Annotated[
        bool,
        typer.Option(
            "--no-tuned",
            help="Ignore parameters saved by `animerec tune` for this model and dataset (used by default).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Train a model on the dataset and save it for `recommend` and `similar`."""
    from animerec.models.registry import create_model

    params = parse_assignments(settings, "--set")
    model = create_model(model_name, **params)  # validates the name and parameters first
    options = _globals(ctx)

    store = open_store(ctx)
    try:
        with progress("Loading dataset…"):
            from animerec.service import load_dataset_cached

            dataset = load_dataset_cached(store, options.dataset)
        if not no_tuned:
            from animerec.evaluation.tuning import load_tuned_params

            tuned = load_tuned_params(dataset.name, model_name, options.home)
            if tuned is not None:
                typer.echo(f"Using the parameters saved by `animerec tune {model_name}` (--no-tuned ignores them).", err=True)
                # --set values win over tuned ones.
                model = create_model(model_name, **{**tuned, **params})
                logger.info("using tuned parameters for %s on %s: %s", model_name, dataset.name, tuned)
        with progress(f"Training {model_name} on {dataset.name}…"):
            started = time.perf_counter()
            model.fit(dataset)
            fit_seconds = time.perf_counter() - started
            path = model.save(store.model_path(dataset.name, model_name))
    finally:
        store.close()

    summary = {
        "model": model_name,
        "dataset": dataset.name,
        "parameters": model.config.to_dict(),
        "fit_seconds": round(fit_seconds, 3),
        "n_users": dataset.interactions.n_users,
        "n_items": dataset.interactions.n_items,
        "path": str(path),
    }
    if json_output:
        print_json(summary)
        return
    typer.echo(
        f"Trained {model_name} on {dataset.name!r} ({summary['n_users']:,} users, "
        f"{summary['n_items']:,} anime) in {fit_seconds:.1f} s; saved to {path}"
    )


# --- recommend, similar, search ------------------------------------------------------------


def ranking_options(
    n: int,
    genres: list[str] | None,
    exclude_genres: list[str] | None,
    types: list[str] | None,
    include_adult: bool,
    **extra: Any,
) -> "RankingOptions":
    """Build the ranking options shared by the listing commands."""
    from animerec.ranking import RankingOptions

    return RankingOptions(
        n=n,
        include_adult=include_adult,
        genres=tuple(genres or ()),
        exclude_genres=tuple(exclude_genres or ()),
        types=tuple(types or ()),
        **extra,
    )


@app.command()
@guarded
def recommend(
    ctx: typer.Context,
    user: Annotated[
        Optional[int], typer.Option("--user", metavar="USER_ID", help="A user_id of the dataset.")
    ] = None,
    liked: Annotated[
        Optional[list[str]],
        typer.Option(
            "--liked",
            metavar="TITLE",
            help="An anime the person liked, as an anime_id or a title; repeatable.",
        ),
    ] = None,
    n: CountOption = 10,
    model: ModelOption = None,
    genre: Annotated[
        Optional[list[str]], typer.Option("--genre", help="Keep anime with this genre; repeatable (any of them).")
    ] = None,
    exclude_genre: Annotated[
        Optional[list[str]], typer.Option("--exclude-genre", help="Drop anime with this genre; repeatable.")
    ] = None,
    type_: Annotated[
        Optional[list[str]], typer.Option("--type", help="Keep anime of this type (TV, Movie, OVA, ...); repeatable.")
    ] = None,
    include_adult: IncludeAdultOption = False,
    mal_export: Annotated[
        Optional[Path],
        typer.Option(
            "--mal-export",
            metavar="FILE",
            help="A MyAnimeList anime list export (.xml or .xml.gz) of the person.",
        ),
    ] = None,
    collapse: Annotated[
        bool,
        typer.Option(
            "--collapse/--no-collapse",
            help="Show at most one title per franchise, the first entry not yet seen.",
        ),
    ] = True,
    franchises: Annotated[
        Optional[Path],
        typer.Option(
            "--franchises",
            metavar="FILE",
            help='Franchise groups as JSON [{"name": ..., "ids": [...]}]; default: from titles.',
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Recommend anime for a user of the dataset (--user) or for a new person (--liked or
    --mal-export)."""
    if sum((user is not None, bool(liked), mal_export is not None)) != 1:
        raise ConfigError(
            "give exactly one of --user USER_ID, --liked TITLE (repeatable) or --mal-export FILE"
        )
    options = ranking_options(n, genre, exclude_genre, type_, include_adult, collapse_franchises=collapse)
    export = None
    if mal_export is not None:
        from animerec.data.malexport import read_mal_export

        export = read_mal_export(mal_export)
    service = open_service(ctx, model, franchises=franchises)
    with service:
        if user is not None:
            results = service.recommend_user(user, options)
            caption = f"Recommendations for user {user} ({service.model.name})"
        elif export is not None:
            results = service.recommend_export(export, options)
            owner = f" of {export.user_name}" if export.user_name else ""
            caption = f"Recommendations from the list{owner} ({service.model.name})"
        else:
            history = [(title, None) for title in liked or []]
            results = service.recommend_history(history, options)
            caption = f"Recommendations for a person who liked {len(history)} anime ({service.model.name})"
    if json_output:
        print_json(results)
    else:
        print_results(results, caption)


@app.command()
@guarded
def similar(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(metavar="TITLE", help="An anime_id or a title.")],
    n: CountOption = 10,
    model: ModelOption = None,
    include_adult: IncludeAdultOption = False,
    json_output: JsonOption = False,
) -> None:
    """List the anime most similar to one anime under a trained model."""
    service = open_service(ctx, model)
    with service:
        results = service.similar(title, n=n, include_adult=include_adult)
        anime_id = service.resolve(title)
        caption = f"Similar to {html.unescape(service.catalog.title(anime_id))} ({service.model.name})"
    if json_output:
        print_json(results)
    else:
        print_results(results, caption)


@app.command()
@guarded
def search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="Part of a title.")],
    n: CountOption = 10,
    json_output: JsonOption = False,
) -> None:
    """Find anime by title; score is the catalogue's mean user score."""
    service = open_service(ctx, None, with_model=False)
    with service:
        results = service.search(text, n=n)
    if json_output:
        print_json(results)
    else:
        print_results(results, f"Titles matching {text!r}")


# --- models and datasets -------------------------------------------------------------------


@app.command()
@guarded
def models(json_output: JsonOption = False) -> None:
    """List the registered models: feedback used and parameters with defaults."""
    from animerec.models.registry import DEFAULT_MODEL, describe_models

    rows = describe_models()
    for row in rows:
        row["default"] = row["name"] == DEFAULT_MODEL
    if json_output:
        print_json(rows)
        return
    print_records(rows, ["name", "feedback", "parameters", "description"], "Registered models")


@app.command()
@guarded
def datasets(
    ctx: typer.Context,
    formats: Annotated[bool, typer.Option("--formats", help="List the formats `ingest` reads instead.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List the datasets in the store (the most recently ingested one is the default)."""
    if formats:
        from animerec.data.loaders import format_names

        rows = [{"format": name} for name in format_names()]
        if json_output:
            print_json(rows)
        else:
            print_records(rows, ["format"], "Formats `animerec ingest` reads")
        return

    store = open_store(ctx)
    try:
        rows = store.list_datasets()
    finally:
        store.close()
    if json_output:
        print_json(rows)
        return
    if not rows:
        _stdout_console().print("No datasets yet: run `animerec ingest kaggle-2016 DIR`.", markup=False)
        return
    preferred = ["name", "format", "n_users", "n_items", "n_interactions", "n_ratings", "ingested_at", "current"]
    present = list(dict.fromkeys(key for row in rows for key in row))
    columns = [key for key in preferred if key in present] + [key for key in present if key not in preferred]
    print_records(rows, columns, "Datasets (current: the default for other commands)")


# --- evaluate ------------------------------------------------------------------------------


def parse_model_settings(values: list[str] | None, model_names: list[str]) -> dict[str, dict[str, str]]:
    """Parse repeated MODEL.PARAM=VALUE options into {model: {param: value}}."""
    per_model: dict[str, dict[str, str]] = {name: {} for name in model_names}
    for key, value in parse_assignments(values, "--set").items():
        model_name, dot, param = key.partition(".")
        if not dot or not param:
            raise ConfigError(f"--set needs MODEL.PARAM=VALUE, got {key}={value}")
        if model_name not in per_model:
            raise ConfigError(
                f"--set names model {model_name!r}, which is not in --models ({', '.join(model_names)})"
            )
        per_model[model_name][param] = value
    return per_model


@app.command()
@guarded
def evaluate(
    ctx: typer.Context,
    model_list: Annotated[
        str, typer.Option("--models", help="Comma-separated models to compare.")
    ] = DEFAULT_EVALUATE_MODELS,
    protocol: Annotated[
        Optional[str], typer.Option(
            "--protocol",
            help=(
                "Evaluation protocol: strong-generalization (default), user-holdout, leave-k-out, "
                "temporal, temporal-global, rating-holdout, rating-kfold or rating-predefined."
            ),
        )
    ] = None,
    split_dir: Annotated[
        Optional[Path], typer.Option("--split-dir", help="Folder to save the split to, or to reuse it from.")
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed of the split.")] = None,
    test_users: Annotated[
        Optional[float],
        typer.Option("--test-users", help="Held-out test users: a fraction (<1) or a count."),
    ] = None,
    settings: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="MODEL.PARAM=VALUE", help="Model parameter, repeatable (e.g. --set als.n_factors=32)."),
    ] = None,
    k: Annotated[Optional[int], typer.Option("-k", "--k", min=1, help="Cut-off of the top-n metrics (default: 10).")] = None,
    recall_k: Annotated[
        Optional[int], typer.Option("--recall-k", min=1, help="Second cut-off for recall (default: 20).")
    ] = None,
    fold_in_fraction: Annotated[
        Optional[float],
        typer.Option("--fold-in-fraction", help="Share of a test user's history folded in; the rest is the target."),
    ] = None,
    test_fraction: Annotated[
        Optional[float],
        typer.Option(
            "--test-fraction",
            help="Share held out per user (user-holdout, temporal), of all interactions (temporal-global) or of all ratings.",
        ),
    ] = None,
    cut_time: Annotated[
        Optional[str],
        typer.Option(
            "--cut-time",
            help="Temporal-global: train on interactions before this time, Unix seconds or an ISO 8601 date (UTC), e.g. 1998-03-01.",
        ),
    ] = None,
    min_history: Annotated[
        Optional[int],
        typer.Option(
            "--min-history", min=2,
            help="Users with fewer interactions are not tested (default: 2 for strong-generalization, else 5).",
        ),
    ] = None,
    fold_in_max: Annotated[
        Optional[int],
        typer.Option(
            "--fold-in-max", min=1,
            help="Strong-generalization: fold in at most this many titles per test user, the rest is the target (\"given N\").",
        ),
    ] = None,
    leave_k: Annotated[Optional[int], typer.Option("--leave-k", min=1, help="Targets per user in leave-k-out.")] = None,
    n_folds: Annotated[Optional[int], typer.Option("--n-folds", min=2, help="Folds of rating-kfold.")] = None,
    n_bootstrap: Annotated[
        Optional[int], typer.Option("--bootstrap", min=0, help="Bootstrap resamples for confidence intervals.")
    ] = None,
    include_adult: Annotated[
        bool, typer.Option("--include-adult", help="Let lists contain adult titles (genre Hentai).")
    ] = False,
    report_dir: Annotated[
        Optional[Path], typer.Option("--report", metavar="DIR", help="Also write an HTML report into DIR.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Compare models offline on one split with ranking or rating metrics."""
    from animerec.evaluation import runner
    from animerec.models.registry import get_model_class

    names = [name.strip() for name in model_list.split(",") if name.strip()]
    if not names:
        raise ConfigError("--models is empty: name at least one model")
    for name in names:
        get_model_class(name)
    per_model = parse_model_settings(settings, names)
    specs = [(name, per_model[name]) for name in names]

    # Options left unset fall back to the runner's own defaults.
    if test_users is not None and test_users >= 1:
        if not float(test_users).is_integer():
            raise ConfigError(f"--test-users must be a fraction below 1 or a whole count, got {test_users}")
        test_users = int(test_users)
    forwarded = {
        "protocol": protocol,
        "split_dir": split_dir,
        "seed": seed,
        "test_users": test_users,
        "k": k,
        "recall_k": recall_k,
        "fold_in_fraction": fold_in_fraction,
        "test_fraction": test_fraction,
        "cut_time": cut_time,
        "min_history": min_history,
        "fold_in_max": fold_in_max,
        "leave_k": leave_k,
        "n_folds": n_folds,
        "n_bootstrap": n_bootstrap,
        "include_adult": include_adult or None,
        "report_dir": report_dir,
    }
    forwarded = {key: value for key, value in forwarded.items() if value is not None}

    options = _globals(ctx)
    store = open_store(ctx)
    try:
        from animerec.service import load_dataset_cached

        with progress("Loading dataset…"):
            dataset = load_dataset_cached(store, options.dataset)
    finally:
        store.close()
    with progress(f"Evaluating {', '.join(names)} on {dataset.name}…") as step:
        result = runner.evaluate(dataset, specs, progress=step, **forwarded)

    if json_output:
        print_json(result)
        return
    print_evaluation(result)
    if report_dir is not None:
        typer.echo(f"Report written to {report_dir}")


def print_evaluation(result: dict) -> None:
    """Print an evaluation result: one row per model, one column per metric, and the
    protocol in the caption. Confidence intervals and breakdowns appear only with --json."""
    scores: dict[str, dict[str, Any]] = result.get("models", {})
    metrics = list(result.get("metrics") or [])
    if not metrics:
        metrics = list(
            dict.fromkeys(
                metric
                for row in scores.values()
                for metric, value in row.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            )
        )
    rows = [
        {"model": name, **{metric: _format_metric(row.get(metric)) for metric in metrics}}
        for name, row in scores.items()
    ]

    protocol = result.get("protocol", {})
    described = [str(protocol.get("name", "evaluation"))]
    for key in ("n_test_users", "n_train_users", "seed", "k"):
        if protocol.get(key) is not None:
            described.append(f"{key}={protocol[key]}")
    print_records(rows, ["model", *metrics], "Evaluation: " + ", ".join(described))


def _format_metric(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4f}"
    return "" if value is None else str(value)


# --- serve ---------------------------------------------------------------------------------


@app.command()
@guarded
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8000,
    model: Annotated[
        Optional[str], typer.Option("--model", help="Trained model to serve (default: als when trained, else the newest).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes; each loads the dataset and model.")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
    franchises: Annotated[
        Optional[Path],
        typer.Option(
            "--franchises",
            metavar="FILE",
            help='Franchise groups as JSON [{"name": ..., "ids": [...]}] for collapsing; default: from titles.',
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (docs at /docs) and the web page (at /) until Ctrl+C.

    Send SIGHUP or POST /admin/reload to load a newly trained model without a restart.
    """
    from animerec.serving.server import run_server

    options = _globals(ctx)
    run_server(
        host=host,
        port=port,
        workers=workers,
        home=options.home,
        dataset=options.dataset,
        model=model,
        franchises=franchises,
        access_log=access_log,
        log_level="debug" if options.verbose > 1 else "info",
    )


# --- predict (rating models) and tune --------------------------------------------------------


@app.command()
@guarded
def predict(
    ctx: typer.Context,
    titles: Annotated[
        list[str], typer.Argument(metavar="TITLE...", help="One or more anime, as anime_ids or titles.")
    ],
    user: Annotated[int, typer.Option("--user", metavar="USER_ID", help="A user_id of the dataset.")],
    model: ModelOption = None,
    json_output: JsonOption = False,
) -> None:
    """Predict the rating a user of the dataset would give each anime (rating models only)."""
    import numpy as np

    from animerec.errors import NotFoundError, UnknownIdError

    try:
        service = open_service(ctx, model)
    except NotFoundError as err:
        if model is not None:
            raise
        raise NotFoundError(
            "no model is trained for this dataset, and only rating models predict ratings: "
            "run `animerec train biasedmf`, then pass --model biasedmf"
        ) from err
    with service:
        recommender = service.model
        assert recommender is not None
        if not hasattr(recommender, "rating_scale_") or not _predicts_ratings(recommender):
            raise ConfigError(
                f"model {recommender.name!r} does not predict ratings; train a rating model, "
                "for example `animerec train biasedmf`, and pass --model biasedmf"
            )
        if user not in recommender.users_:
            raise UnknownIdError(
                f"unknown user_id {user}: model {recommender.name!r} was not trained on it; "
                "use `animerec recommend --liked TITLE` for people outside the data"
            )
        user_idx = recommender.users_.index(user)
        anime_ids = [service.resolve(title) for title in titles]
        item_idx = np.asarray([recommender.items_.index(anime_id) for anime_id in anime_ids])
        predicted = recommender.predict_ratings(np.full(item_idx.size, user_idx), item_idx)
        interactions = service.dataset.interactions
        rows = []
        for anime_id, value in zip(anime_ids, predicted):
            actual = None
            if user in interactions.users and anime_id in interactions.items:
                stored = interactions.ratings[interactions.users.index(user), interactions.items.index(anime_id)]
                actual = float(stored) if stored else None
            rows.append(
                {
                    "user_id": user,
                    "anime_id": anime_id,
                    "title": html.unescape(service.catalog.title(anime_id)),
                    "predicted_rating": round(float(value), 3),
                    "actual_rating": actual,
                    "rating_scale": list(recommender.rating_scale_),
                    "model": recommender.name,
                }
            )
    if json_output:
        print_json(rows)
        return
    low, high = rows[0]["rating_scale"]
    print_records(
        rows,
        ["anime_id", "title", "predicted_rating", "actual_rating"],
        f"Predicted ratings for user {user} ({rows[0]['model']}, scale {low:g}–{high:g})",
    )


def _predicts_ratings(recommender: Any) -> bool:
    from animerec.models.base import Recommender

    return type(recommender).predict_ratings is not Recommender.predict_ratings


@app.command()
@guarded
def tune(
    ctx: typer.Context,
    model_name: Annotated[
        str, typer.Argument(metavar="MODEL", help="A model with a search space, e.g. biasedmf or ease.")
    ],
    trials: Annotated[int, typer.Option("--trials", min=1, help="Number of Optuna trials.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the splits and the sampler.")] = 42,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", min=0.01, max=0.9, help="Share of ratings (top-n models: of users) held out as the test set.")
    ] = 0.2,
    validation_fraction: Annotated[
        float,
        typer.Option("--validation-fraction", min=0.01, max=0.9, help="Share of the remaining ratings (top-n models: users) used to pick parameters."),
    ] = 0.2,
    timeout: Annotated[
        Optional[float], typer.Option("--timeout", metavar="SECONDS", help="Stop the search after this many seconds.")
    ] = None,
    settings: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="NAME=VALUE", help="Fixed model parameter for every trial, repeatable."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Search a model's parameters on a validation split, report the test score, and save the
    best parameters for `animerec train`.

    Rating models are scored by RMSE on held-out ratings; top-n models (itemknn, als, ease,
    content, hybrid) by NDCG@10 on held-out users, whose validation users never include a
    test user. A hybrid trial is a full hybrid fit, one to two minutes on the Kaggle 2016
    sample."""
    from animerec.evaluation.tuning import search_space_of
    from animerec.evaluation.tuning import tune as run_tuning
    from animerec.models.registry import get_model_class

    # An unknown name, or a model with nothing to tune, fails before the dataset loads.
    search_space_of(get_model_class(model_name))
    fixed = parse_assignments(settings, "--set")
    options = _globals(ctx)
    store = open_store(ctx)
    try:
        with progress("Loading dataset…"):
            from animerec.service import load_dataset_cached

            dataset = load_dataset_cached(store, options.dataset)
    finally:
        store.close()
    with progress(f"Tuning {model_name} on {dataset.name}…") as step:
        result = run_tuning(
            dataset, model_name, n_trials=trials, seed=seed, test_fraction=test_fraction,
            validation_fraction=validation_fraction, timeout=timeout, fixed_params=fixed,
            home=options.home, progress=step,
        )
    if json_output:
        print_json(result)
        return
    typer.echo(f"Best parameters after {result['n_trials']} trials: {result['params']}")
    if "validation_rmse" in result:
        typer.echo(f"Validation RMSE {result['validation_rmse']:.4f}")
        typer.echo(
            f"Test RMSE {result['test']['rmse']:.4f} (defaults: {result['default_test']['rmse']:.4f}), "
            f"test MAE {result['test']['mae']:.4f} (defaults: {result['default_test']['mae']:.4f})"
        )
    else:
        protocol = result["protocol"]
        metric = protocol["metric"]
        recall = metric.replace("ndcg", "recall")
        typer.echo(
            f"Validation {metric} {result['validation_' + metric]:.4f} "
            f"({protocol['n_validation_users']} validation users)"
        )
        typer.echo(
            f"Test {metric} {result['test'][metric]:.4f} (defaults: {result['default_test'][metric]:.4f}), "
            f"test {recall} {result['test'][recall]:.4f} (defaults: {result['default_test'][recall]:.4f}) "
            f"on {protocol['n_test_users']} test users"
        )
    typer.echo(f"Saved to {result['saved_to']}; `animerec train {model_name}` now uses them.")


# --- entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status (the `animerec` console script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    try:
        status = command.main(args=args or ["--help"], prog_name="animerec", standalone_mode=False)
    except UsageError as err:
        context = getattr(err, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        typer.echo(f"error: {' '.join(err.format_message().split())}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except ClickException as err:
        typer.echo(f"error: {' '.join(err.format_message().split())}", err=True)
        sys.exit(getattr(err, "exit_code", EXIT_ERROR))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # Point stdout at /dev/null so that the interpreter's final flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_ERROR)
    sys.exit(status if isinstance(status, int) else 0)
