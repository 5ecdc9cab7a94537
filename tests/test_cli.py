"""End-to-end tests of the `animerec` command line on the real Kaggle 2016 sample.

One module-wide home is ingested and trained once through the real entry point
(`python -m animerec` in a subprocess); most checks then run the Typer app in-process
through CliRunner, with the same home.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from animerec.cli import app, parse_assignments, parse_model_settings
from animerec.errors import ConfigError

pytestmark = pytest.mark.slow

SAMPLE_USER = 1000032
UNKNOWN_USER = 5
TRAINED_MODELS = ("popular", "itemknn", "als", "ease")

COWBOY_BEBOP = 1
STEINS_GATE = 9253
GINTAMA_PRIME = 9969  # stored as "Gintama&#039;" in anime.csv
DEATH_NOTE = 1535


def run_module(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m animerec ARGS` with ANIMEREC_HOME set to `home`."""
    env = {**os.environ, "ANIMEREC_HOME": str(home)}
    env.pop("ANIMEREC_DATA", None)
    return subprocess.run(
        [sys.executable, "-m", "animerec", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def anime_2016(shared_data: Path) -> Path:
    directory = shared_data / "anime-2016"
    if not (directory / "anime.csv").is_file() or not (directory / "rating.csv").is_file():
        pytest.skip(f"{directory} lacks anime.csv or rating.csv")
    return directory


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory, anime_2016: Path) -> Path:
    """A home with the sample ingested and every model in TRAINED_MODELS trained."""
    home = tmp_path_factory.mktemp("cli-home")
    ingested = run_module(home, "ingest", "kaggle-2016", str(anime_2016))
    assert ingested.returncode == 0, ingested.stderr
    for model in TRAINED_MODELS:
        trained = run_module(home, "train", model)
        assert trained.returncode == 0, f"train {model}: {trained.stderr}"
    return home


@pytest.fixture(scope="module")
def cli(trained_home: Path):
    """Invoke the Typer app in-process against the trained home; returns the Result."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env={"ANIMEREC_HOME": str(trained_home)})

    return invoke


def json_output(result) -> object:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return json.loads(result.stdout)


def watched_by(rating_csv: Path, user_id: int) -> set[int]:
    with rating_csv.open(newline="") as handle:
        return {int(row["anime_id"]) for row in csv.DictReader(handle) if int(row["user_id"]) == user_id}


# --- ingest and train ------------------------------------------------------------------------


def test_ingest_reports_rows(tmp_path: Path, anime_2016: Path) -> None:
    result = run_module(tmp_path / "home", "ingest", "kaggle-2016", str(anime_2016))

    assert result.returncode == 0, result.stderr
    assert "508,341 rows read" in result.stdout
    assert "4,879 users" in result.stdout
    assert "12,294 anime" in result.stdout
    assert result.stderr == ""


def test_ingest_json_report(tmp_path: Path, anime_2016: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["ingest", "kaggle-2016", str(anime_2016), "--name", "sample", "--json"],
        env={"ANIMEREC_HOME": str(tmp_path / "home")},
    )
    report = json_output(result)

    assert report["dataset_name"] == "sample"
    assert report["rows_read"] == 508_341
    assert report["rows_used"] + sum(p["count"] for p in report["problems"].values()) >= report["rows_read"]


def test_ingest_reads_data_env(tmp_path: Path, anime_2016: Path) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app,
        ["ingest", "kaggle-2016", "--json"],
        env={"ANIMEREC_HOME": str(home), "ANIMEREC_DATA": str(anime_2016)},
    )

    assert json_output(result)["n_users"] == 4_879


def test_train_saves_bundles(trained_home: Path) -> None:
    for model in TRAINED_MODELS:
        bundle = trained_home / "models" / "kaggle-2016" / model
        assert (bundle / "model.json").is_file(), model
        assert (bundle / "arrays.npz").is_file(), model


def test_train_json_summary(cli) -> None:
    summary = json_output(cli("train", "popular", "--set", "measure=weight", "--json"))

    assert summary["model"] == "popular"
    assert summary["parameters"] == {"measure": "weight"}
    assert summary["n_users"] == 4_879
    assert summary["fit_seconds"] >= 0


# --- recommend -------------------------------------------------------------------------------


def test_recommend_user_excludes_watched(cli, anime_2016: Path) -> None:
    results = json_output(cli("recommend", "--user", str(SAMPLE_USER), "-n", "15", "--json"))
    watched = watched_by(anime_2016 / "rating.csv", SAMPLE_USER)

    assert len(results) == 15
    assert [row["rank"] for row in results] == list(range(1, 16))
    assert not watched.intersection(row["anime_id"] for row in results)
    scores = [row["score"] for row in results]
    assert scores == sorted(scores, reverse=True)
    for row in results:
        assert set(row) >= {"anime_id", "title", "score", "type", "episodes", "genres", "rank", "reasons"}
        assert "Hentai" not in row["genres"]


def test_recommend_liked_titles(cli) -> None:
    # Titles in any case, one written with the HTML entity exactly as anime.csv stores it.
    results = json_output(
        cli(
            "recommend",
            "--liked", "cowboy bebop",
            "--liked", "STEINS;GATE",
            "--liked", "Gintama&#039;",
            "--json",
        )
    )
    ids = [row["anime_id"] for row in results]

    assert len(results) == 10
    assert not {COWBOY_BEBOP, STEINS_GATE, GINTAMA_PRIME}.intersection(ids)
    assert all(row["reasons"] for row in results)
    assert all(row["reasons"][0].startswith("because you liked ") for row in results)


def test_recommend_liked_decoded_title_and_id(cli) -> None:
    by_entity = json_output(cli("recommend", "--liked", "Gintama&#039;", "--liked", "1", "--json"))
    by_text = json_output(cli("recommend", "--liked", "gintama'", "--liked", "Cowboy Bebop", "--json"))

    assert [row["anime_id"] for row in by_entity] == [row["anime_id"] for row in by_text]


def test_recommend_filters(cli) -> None:
    results = json_output(
        cli(
            "recommend", "--liked", "Death Note", "--genre", "comedy", "--type", "Movie",
            "--exclude-genre", "Romance", "-n", "8", "--json",
        )
    )

    assert len(results) == 8
    for row in results:
        assert row["type"] == "Movie"
        assert "Comedy" in row["genres"]
        assert "Romance" not in row["genres"]


def test_recommend_other_model(cli) -> None:
    ease = json_output(cli("recommend", "--user", str(SAMPLE_USER), "--model", "ease", "--json"))
    popular = json_output(cli("recommend", "--user", str(SAMPLE_USER), "--model", "popular", "--json"))

    assert len(ease) == len(popular) == 10
    assert [row["anime_id"] for row in ease] != [row["anime_id"] for row in popular]
    assert all(row["reasons"] == [] for row in popular)


def test_recommend_table_output(cli) -> None:
    result = cli("recommend", "--liked", "Steins;Gate", "-n", "3")

    assert result.exit_code == 0, result.stderr
    assert "Recommendations for a person who liked 1 anime (als)" in result.stdout
    assert "anime_id" in result.stdout


# --- similar, search, models, datasets -------------------------------------------------------


def test_similar_excludes_itself(cli) -> None:
    results = json_output(cli("similar", "Death Note", "-n", "5", "--json"))

    assert len(results) == 5
    assert DEATH_NOTE not in [row["anime_id"] for row in results]
    scores = [row["score"] for row in results]
    assert scores == sorted(scores, reverse=True)


def test_search_finds_titles(cli) -> None:
    results = json_output(cli("search", "gintama", "-n", "4", "--json"))

    assert len(results) == 4
    assert results[0]["anime_id"] == 918  # "Gintama" matches exactly, so it comes first
    assert all("gintama" in row["title"].lower() for row in results)
    assert all(isinstance(row["score"], float) for row in results)


def test_models_json(cli) -> None:
    models = {row["name"]: row for row in json_output(cli("models", "--json"))}

    assert set(TRAINED_MODELS) <= set(models)
    assert models["als"]["default"] is True
    assert "n_factors" in models["als"]["parameters"]
    assert models["popular"]["feedback"] == ["implicit"]


def test_datasets_json(cli) -> None:
    datasets = json_output(cli("datasets", "--json"))

    assert [row["name"] for row in datasets] == ["kaggle-2016"]
    assert datasets[0]["current"] is True


def test_datasets_lists_formats(cli) -> None:
    formats = [row["format"] for row in json_output(cli("datasets", "--formats", "--json"))]

    assert "kaggle-2016" in formats


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate_json(cli) -> None:
    result = json_output(
        cli(
            "evaluate", "--models", "popular,itemknn", "--test-users", "200", "--seed", "3",
            "--set", "itemknn.n_neighbors=50", "--json",
        )
    )

    assert set(result["models"]) == {"popular", "itemknn"}
    assert result["protocol"]["seed"] == 3
    assert result["protocol"]["n_test_users"] == 200
    for metrics in result["models"].values():
        assert 0.0 <= metrics["ndcg@10"] <= 1.0
    # A personalised model beats the same list for everyone on this data.
    assert result["models"]["itemknn"]["ndcg@10"] > result["models"]["popular"]["ndcg@10"]


def test_evaluate_forwards_protocol_and_report(cli, tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    result = json_output(
        cli(
            "evaluate", "--models", "popular", "--protocol", "user-holdout", "--test-users", "100",
            "-k", "5", "--bootstrap", "10", "--report", str(report_dir), "--json",
        )
    )

    assert result["protocol"]["name"] == "user-holdout"
    assert result["protocol"]["k"] == 5
    assert "ndcg@5" in result["models"]["popular"]
    assert (report_dir / "report.html").is_file()


def test_evaluate_short_history_options(cli) -> None:
    result = json_output(
        cli(
            "evaluate", "--models", "popular", "--test-users", "100", "--min-history", "3",
            "--fold-in-max", "2", "--bootstrap", "10", "--json",
        )
    )

    settings = result["protocol"]["settings"]
    assert settings["min_history"] == 3
    assert settings["fold_in_max"] == 2
    buckets = result["models"]["popular"]["by_history_length"]
    # Every fold-in has 1 or 2 titles, so only the two shortest buckets are filled.
    assert buckets["1"]["n_users"] + buckets["2-5"]["n_users"] == 100
    assert buckets["6-20"]["n_users"] == buckets["21+"]["n_users"] == 0


# --- global options and start-up -------------------------------------------------------------


def test_home_option_and_dataset_names(tmp_path: Path, anime_2016: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    for name in ("first", "second"):
        result = runner.invoke(app, ["--home", str(home), "ingest", "kaggle-2016", str(anime_2016), "--name", name])
        assert result.exit_code == 0, result.stderr

    datasets = json_output(runner.invoke(app, ["--home", str(home), "datasets", "--json"]))
    chosen = runner.invoke(app, ["--home", str(home), "--dataset", "first", "search", "Monster", "--json"])
    missing = runner.invoke(app, ["--home", str(home), "--dataset", "third", "search", "Monster"])

    assert [row["name"] for row in datasets if row["current"]] == ["second"]
    assert {row["name"] for row in datasets} == {"first", "second"}
    assert json_output(chosen)[0]["title"] == "Monster"
    assert missing.exit_code == 1
    assert "'third'" in missing.stderr


def test_import_is_light() -> None:
    code = "import sys, animerec.cli; print(sorted(m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


def test_no_arguments_prints_help(tmp_path: Path) -> None:
    result = run_module(tmp_path / "home")

    assert result.returncode == 0
    assert "recommend" in result.stdout
    assert "ingest" in result.stdout


# --- errors ----------------------------------------------------------------------------------


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_error_unknown_title_lists_matches(trained_home: Path) -> None:
    line = assert_one_line_error(run_module(trained_home, "recommend", "--liked", "Naruto Shipuden"))

    assert "Naruto Shipuden" in line
    assert "Closest matches" in line
    assert "Naruto: Shippuuden" in line
    assert "1735" in line


def test_error_unknown_user(trained_home: Path) -> None:
    line = assert_one_line_error(run_module(trained_home, "recommend", "--user", str(UNKNOWN_USER)))

    assert f"unknown user_id {UNKNOWN_USER}" in line


def test_error_missing_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    line = assert_one_line_error(run_module(tmp_path / "home", "ingest", "kaggle-2016", str(missing)))

    assert str(missing) in line


def test_error_no_data_dir_given(tmp_path: Path) -> None:
    line = assert_one_line_error(run_module(tmp_path / "home", "ingest", "kaggle-2016"))

    assert "ANIMEREC_DATA" in line


def test_error_unknown_model(trained_home: Path) -> None:
    for args in (["train", "nosuch"], ["recommend", "--user", str(SAMPLE_USER), "--model", "nosuch"]):
        line = assert_one_line_error(run_module(trained_home, *args))
        assert "unknown model 'nosuch'" in line
        assert "als" in line


def test_error_untrained_model(tmp_path: Path, anime_2016: Path) -> None:
    home = tmp_path / "home"
    assert run_module(home, "ingest", "kaggle-2016", str(anime_2016)).returncode == 0

    line = assert_one_line_error(run_module(home, "recommend", "--user", str(SAMPLE_USER)))

    assert "animerec train als" in line

    line = assert_one_line_error(run_module(home, "predict", "--user", str(SAMPLE_USER), "Monster"))

    assert "animerec train biasedmf" in line
    assert "train als" not in line


def test_error_empty_home(tmp_path: Path) -> None:
    line = assert_one_line_error(run_module(tmp_path / "home", "search", "bebop"))

    assert "animerec ingest" in line


def test_error_unknown_format(tmp_path: Path) -> None:
    line = assert_one_line_error(run_module(tmp_path / "home", "ingest", "nosuch-format", str(tmp_path)))

    assert "kaggle-2016" in line


def test_error_bad_usage(trained_home: Path) -> None:
    cases = [
        ["recommend", "--bogus"],
        ["recommend", "-n", "0", "--user", str(SAMPLE_USER)],
        ["train"],
    ]
    for args in cases:
        assert_one_line_error(run_module(trained_home, *args), code=2)


def test_error_user_and_liked(trained_home: Path) -> None:
    both = run_module(trained_home, "recommend", "--user", str(SAMPLE_USER), "--liked", "Monster")
    neither = run_module(trained_home, "recommend")

    for result in (both, neither):
        line = assert_one_line_error(result)
        assert "--user USER_ID" in line
        assert "--liked TITLE" in line


def test_error_unknown_genre(trained_home: Path) -> None:
    line = assert_one_line_error(run_module(trained_home, "recommend", "--liked", "Monster", "--genre", "Cooking"))

    assert "unknown genre 'Cooking'" in line


def test_error_inside_cli_runner(cli) -> None:
    result = cli("similar", "Naruto Shipuden")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: no anime titled 'Naruto Shipuden'")


# --- option parsing --------------------------------------------------------------------------


def test_parse_assignments_later_wins() -> None:
    assert parse_assignments(["a=1", "b = x=y", "a=2"], "--set") == {"a": "2", "b": "x=y"}


@pytest.mark.parametrize("value", ["novalue", "=3", ""])
def test_parse_assignments_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_assignments([value], "--set")


def test_parse_model_settings_groups() -> None:
    parsed = parse_model_settings(["als.n_factors=8", "ease.regularization=10"], ["als", "ease", "popular"])

    assert parsed == {"als": {"n_factors": "8"}, "ease": {"regularization": "10"}, "popular": {}}


def test_parse_model_settings_unknown_model() -> None:
    with pytest.raises(ConfigError, match="not in --models"):
        parse_model_settings(["itemknn.n_neighbors=5"], ["als"])
