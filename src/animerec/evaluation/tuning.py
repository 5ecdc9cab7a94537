"""Hyperparameter search with Optuna, on a validation split disjoint from the test split.

Protocol for a rating model (one that implements `predict_ratings`):

1. `test_fraction` of all ratings, drawn with `seed`, is the test set; it is never seen
   while searching.
2. `validation_fraction` of the remaining ratings (seed + 1) is the validation set.
3. Each trial draws parameters from the model's `search_space(trial)` classmethod, fits on
   the remaining training ratings and is scored by validation RMSE (lower is better).
4. The best parameters and the defaults are both refitted on training + validation and
   scored once on the test set, so the report shows what tuning gained.

Protocol for a top-n model (itemknn, als, ease, ...), by strong generalization:

1. `test_fraction` of the users with at least two watched items, drawn with `seed`, are the
   test users. They leave training, and part of each one's history is folded in.
2. `validation_fraction` of the remaining training users (seed + 1) are the validation
   users, so they never include a test user.
3. Each trial fits on the training users minus the validation users, folds in the
   validation users' histories and is scored by validation NDCG@10 (higher is better). The
   first trial uses the model's defaults.
4. The best parameters and the defaults are both refitted on all training users and scored
   once on the test users.

The result is saved as JSON under `<animerec home>/tuned/<dataset>/<model>.json`, where
`animerec train MODEL` finds it (`load_tuned_params`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import animerec
from animerec.data.interactions import Dataset
from animerec.errors import ConfigError, DataError, install_hint
from animerec.evaluation import metrics as m
from animerec.evaluation.runner import _create, rank_split
from animerec.evaluation.splits import (
    RankingSplit,
    RatingFold,
    rating_holdout_split,
    strong_generalization_split,
)
from animerec.models.base import Recommender
from animerec.models.registry import get_model_class
from animerec.ranking import Ranker, RankingOptions

logger = logging.getLogger(__name__)

TUNED_FOLDER = "tuned"
# Top-n models are tuned for NDCG at this list length.
RANKING_K = 10


def tuned_path(dataset_name: str, model_name: str, home: Path | None = None) -> Path:
    """Return where the tuned parameters of a model on a dataset are saved."""
    from animerec.config import animerec_home

    base = Path(home) if home is not None else animerec_home()
    return base / TUNED_FOLDER / dataset_name / f"{model_name}.json"


def load_tuned_params(dataset_name: str, model_name: str, home: Path | None = None) -> dict[str, Any] | None:
    """Return the saved best parameters of a model on a dataset, or None when never tuned.

    A file that is not valid JSON or lacks "params" raises `DataError` naming it.
    """
    path = tuned_path(dataset_name, model_name, home)
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        params = saved["params"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(
            f"tuned parameters are unreadable ({err}); delete the file or run `animerec tune {model_name}` again",
            path=str(path),
        ) from err
    if not isinstance(params, dict):
        raise DataError("tuned parameters must be a JSON object under 'params'", path=str(path))
    return params


def search_space_of(model_class: type) -> Callable[[Any], dict[str, Any]]:
    """Return the model's `search_space(trial)`; raise `ConfigError` when it has none."""
    space = getattr(model_class, "search_space", None)
    if space is None:
        raise ConfigError(
            f"model {model_class.name!r} declares no search space (a `search_space(trial)` classmethod), "
            f"so there is nothing to tune; train it with `animerec train {model_class.name}`"
        )
    return space


def _is_rating_model(model_class: type) -> bool:
    return getattr(model_class, "predict_ratings", None) is not Recommender.predict_ratings


def _score(model_class: type, params: dict[str, Any], dataset: Dataset, fold: RatingFold) -> dict[str, float]:
    model = model_class(**params)
    started = time.perf_counter()
    model.fit(dataclasses.replace(dataset, interactions=fold.train))
    fit_seconds = time.perf_counter() - started
    predicted = np.asarray(model.predict_ratings(fold.user_idx, fold.item_idx), dtype=np.float64)
    return {
        "rmse": m.rmse(predicted, fold.ratings),
        "mae": m.mae(predicted, fold.ratings),
        "fit_seconds": round(fit_seconds, 3),
    }


