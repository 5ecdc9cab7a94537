"""The HTTP API against a real uvicorn server on 127.0.0.1, on the real anime-2016 data."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi", reason="the server tests need the `serve` extra")
import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from server_support import ThreadedServer, build_home, free_port, train_als, wait_for_health  # noqa: E402

from animerec.serving.app import ServerSettings, create_app  # noqa: E402

MAX_BODY = 64 * 1024
COWBOY_BEBOP = 1
STEINS_GATE = 9253


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    folder = tmp_path_factory.mktemp("server-home")
    build_home(folder, shared_data)
    return folder


@pytest.fixture(scope="module")
def dataset(home: Path):
    from animerec.data.store import Store

    store = Store(home / "animerec.sqlite")
    try:
        return store.load_dataset()
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(home: Path):
    settings = ServerSettings(home=home, model="als", max_body_bytes=MAX_BODY)
    running = ThreadedServer(create_app(settings=settings)).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: ThreadedServer):
    with httpx.Client(base_url=server.url, timeout=60.0) as http:
        yield http


@pytest.fixture(scope="module")
def known_user(dataset) -> tuple[int, set[int]]:
    """A user of the training data with a long history, and the anime they watched."""
    interactions = dataset.interactions
    lengths = interactions.user_items.getnnz(axis=1)
    user_idx = int(lengths.argmax())
    item_idx, _ = interactions.history(user_idx)
    watched = {int(a) for a in interactions.items.ids[item_idx]}
    return int(interactions.users.ids[user_idx]), watched


def unknown_user_id(dataset, offset: int = 0) -> int:
    return int(dataset.interactions.users.ids.max()) + 1000 + offset


def assert_recommendation_shape(item: dict) -> None:
    for key in ("anime_id", "title", "score", "type", "episodes", "genres", "rank", "reasons"):
        assert key in item, f"{key} missing from {item}"
    assert isinstance(item["genres"], list)
    assert item["reasons"], f"no reasons for {item['title']}"


def assert_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- service, catalogue -------------------------------------------------------------------


def test_health_names_model_and_dataset(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["model"] == "als"
    assert body["dataset"] == "kaggle-2016"
    assert body["n_items"] == 12294
    assert body["n_users"] == 4879
    assert body["model_config"]["n_factors"] == 16


def test_search_prefix_match_first(client: httpx.Client) -> None:
    items = client.get("/anime/search", params={"q": "steins;g"}).json()["items"]
    assert items[0]["anime_id"] == STEINS_GATE
    assert all("steins" in item["title"].casefold() for item in items)


def test_search_fuzzy_typo(client: httpx.Client) -> None:
    items = client.get("/anime/search", params={"q": "cowboy bebpo", "n": 5}).json()["items"]
    assert COWBOY_BEBOP in [item["anime_id"] for item in items]


def test_search_needs_text(client: httpx.Client) -> None:
    assert_error(client.get("/anime/search", params={"q": ""}), 422)
    assert_error(client.get("/anime/search"), 422)
    assert_error(client.get("/anime/search", params={"q": "x" * 201}), 422)


def test_anime_by_id(client: httpx.Client) -> None:
    body = client.get(f"/anime/{COWBOY_BEBOP}").json()
    assert body["title"] == "Cowboy Bebop"
    assert body["type"] == "TV"
    assert body["episodes"] == 26
    assert "Space" in body["genres"]


def test_anime_unknown_is_404(client: httpx.Client) -> None:
    body = assert_error(client.get("/anime/999999"), 404)
    assert "999999" in body["detail"]


def test_anime_bad_ids_are_422(client: httpx.Client) -> None:
    assert_error(client.get("/anime/abc"), 422)
    assert_error(client.get("/anime/-1"), 422)
    assert_error(client.get("/anime/" + "9" * 30), 422)


def test_similar_excludes_the_anime(client: httpx.Client) -> None:
    body = client.get(f"/anime/{COWBOY_BEBOP}/similar", params={"n": 5}).json()
    assert body["anime"]["anime_id"] == COWBOY_BEBOP
    ids = [item["anime_id"] for item in body["items"]]
    assert len(ids) == 5
    assert COWBOY_BEBOP not in ids
    for item in body["items"]:
        assert_recommendation_shape(item)


def test_similar_unknown_anime_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/anime/999999/similar"), 404)


def test_filters_list_labels(client: httpx.Client) -> None:
    body = client.get("/filters").json()
    assert "Comedy" in body["genres"]
    assert "Slice of Life" in body["genres"]
    assert body["types"] == ["Movie", "Music", "ONA", "OVA", "Special", "TV"]


# --- recommendations for known users --------------------------------------------------------


def test_user_recommendations_exclude_watched(client: httpx.Client, known_user) -> None:
    user_id, watched = known_user
    body = client.get(f"/users/{user_id}/recommendations", params={"n": 20}).json()
    assert body["user_id"] == user_id
    assert body["source"] == "model"
    items = body["items"]
    assert [item["rank"] for item in items] == list(range(1, 21))
    assert not {item["anime_id"] for item in items} & watched
    for item in items:
        assert_recommendation_shape(item)
        assert "Hentai" not in item["genres"]


def test_user_recommendations_genre_and_type(client: httpx.Client, known_user) -> None:
    user_id, _ = known_user
    params = {"genres": "Comedy", "types": ["Movie", "OVA"], "n": 15}
    items = client.get(f"/users/{user_id}/recommendations", params=params).json()["items"]
    assert items
    for item in items:
        assert "Comedy" in item["genres"]
        assert item["type"] in ("Movie", "OVA")


def test_user_recommendations_exclude_genres(client: httpx.Client, known_user) -> None:
    user_id, _ = known_user
    params = {"exclude_genres": "Action,Comedy", "exclude_types": "TV", "n": 15}
    items = client.get(f"/users/{user_id}/recommendations", params=params).json()["items"]
    assert items
    for item in items:
        assert not {"Action", "Comedy"} & set(item["genres"])
        assert item["type"] != "TV"


def test_adult_titles_only_when_asked(client: httpx.Client, known_user) -> None:
    user_id, _ = known_user
    hidden = client.get(f"/users/{user_id}/recommendations", params={"genres": "Hentai"})
    assert hidden.status_code == 200
    assert hidden.json()["items"] == []
    shown = client.get(
        f"/users/{user_id}/recommendations", params={"genres": "Hentai", "include_adult": "true"}
    ).json()["items"]
    assert shown
    assert all("Hentai" in item["genres"] for item in shown)


def test_user_unknown_is_404(client: httpx.Client, dataset) -> None:
    body = assert_error(client.get(f"/users/{unknown_user_id(dataset)}/recommendations"), 404)
    assert str(unknown_user_id(dataset)) in body["detail"]


@pytest.mark.parametrize("n", ["0", "101", "-5", "ten", "1.5"])
def test_n_outside_range_is_422(client: httpx.Client, known_user, n: str) -> None:
    user_id, _ = known_user
    body = assert_error(client.get(f"/users/{user_id}/recommendations", params={"n": n}), 422)
    assert "n" in body["errors"][0]["location"]


def test_n_bounds_are_accepted(client: httpx.Client, known_user) -> None:
    user_id, _ = known_user
    assert len(client.get(f"/users/{user_id}/recommendations", params={"n": 1}).json()["items"]) == 1
    assert len(client.get(f"/users/{user_id}/recommendations", params={"n": 100}).json()["items"]) == 100


def test_unknown_genre_is_422(client: httpx.Client, known_user) -> None:
    user_id, _ = known_user
    body = assert_error(
        client.get(f"/users/{user_id}/recommendations", params={"genres": "Cyberpunk"}), 422
    )
    assert "Cyberpunk" in body["detail"]
    assert_error(client.get(f"/users/{user_id}/recommendations", params={"types": "Novel"}), 422)


# --- recommendations for a posted history ---------------------------------------------------


def test_history_of_ids_and_titles(client: httpx.Client) -> None:
    response = client.post(
        "/recommendations", params={"n": 10}, json={"liked": [COWBOY_BEBOP, "Steins;Gate"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "fold-in"
    assert body["history_size"] == 2
    ids = [item["anime_id"] for item in body["items"]]
    assert len(ids) == 10
    assert COWBOY_BEBOP not in ids
    assert STEINS_GATE not in ids
    for item in body["items"]:
        assert_recommendation_shape(item)
    reasons = " ".join(reason for item in body["items"] for reason in item["reasons"])
    assert "Cowboy Bebop" in reasons or "Steins;Gate" in reasons


def test_history_with_ratings_and_exclude(client: httpx.Client) -> None:
    plain = client.post("/recommendations", json={"liked": [COWBOY_BEBOP]}).json()["items"]
    first = plain[0]["anime_id"]
    body = client.post(
        "/recommendations",
        json={"history": [{"anime_id": COWBOY_BEBOP, "rating": 9}, {"title": "Monster"}], "exclude": [first]},
    ).json()
    ids = [item["anime_id"] for item in body["items"]]
    assert first not in ids
    assert COWBOY_BEBOP not in ids
    assert body["history_size"] == 2


def test_history_size_counts_distinct_anime(client: httpx.Client) -> None:
    response = client.post(
        "/recommendations", json={"liked": [COWBOY_BEBOP, "Cowboy Bebop", "Steins;Gate"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["history_size"] == 2
    ids = [item["anime_id"] for item in body["items"]]
    assert COWBOY_BEBOP not in ids
    assert STEINS_GATE not in ids


def test_history_filters_apply(client: httpx.Client) -> None:
    items = client.post(
        "/recommendations", params={"types": "Movie", "n": 8}, json={"liked": [COWBOY_BEBOP]}
    ).json()["items"]
    assert len(items) == 8
    assert all(item["type"] == "Movie" for item in items)


def test_history_unknown_title_is_404(client: httpx.Client) -> None:
    body = assert_error(client.post("/recommendations", json={"liked": ["No Such Anime Title Zzz"]}), 404)
    assert "No Such Anime Title Zzz" in body["detail"]
    assert_error(client.post("/recommendations", json={"liked": [999999]}), 404)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b"{}",
        b'{"liked": []}',
        b'{"liked": "Cowboy Bebop"}',
        b'{"liked": [null]}',
        b'{"liked": [{"id": 1}]}',
        b'{"liked": [1], "surprise": true}',
        b'{"history": [{"rating": 9}]}',
        b'{"history": [{"anime_id": 1, "title": "Cowboy Bebop"}]}',
        b'{"liked": [-3]}',
        b'{"liked": [""]}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_history_malformed_body_is_422(client: httpx.Client, content: bytes) -> None:
    response = client.post(
        "/recommendations", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 422)


def test_malformed_json_messages_match(client: httpx.Client, dataset) -> None:
    content = b'{"anime_id": 1, "action": '
    headers = {"content-type": "application/json"}
    user_id = unknown_user_id(dataset, 6)
    for path in ("/recommendations", f"/users/{user_id}/feedback"):
        body = assert_error(client.post(path, content=content, headers=headers), 422)
        assert body["detail"].startswith("invalid request: body: Invalid JSON"), body["detail"]
        assert [error["location"] for error in body["errors"]] == ["body"]


def test_validator_message_has_no_prefix(client: httpx.Client, dataset) -> None:
    user_id = unknown_user_id(dataset, 6)
    response = client.post(f"/users/{user_id}/feedback", json={"anime_id": 1, "action": "rate"})
    body = assert_error(response, 422)
    assert body["detail"] == "invalid request: body: action 'rate' needs a rating"
    assert body["errors"][0]["message"] == "action 'rate' needs a rating"


def test_history_rating_outside_scale_is_422(client: httpx.Client) -> None:
    body = assert_error(
        client.post("/recommendations", json={"history": [{"anime_id": 1, "rating": 11}]}), 422
    )
    assert "11" in body["detail"]


def test_oversized_declared_body_is_413(client: httpx.Client) -> None:
    liked = list(range(MAX_BODY // 4))
    body = assert_error(client.post("/recommendations", json={"liked": liked}), 413)
    assert str(MAX_BODY) in body["detail"]


def test_oversized_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks():
        yield b'{"liked": ['
        for _ in range(MAX_BODY // 1000 + 2):
            yield b"1," * 500
        yield b"1]}"

    response = client.post(
        "/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413)


def mal_export(entries: list[tuple[int, str, int, str]]) -> bytes:
    """Write a MyAnimeList export with (anime_id, title, score, status) entries."""
    blocks = "".join(
        f"<anime><series_animedb_id>{anime_id}</series_animedb_id>"
        f"<series_title><![CDATA[{title}]]></series_title>"
        f"<my_watched_episodes>1</my_watched_episodes><my_score>{score}</my_score>"
        f"<my_status>{status}</my_status></anime>"
        for anime_id, title, score, status in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" ?><myanimelist><myinfo>'
        "<user_name>tester</user_name><user_export_type>1</user_export_type></myinfo>"
        f"{blocks}</myanimelist>"
    ).encode()


def test_mal_export_upload(client: httpx.Client) -> None:
    export = mal_export(
        [
            (COWBOY_BEBOP, "Cowboy Bebop", 9, "Completed"),
            (STEINS_GATE, "Steins;Gate", 10, "Completed"),
            (205, "Samurai Champloo", 0, "Plan to Watch"),
            (20, "Naruto", 3, "Dropped"),
            (99999999, "Not in the catalogue", 7, "Completed"),
        ]
    )
    response = client.post(
        "/recommendations", params={"n": 30}, files={"file": ("animelist.xml", export, "text/xml")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["history_size"] == 2
    ids = {item["anime_id"] for item in body["items"]}
    assert not ids & {COWBOY_BEBOP, STEINS_GATE, 205, 20}


def test_mal_export_invalid_is_422(client: httpx.Client) -> None:
    bad = client.post("/recommendations", files={"file": ("list.xml", b"<myanimelist><anime>", "text/xml")})
    assert_error(bad, 422)
    wrong_field = client.post("/recommendations", files={"upload": ("list.xml", b"x", "text/xml")})
    assert_error(wrong_field, 422)
    nothing_watched = mal_export([(COWBOY_BEBOP, "Cowboy Bebop", 0, "Plan to Watch")])
    assert_error(
        client.post("/recommendations", files={"file": ("list.xml", nothing_watched, "text/xml")}), 422
    )


# --- feedback ---------------------------------------------------------------------------


def feedback_rows(home: Path, user_id: int) -> list[tuple]:
    with sqlite3.connect(home / "animerec.sqlite") as connection:
        return connection.execute(
            "SELECT anime_id, action, rating FROM feedback WHERE user_id = ? ORDER BY feedback_id",
            (user_id,),
        ).fetchall()


def test_feedback_is_stored_and_used(client: httpx.Client, home: Path, known_user) -> None:
    user_id, watched = known_user
    before = client.get(f"/users/{user_id}/recommendations", params={"n": 10}).json()["items"]
    top, second = before[0]["anime_id"], before[1]["anime_id"]

    rated = client.post(f"/users/{user_id}/feedback", json={"anime_id": top, "action": "rate", "rating": 8})
    assert rated.status_code == 201, rated.text
    assert rated.json()["feedback_id"] > 0
    refused = client.post(f"/users/{user_id}/feedback", json={"anime_id": second, "action": "not_interested"})
    assert refused.status_code == 201

    assert feedback_rows(home, user_id) == [(top, "rate", 8.0), (second, "not_interested", None)]

    after = client.get(f"/users/{user_id}/recommendations", params={"n": 10}).json()
    assert after["source"] == "fold-in"
    assert after["history_size"] == len(watched) + 1
    ids = [item["anime_id"] for item in after["items"]]
    assert top not in ids
    assert second not in ids
    assert not set(ids) & watched
    assert len(ids) == 10


def test_feedback_latest_action_wins(client: httpx.Client, dataset) -> None:
    user_id = unknown_user_id(dataset, 1)
    client.post(f"/users/{user_id}/feedback", json={"anime_id": COWBOY_BEBOP, "action": "watched"})
    client.post(f"/users/{user_id}/feedback", json={"anime_id": 205, "action": "not_interested"})
    client.post(f"/users/{user_id}/feedback", json={"anime_id": 205, "action": "rate", "rating": 7})
    state = client.get(f"/users/{user_id}/feedback").json()
    assert state["history"] == [
        {"anime_id": COWBOY_BEBOP, "rating": None},
        {"anime_id": 205, "rating": 7.0},
    ]
    assert state["not_interested"] == []
    assert len(state["rows"]) == 3


def test_unknown_user_with_feedback_gets_fold_in(client: httpx.Client, dataset) -> None:
    user_id = unknown_user_id(dataset, 2)
    assert_error(client.get(f"/users/{user_id}/recommendations"), 404)
    client.post(f"/users/{user_id}/feedback", json={"anime_id": STEINS_GATE, "action": "rate", "rating": 10})
    body = client.get(f"/users/{user_id}/recommendations", params={"n": 5}).json()
    assert body["source"] == "fold-in"
    assert body["history_size"] == 1
    ids = [item["anime_id"] for item in body["items"]]
    assert len(ids) == 5
    assert STEINS_GATE not in ids


def test_not_interested_keeps_model_scores(client: httpx.Client, dataset, known_user) -> None:
    # Another user than `known_user`, whose feedback other tests change.
    interactions = dataset.interactions
    lengths = interactions.user_items.getnnz(axis=1)
    user_id = int(interactions.users.ids[int(lengths.argsort()[-2])])
    assert user_id != known_user[0]
    path = f"/users/{user_id}/recommendations"
    params = {"n": 10, "collapse": "false"}
    # Recorded with n=10 too, so that the list is in the user-list cache.
    before = client.get(path, params=params).json()
    assert before["source"] == "model"
    longer = client.get(path, params={**params, "n": 11}).json()["items"]
    assert [item["anime_id"] for item in longer[:10]] == [
        item["anime_id"] for item in before["items"]
    ]
    marked = longer[2]["anime_id"]

    response = client.post(
        f"/users/{user_id}/feedback", json={"anime_id": marked, "action": "not_interested"}
    )
    assert response.status_code == 201, response.text

    after = client.get(path, params=params).json()
    assert after["source"] == "model"
    assert "history_size" not in after
    expected = [item for item in longer if item["anime_id"] != marked]
    assert [item["anime_id"] for item in after["items"]] == [
        item["anime_id"] for item in expected
    ]
    assert [item["score"] for item in after["items"]] == [item["score"] for item in expected]


def test_only_not_interested_is_404(client: httpx.Client, dataset) -> None:
    user_id = unknown_user_id(dataset, 3)
    client.post(f"/users/{user_id}/feedback", json={"anime_id": STEINS_GATE, "action": "not_interested"})
    body = assert_error(client.get(f"/users/{user_id}/recommendations"), 404)
    assert "not interested" in body["detail"]


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"anime_id": 1, "action": "love"}, 422),
        ({"anime_id": 1, "action": "rate"}, 422),
        ({"anime_id": 1, "action": "watched", "rating": 5}, 422),
        ({"anime_id": 1, "action": "rate", "rating": 0}, 422),
        ({"anime_id": 1, "action": "rate", "rating": 10.5}, 422),
        ({"anime_id": "one", "action": "watched"}, 422),
        ({"action": "watched"}, 422),
        ({"anime_id": 999999, "action": "watched"}, 404),
    ],
)
def test_feedback_invalid(client: httpx.Client, dataset, payload: dict, status: int) -> None:
    user_id = unknown_user_id(dataset, 4)
    assert_error(client.post(f"/users/{user_id}/feedback", json=payload), status)


def test_feedback_kept_across_restart(home: Path, dataset) -> None:
    user_id = unknown_user_id(dataset, 5)
    settings = ServerSettings(home=home, model="als")
    first = ThreadedServer(create_app(settings=settings)).start()
    try:
        response = httpx.post(
            f"{first.url}/users/{user_id}/feedback", json={"anime_id": COWBOY_BEBOP, "action": "watched"}
        )
        assert response.status_code == 201
    finally:
        first.stop()
    second = ThreadedServer(create_app(settings=settings)).start()
    try:
        body = httpx.get(f"{second.url}/users/{user_id}/recommendations", timeout=60).json()
        assert body["source"] == "fold-in"
        assert COWBOY_BEBOP not in [item["anime_id"] for item in body["items"]]
    finally:
        second.stop()


# --- errors everywhere ------------------------------------------------------------------


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert_error(client.get("/no/such/route"), 404)
    assert_error(client.delete("/health"), 405)


def test_docs_and_schema(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.casefold()
    # The page's script and style come from this server, not a CDN, so docs work offline.
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text)
    assert len(assets) == 2
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    for path in ("/health", "/anime/search", "/anime/{anime_id}", "/anime/{anime_id}/similar",
                 "/users/{user_id}/recommendations", "/recommendations", "/users/{user_id}/feedback",
                 "/admin/reload"):
        assert path in schema["paths"], path
    body = schema["paths"]["/recommendations"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert "HistoryRequest" in schema["components"]["schemas"]


def test_web_page_and_assets(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'role="combobox"' in page.text
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200, asset


class BrokenService:
    """A service whose search fails with an unexpected error, as a bug would."""

    model = None
    dataset = None

    def search(self, text: str, n: int = 10) -> list[dict]:
        raise RuntimeError("broken on purpose")


def test_unexpected_error_is_json_500_and_server_lives(tmp_path: Path) -> None:
    app = create_app(BrokenService, settings=ServerSettings(feedback_path=tmp_path / "f.sqlite"))
    running = ThreadedServer(app).start()
    try:
        for _ in range(2):
            response = httpx.get(f"{running.url}/anime/search", params={"q": "x"})
            body = assert_error(response, 500)
            assert "broken on purpose" not in body["detail"]
        assert httpx.get(f"{running.url}/").status_code == 200
    finally:
        running.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
history_like = st.fixed_dictionaries(
    {},
    optional={
        "liked": st.lists(st.integers(-5, 40000) | st.text(max_size=20), max_size=6),
        "history": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "anime_id": st.integers(-5, 40000) | st.text(max_size=5),
                    "title": st.text(max_size=20),
                    "rating": st.floats(allow_nan=True) | st.integers(-3, 12) | st.none(),
                },
            ),
            max_size=4,
        ),
        "exclude": st.lists(st.integers(-5, 40000) | st.text(max_size=20), max_size=3),
    },
)
query_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values | history_like)
def test_fuzzed_history_bodies_never_5xx(client: httpx.Client, payload: object) -> None:
    response = client.post("/recommendations", content=json.dumps(payload).encode())
    assert response.status_code < 500, (payload, response.text)
    if response.status_code >= 400:
        assert "detail" in response.json()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values, user_id=st.integers(-3, 2**64) | st.text(max_size=8))
def test_fuzzed_feedback_never_5xx(client: httpx.Client, payload: object, user_id: object) -> None:
    segment = quote(str(user_id), safe="") or "0"
    response = client.post(f"/users/{segment}/feedback", content=json.dumps(payload).encode())
    assert response.status_code < 500, (payload, response.text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/users/{user}/recommendations", "/anime/search", "/anime/{anime}/similar", "/anime/{anime}"]),
    user=st.integers(-3, 2**64) | query_values,
    anime=st.integers(-3, 2**64) | query_values,
    params=st.dictionaries(
        st.sampled_from(["n", "q", "genres", "exclude_genres", "types", "exclude_types", "include_adult", "collapse"]),
        query_values | st.integers(-200, 200).map(str),
        max_size=5,
    ),
)
def test_fuzzed_queries_never_5xx(client: httpx.Client, path: str, user: object, anime: object, params: dict) -> None:
    url = path.replace("{user}", quote(str(user), safe="") or "0").replace(
        "{anime}", quote(str(anime), safe="") or "0"
    )
    response = client.get(url, params=params)
    assert response.status_code < 500, (url, params, response.text)


# --- reload -----------------------------------------------------------------------------


def test_reload_swaps_model_without_dropping_requests(
    client: httpx.Client, home: Path, dataset, known_user
) -> None:
    user_id, _ = known_user
    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=client.base_url, timeout=60.0) as own:
            while not stop.is_set():
                statuses.append(own.get(f"/users/{user_id}/recommendations").status_code)

    train_als(home, dataset, n_factors=8)
    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    for asker in askers:
        asker.start()
    try:
        time.sleep(0.3)
        response = client.post("/admin/reload")
        time.sleep(0.3)
    finally:
        stop.set()
        for asker in askers:
            asker.join()

    assert response.status_code == 200, response.text
    assert response.json()["model_config"]["n_factors"] == 8
    assert client.get("/health").json()["model_config"]["n_factors"] == 8
    assert statuses
    assert set(statuses) == {200}


def test_user_list_cache_evicts_oldest() -> None:
    from animerec.serving.routes import UserListCache

    class Service:
        pass

    first, second = Service(), Service()
    cache = UserListCache(2)
    assert cache.get(first, ("a",)) is None
    cache.put(first, ("a",), b"A")
    cache.put(first, ("b",), b"B")
    assert cache.get(first, ("a",)) == b"A"
    cache.put(first, ("c",), b"C")
    # "b" was used least recently, so it went.
    assert cache.get(first, ("b",)) is None
    assert cache.get(first, ("a",)) == b"A"
    assert cache.get(first, ("c",)) == b"C"
    # Another service starts with nothing, and the first one's entries are gone.
    assert cache.get(second, ("a",)) is None
    cache.put(first, ("d",), b"D")
    assert cache.get(second, ("d",)) is None
    assert UserListCache(0).get(first, ("a",)) is None


def test_cached_user_list_follows_reload(tmp_path: Path, home: Path, dataset, known_user) -> None:
    user_id, _ = known_user
    settings = ServerSettings(home=home, model="als", feedback_path=tmp_path / "feedback.sqlite")
    train_als(home, dataset, n_factors=6)
    running = ThreadedServer(create_app(settings=settings)).start()
    try:
        with httpx.Client(base_url=running.url, timeout=60.0) as http:
            path = f"/users/{user_id}/recommendations"
            first = http.get(path, params={"n": 10})
            repeated = http.get(path, params={"n": 10})
            assert first.status_code == 200, first.text
            assert repeated.content == first.content
            shorter = http.get(path, params={"n": 3}).json()["items"]
            assert [item["anime_id"] for item in shorter] == [
                item["anime_id"] for item in first.json()["items"][:3]
            ]

            train_als(home, dataset, n_factors=12)
            reloaded = http.post("/admin/reload")
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["model_config"]["n_factors"] == 12
            after = http.get(path, params={"n": 10})
            assert after.status_code == 200
            old_scores = [item["score"] for item in first.json()["items"]]
            new_scores = [item["score"] for item in after.json()["items"]]
            assert new_scores != old_scores
    finally:
        running.stop()


def test_reload_failure_keeps_old_model(tmp_path: Path, home: Path) -> None:
    calls = {"count": 0}

    def factory():
        from animerec.service import RecommenderService

        calls["count"] += 1
        if calls["count"] > 1:
            raise FileNotFoundError("the model bundle went missing")
        return RecommenderService.open(home=home, model="als")

    running = ThreadedServer(create_app(factory, settings=ServerSettings(feedback_path=tmp_path / "f.sqlite"))).start()
    try:
        body = assert_error(httpx.post(f"{running.url}/admin/reload", timeout=60), 503)
        assert "bundle went missing" in body["detail"]
        health = httpx.get(f"{running.url}/health").json()
        assert health["generation"] == 1
    finally:
        running.stop()


def test_reload_needs_token_when_set(tmp_path: Path, home: Path) -> None:
    settings = ServerSettings(home=home, model="als", feedback_path=tmp_path / "f.sqlite", admin_token="s3cret")
    running = ThreadedServer(create_app(settings=settings)).start()
    try:
        assert_error(httpx.post(f"{running.url}/admin/reload"), 401)
        allowed = httpx.post(
            f"{running.url}/admin/reload", headers={"Authorization": "Bearer s3cret"}, timeout=60
        )
        assert allowed.status_code == 200
        assert allowed.json()["generation"] == 2
    finally:
        running.stop()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP exists only on POSIX")
def test_sighup_reloads_served_cli(home: Path, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = {**os.environ, "ANIMEREC_HOME": str(home)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "animerec", "serve", "--port", str(port), "--model", "als", "--no-access-log"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_health(url)["generation"] == 1
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        generation = 1
        while generation == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            generation = httpx.get(f"{url}/health").json()["generation"]
        assert generation == 2, log_path.read_text()
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "SIGHUP received" in log_path.read_text()


# --- franchise collapsing -----------------------------------------------------------------


def test_collapse_keeps_one_per_franchise(tmp_path: Path, home: Path, shared_data: Path) -> None:
    franchise_file = shared_data / "anime-franchises" / "mal_collection.json"
    if not franchise_file.is_file():
        pytest.skip(f"franchise groups not found at {franchise_file}")
    group_of = {
        anime_id: number
        for number, group in enumerate(json.loads(franchise_file.read_text()))
        for anime_id in group["ids"]
    }
    settings = ServerSettings(
        home=home, model="als", feedback_path=tmp_path / "f.sqlite", franchises=franchise_file
    )
    running = ThreadedServer(create_app(settings=settings)).start()
    try:
        lists = {}
        for collapse in ("true", "false"):
            response = httpx.post(
                f"{running.url}/recommendations",
                params={"n": 30, "collapse": collapse},
                json={"liked": ["Naruto"]},
                timeout=60,
            )
            assert response.status_code == 200, response.text
            lists[collapse] = [item["anime_id"] for item in response.json()["items"]]
    finally:
        running.stop()

    collapsed_groups = [group_of[a] for a in lists["true"] if a in group_of]
    assert len(collapsed_groups) == len(set(collapsed_groups))
    plain_groups = [group_of[a] for a in lists["false"] if a in group_of]
    assert len(plain_groups) > len(set(plain_groups)), "the plain list has no franchise repeats to collapse"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.binary(max_size=2000),
    field_name=st.sampled_from(["file", "upload", ""]),
    filename=st.text(max_size=20),
)
def test_fuzzed_uploads_never_5xx(client: httpx.Client, content: bytes, field_name: str, filename: str) -> None:
    files = {field_name: (filename or "x.xml", content, "application/octet-stream")}
    response = client.post("/recommendations", files=files)
    assert response.status_code < 500, response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content_type=st.text(max_size=60), content=st.binary(max_size=300))
def test_fuzzed_content_types_never_5xx(client: httpx.Client, content_type: str, content: bytes) -> None:
    try:
        response = client.post("/recommendations", content=content, headers={"content-type": content_type})
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # the header cannot be sent at all
    assert response.status_code < 500, response.text


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP exists only on POSIX")
def test_reload_replaces_every_worker(home: Path, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = {**os.environ, "ANIMEREC_HOME": str(home)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "animerec", "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url)
        reload_started = time.time()
        response = httpx.post(f"{url}/admin/reload", timeout=60)
        assert response.status_code == 200, response.text

        # Both workers are replaced: every answer then comes from a service loaded after
        # the reload request, and the server answers throughout.
        deadline = time.monotonic() + 120
        fresh_in_a_row = 0
        while fresh_in_a_row < 20 and time.monotonic() < deadline:
            health = httpx.get(f"{url}/health", timeout=30)
            assert health.status_code == 200
            fresh_in_a_row = fresh_in_a_row + 1 if health.json()["loaded_at"] >= reload_started else 0
            time.sleep(0.05)
        assert fresh_in_a_row >= 20, log_path.read_text()
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert "restarting processes" in log_path.read_text()
