"""animerec_home, resolve_data_dir and the ingest report's serialisation."""

from __future__ import annotations

import json

import pytest

from animerec import config
from animerec.config import resolve_data_dir
from animerec.data.report import IngestReport
from animerec.errors import ConfigError


def test_home_from_environment(animerec_home):
    assert not animerec_home.exists()

    assert config.animerec_home() == animerec_home
    assert animerec_home.is_dir()


def test_home_default_platform_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("ANIMEREC_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    home = config.animerec_home()

    assert home == tmp_path / "xdg" / "animerec"
    assert home.is_dir()


def test_home_not_a_folder(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ANIMEREC_HOME", str(blocker))

    with pytest.raises(ConfigError, match="ANIMEREC_HOME"):
        config.animerec_home()


def test_data_dir_argument_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("ANIMEREC_DATA", str(tmp_path / "elsewhere"))

    assert resolve_data_dir(str(tmp_path)) == tmp_path


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANIMEREC_DATA", str(tmp_path))

    assert resolve_data_dir(None) == tmp_path


def test_data_dir_missing_everywhere(monkeypatch):
    monkeypatch.delenv("ANIMEREC_DATA", raising=False)

    with pytest.raises(ConfigError, match="ANIMEREC_DATA"):
        resolve_data_dir(None)


def test_data_dir_not_found(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_data_dir(str(tmp_path / "absent"))


def test_data_dir_is_file(tmp_path):
    path = tmp_path / "anime.csv"
    path.write_text("anime_id\n")

    with pytest.raises(ConfigError, match="not a folder"):
        resolve_data_dir(path)


def test_report_round_trip_json():
    report = IngestReport(format="kaggle-2016", dataset_name="sample", source_files=["a.csv"])
    report.rows_read = 10
    report.rows_used = 7
    report.add_problem("duplicates", 3, "last row wins", "rows that repeat a pair", ["one", "two"])
    report.add_problem("unknown_anime", 0, "dropped", "never recorded")

    restored = IngestReport.from_dict(json.loads(json.dumps(report.to_dict())))

    assert restored == report
    assert restored.problem_count("duplicates") == 3
    assert restored.problem_count("unknown_anime") == 0
    assert "duplicates: 3 rows that repeat a pair (last row wins)" in restored.summary_lines()
    assert "  e.g. one" in restored.summary_lines()


def test_install_hint_names_both_commands() -> None:
    from animerec.errors import install_hint

    hint = install_hint("serve")

    assert "pip install 'animerec[serve]'" in hint
    assert "pip install -e '.[serve]'" in hint