def ranking_tuning_splits(
    dataset: Dataset, *, seed: int, test_fraction: float, validation_fraction: float
) -> tuple[RankingSplit, RankingSplit]:
    """Return (test split, validation split) for tuning a top-n model.

    Both are strong-generalization splits. The test users are drawn first (with `seed`), and
    the validation users only from the training users that remain (seed + 1), so the two
    sets of users are disjoint. The validation split's training data is the training users
    minus the validation users.
    """
    test_split = strong_generalization_split(
        dataset.interactions, test_users=float(test_fraction), random_state=seed
    )
    validation_split = strong_generalization_split(
        test_split.train, test_users=float(validation_fraction), random_state=seed + 1
    )
    return test_split, validation_split


def _score_ranking(
    model_name: str,
    params: dict[str, Any],
    dataset: Dataset,
    split: RankingSplit,
    ranker: Ranker,
    options: RankingOptions,
    seed: int,
) -> dict[str, float]:
    model = _create(model_name, params, seed)
    started = time.perf_counter()
    model.fit(dataclasses.replace(dataset, interactions=split.train))
    fit_seconds = time.perf_counter() - started
    recommended = rank_split(model, split, ranker, options)
    target = split.target.user_items
    return {
        f"ndcg@{RANKING_K}": m.mean(m.ndcg_at_k(recommended, target, RANKING_K)),
        f"recall@{RANKING_K}": m.mean(m.recall_at_k(recommended, target, RANKING_K)),
        "fit_seconds": round(fit_seconds, 3),
    }


