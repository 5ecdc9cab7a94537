"""The HTML evaluation report: self-contained, with tables, charts, settings and command."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pytest

from animerec.errors import ConfigError
from animerec.evaluation import runner
from animerec.evaluation.report import write_report

from test_evaluation import make_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    """Collects image sources, links and table counts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.external: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src", ""))
        if tag in ("link", "script") and (values.get("href") or values.get("src")):
            self.external.append(values.get("href") or values.get("src"))
        if tag == "table":
            self.tables += 1


@pytest.fixture(scope="module")
def ranking_result():
    return runner.evaluate(
        make_dataset(),
        [("popular", {}), ("itemknn", {}), ("content", {"use_site_aggregates": True})],
        n_bootstrap=20,
        seed=7,
        command="animerec evaluate --models popular,itemknn,content --seed 7",
    )


def test_report_is_self_contained(ranking_result, tmp_path):
    path = write_report(ranking_result, tmp_path / "report")
    page = path.read_text(encoding="utf-8")
    collector = _Collector()
    collector.feed(page)
    assert collector.external == []
    assert len(collector.images) == 3
    for source in collector.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert collector.tables >= 4


def test_report_shows_settings_and_command(ranking_result, tmp_path):
    page = write_report(ranking_result, tmp_path).read_text(encoding="utf-8")
    assert "animerec evaluate --models popular,itemknn,content --seed 7" in page
    assert "fold_in_fraction" in page
    assert "&quot;include_adult&quot;: false" in page
    assert "site-wide aggregates" in page
    ndcg = ranking_result["models"]["itemknn"]["ndcg@10"]
    assert f"{ndcg:.4f}" in page


def test_report_writes_result_json(ranking_result, tmp_path):
    write_report(ranking_result, tmp_path)
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["models"]["popular"]["ndcg@10"] == ranking_result["models"]["popular"]["ndcg@10"]


def test_report_escapes_names(ranking_result, tmp_path):
    result = dict(ranking_result)
    result["command"] = "evaluate <script>alert(1)</script>"
    page = write_report(result, tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_rating_report(tmp_path):
    result = runner.evaluate(
        make_dataset(), [("baseline", {}), ("popular", {})], protocol="rating-kfold", n_folds=3,
        report_dir=tmp_path,
    )
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert result["report"] == str(tmp_path / "report.html")
    assert "±" in page
    assert "does not predict ratings" in page
    assert len(re.findall(r"data:image/png;base64,", page)) == 1


def test_report_rejects_other_dicts(tmp_path):
    with pytest.raises(ConfigError):
        write_report({"rows": []}, tmp_path)
