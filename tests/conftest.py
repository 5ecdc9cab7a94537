"""Shared fixtures: the real data folder, an isolated animerec home, and small CSV folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "ANIMEREC_TEST_DATA"

KAGGLE_ANIME_HEADER = "anime_id,name,genre,type,episodes,rating,members"
KAGGLE_RATING_HEADER = "user_id,anime_id,rating"

# A small catalogue in the Kaggle 2016 layout with the awkward cases of the real file:
# HTML entities, a non-ASCII title, quoted genres, "Unknown" episodes, missing genre, type
# and score.
KAGGLE_ANIME_ROWS = (
    '1,Cowboy Bebop,"Action, Adventure, Comedy, Drama, Sci-Fi, Space",TV,26,8.82,486824',
    '9969,Gintama&#039;,"Action, Comedy, Historical, Parody, Samurai, Sci-Fi, Shounen",TV,51,9.16,151266',
    '28977,Gintama°,"Action, Comedy, Slice of Life",TV,51,9.25,114262',
    "30,Unnamed &quot;Special&quot; &amp; Co,,Special,Unknown,,120",
    "40,Hentai Example,Hentai,OVA,2,6.1,900",
    "50,No Type,Comedy,,1,5.5,10",
)
KAGGLE_RATING_ROWS = (
    "1,1,10",
    "1,9969,-1",
    "1,28977,8",
    "2,1,7",
    "2,30,-1",
    "3,40,1",
)


def shared_data_dir() -> Path:
    """Return the real-data folder: $ANIMEREC_TEST_DATA, else ../shared/data from the repo root."""
    configured = os.environ.get(DATA_ENV, "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the real datasets, or a skip when it is absent."""
    directory = shared_data_dir()
    if not directory.is_dir():
        pytest.skip(f"real data folder {directory} not found; set {DATA_ENV} to the shared data folder")
    return directory


@pytest.fixture
def animerec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty animerec home for one test, set through ANIMEREC_HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("ANIMEREC_HOME", str(home))
    return home


def write_kaggle_2016(
    directory: Path,
    anime_rows: Sequence[str] = KAGGLE_ANIME_ROWS,
    rating_rows: Sequence[str] = KAGGLE_RATING_ROWS,
    *,
    newline: str = "\n",
    anime_header: str = KAGGLE_ANIME_HEADER,
    rating_header: str = KAGGLE_RATING_HEADER,
) -> Path:
    """Write anime.csv and rating.csv into `directory` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    anime_text = newline.join([anime_header, *anime_rows]) + newline
    rating_text = newline.join([rating_header, *rating_rows]) + newline
    (directory / "anime.csv").write_bytes(anime_text.encode("utf-8"))
    (directory / "rating.csv").write_bytes(rating_text.encode("utf-8"))
    return directory


@pytest.fixture
def kaggle_dir(tmp_path: Path) -> Callable[..., Path]:
    """A factory that writes a Kaggle 2016 folder under tmp_path (see `write_kaggle_2016`)."""
    counter = iter(range(1_000_000))

    def make(*args: object, **kwargs: object) -> Path:
        return write_kaggle_2016(tmp_path / f"kaggle-{next(counter)}", *args, **kwargs)  # type: ignore[arg-type]

    return make