def _numeric_defaults(model_class: type, fixed: dict[str, Any]) -> dict[str, Any]:
    """Return the Optuna parameters of the first trial, which reproduce the model's defaults.

    These are the config's numeric defaults that `fixed` does not set. A model whose search
    space draws parameters that are not config fields (the hybrid's collaborative
    parameters, written into its JSON `cf_params`) gives their defaults with a
    `search_defaults()` classmethod.
    """
    defaults = model_class.config_class().to_dict()
    params = {
        name: value
        for name, value in defaults.items()
        if name not in fixed and isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    search_defaults = getattr(model_class, "search_defaults", None)
    if search_defaults is not None:
        params.update(search_defaults())
    return params


def _tune_ranking(
    dataset: Dataset,
    model_name: str,
    model_class: type,
    space: Callable[[Any], dict[str, Any]],
    fixed: dict[str, Any],
    optuna: Any,
    *,
    n_trials: int,
    seed: int,
    test_fraction: float,
    validation_fraction: float,
    timeout: float | None,
    notify: Callable[[str], None],
) -> dict[str, Any]:
    """Search a top-n model on validation users and score the result on test users."""
    metric = f"ndcg@{RANKING_K}"
    notify("splitting test and validation users")
    test_split, validation_split = ranking_tuning_splits(
        dataset, seed=seed, test_fraction=test_fraction, validation_fraction=validation_fraction
    )
    ranker = Ranker(dataset.catalog, dataset.interactions.items)
    options = RankingOptions(n=RANKING_K, exclude_seen=True)

    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = {**space(trial), **fixed}
        notify(f"trial {trial.number + 1}/{n_trials}: {params}")
        scores = _score_ranking(model_name, params, dataset, validation_split, ranker, options, seed)
        trials.append({"number": trial.number, "params": params, **scores})
        logger.info("trial %d: validation %s %.4f with %s", trial.number, metric, scores[metric], params)
        return scores[metric]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    # The first trial tries the defaults, so a short search never saves parameters that did
    # worse than them on the validation users.
    study.enqueue_trial(_numeric_defaults(model_class, fixed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    if not trials:
        raise ConfigError("no trial finished; raise the timeout or the number of trials")

    best = min(trials, key=lambda trial: (-trial[metric], trial["number"]))
    best_params = dict(best["params"])
    notify("scoring the best and the default parameters on the test users")
    best_test = _score_ranking(model_name, best_params, dataset, test_split, ranker, options, seed)
    default_test = _score_ranking(model_name, fixed, dataset, test_split, ranker, options, seed)
    return {
        "model": model_name,
        "dataset": dataset.name,
        "params": best_params,
        f"validation_{metric}": best[metric],
        "test": best_test,
        "default_test": default_test,
        "protocol": {
            "name": "strong-generalization",
            "metric": metric,
            "seed": int(seed),
            "test_fraction": float(test_fraction),
            "validation_fraction": float(validation_fraction),
            "fold_in_fraction": float(test_split.settings["fold_in_fraction"]),
            "n_train_users": int(validation_split.train.n_users),
            "n_validation_users": int(validation_split.n_users),
            "n_test_users": int(test_split.n_users),
            "note": "test users are drawn first and validation users only from the remaining "
            "training users, so the search never sees a test user; the final fits use all "
            "training users (validation users included)",
        },
        "n_trials": len(trials),
        "trials": trials,
    }


def tune(
    dataset: Dataset,
    model_name: str,
    *,
    n_trials: int = 20,
    seed: int = 42,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    timeout: float | None = None,
    fixed_params: dict[str, Any] | None = None,
    home: Path | None = None,
    save: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Search a model's parameters on a validation split and report the test score.

    Rating models are scored by RMSE on held-out ratings, top-n models by NDCG@10 on
    held-out users (see the module docstring). `fixed_params` are passed to every trial and
    override the search space. `timeout` (in seconds) stops the search early. Returns a
    JSON-ready dict with the best parameters, their validation score (`validation_rmse` or
    `validation_ndcg@10`), the test scores of the best and of the default parameters
    (`test`, `default_test`), every trial, and `saved_to` when `save` is true. A model
    without a search space raises `ConfigError`.
    """
    try:
        import optuna
    except ImportError as err:
        raise ConfigError(
            f"tuning needs optuna, which is not installed ({err}); run {install_hint('eval')}"
        ) from err

    if int(n_trials) < 1:
        raise ConfigError(f"the number of trials must be at least 1, got {n_trials}")
    model_class = get_model_class(model_name)
    space = search_space_of(model_class)
    fixed = dict(fixed_params or {})
    notify = progress or (lambda step: None)
    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not _is_rating_model(model_class):
        result = _tune_ranking(
            dataset, model_name, model_class, space, fixed, optuna,
            n_trials=int(n_trials), seed=int(seed), test_fraction=test_fraction,
            validation_fraction=validation_fraction, timeout=timeout, notify=notify,
        )
        return _finish(result, dataset, model_name, started, home, save)

    notify("splitting test and validation ratings")
    test_fold = rating_holdout_split(dataset.interactions, test_fraction=test_fraction, random_state=seed)
    validation_fold = rating_holdout_split(
        test_fold.train, test_fraction=validation_fraction, random_state=seed + 1
    )

    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = {**space(trial), **fixed}
        notify(f"trial {trial.number + 1}/{n_trials}: {params}")
        scores = _score(model_class, params, dataset, validation_fold)
        trials.append({"number": trial.number, "params": params, **scores})
        logger.info("trial %d: validation RMSE %.4f with %s", trial.number, scores["rmse"], params)
        return scores["rmse"]

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=int(n_trials), timeout=timeout)
    if not trials:
        raise ConfigError("no trial finished; raise the timeout or the number of trials")

    best = min(trials, key=lambda trial: (trial["rmse"], trial["number"]))
    best_params = dict(best["params"])
    notify("scoring the best and the default parameters on the test ratings")
    best_test = _score(model_class, best_params, dataset, test_fold)
    default_test = _score(model_class, fixed, dataset, test_fold)

    result: dict[str, Any] = {
        "model": model_name,
        "dataset": dataset.name,
        "params": best_params,
        "validation_rmse": best["rmse"],
        "test": best_test,
        "default_test": default_test,
        "protocol": {
            "metric": "rmse",
            "seed": int(seed),
            "test_fraction": float(test_fraction),
            "validation_fraction": float(validation_fraction),
            "n_train": int(validation_fold.train.ratings.nnz),
            "n_validation": int(validation_fold.ratings.size),
            "n_test": int(test_fold.ratings.size),
            "note": "validation ratings are drawn from the ratings left after the test ratings, "
            "so the search never sees the test set; the final fits use train + validation",
        },
        "n_trials": len(trials),
        "trials": trials,
    }
    return _finish(result, dataset, model_name, started, home, save)


def _finish(
    result: dict[str, Any], dataset: Dataset, model_name: str, started: float, home: Path | None, save: bool
) -> dict[str, Any]:
    """Add the run's metadata, make the result JSON-ready and save it when asked."""
    result = {
        **result,
        "library_version": animerec.__version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    result = _json_ready(result)
    if save:
        path = tuned_path(dataset.name, model_name, home)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(result, indent=2, sort_keys=True))
        staging.replace(path)
        result["saved_to"] = str(path)
    return result


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
