"""The web page in real headless Chromium against a live server on the real anime-2016 data.

Screenshots go to artifacts/screenshots/ at the repository root for a person to look at.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web tests need the `serve` extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the web tests need selenium (dev extra)")

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from server_support import ThreadedServer, build_home  # noqa: E402

from animerec.serving.app import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WAIT_SECONDS = 20


def find_browser() -> tuple[str, str]:
    chromium = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    driver = str(CHROMEDRIVER) if CHROMEDRIVER.exists() else shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium and chromedriver are not installed (Debian: chromium chromium-driver)")
    return chromium, driver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    find_browser()
    home = tmp_path_factory.mktemp("web-home")
    build_home(home, shared_data)
    running = ThreadedServer(create_app(settings=ServerSettings(home=home, model="als"))).start()
    yield running
    running.stop()


def open_browser(width: int, height: int):
    chromium, driver_path = find_browser()
    profile = tempfile.mkdtemp(prefix="animerec-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    return browser, profile


@pytest.fixture
def browser():
    driver, profile = open_browser(1366, 900)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def card_ids(driver) -> list[int]:
    return [int(card.get_attribute("data-anime-id")) for card in driver.find_elements(By.CSS_SELECTOR, "#results .card")]


def wait_for_cards(driver, previous: list[int] | None = None) -> list[int]:
    """Wait until the cards are shown (and differ from `previous` when given)."""

    def settled(d) -> list[int] | None:
        if d.find_element(By.ID, "results").get_attribute("aria-busy") != "false":
            return None
        ids = card_ids(d)
        return ids if ids and (previous is None or ids != previous) else None

    try:
        return WebDriverWait(driver, WAIT_SECONDS).until(settled)
    except TimeoutException:
        status = driver.find_element(By.ID, "status").text
        pytest.fail(f"the cards did not change from {previous} (status line: {status!r})")


def pick_title(driver, text: str, expected_title: str) -> None:
    """Type into the search box and choose `expected_title` with the keyboard."""
    wait = WebDriverWait(driver, WAIT_SECONDS)
    box = driver.find_element(By.ID, "search-input")
    box.clear()
    box.send_keys(text)

    def suggested_titles(d) -> list[str]:
        options = d.find_elements(By.CSS_SELECTOR, "#suggestions [role=option][id]")
        return [option.find_element(By.CSS_SELECTOR, ".s-title").text for option in options]

    try:
        wait.until(lambda d: expected_title in suggested_titles(d))
    except TimeoutException:
        pytest.fail(f"{expected_title!r} not suggested for {text!r}: {suggested_titles(driver)}")
    assert box.get_attribute("aria-expanded") == "true"
    titles = suggested_titles(driver)
    for _ in range(titles.index(expected_title)):
        box.send_keys(Keys.ARROW_DOWN)
    active = box.get_attribute("aria-activedescendant")
    assert driver.find_element(By.ID, active).get_attribute("aria-selected") == "true"
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: box.get_attribute("aria-expanded") == "false")


def liked_titles(driver) -> list[str]:
    # The title element also contains a second line with type and episodes.
    return [item.text.split("\n")[0] for item in driver.find_elements(By.CSS_SELECTOR, "#liked-list .l-title")]


def test_search_pick_recommend_filter_hide(server: ThreadedServer, browser) -> None:
    browser.get(server.url + "/")
    WebDriverWait(browser, WAIT_SECONDS).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#type-chips button"))
    )
    screenshot(browser, "01-empty")

    pick_title(browser, "steins", "Steins;Gate")
    assert liked_titles(browser) == ["Steins;Gate"]
    first = wait_for_cards(browser)
    pick_title(browser, "cowboy beb", "Cowboy Bebop")
    cards = wait_for_cards(browser, first)
    assert 1 not in cards
    assert 9253 not in cards
    screenshot(browser, "02-recommendations")

    # Every card names its type, genres and at least one reason.
    first_card = browser.find_element(By.CSS_SELECTOR, "#results .card")
    assert first_card.find_element(By.CSS_SELECTOR, ".meta").get_attribute("textContent")
    assert first_card.find_elements(By.CSS_SELECTOR, ".genres li")
    assert first_card.find_elements(By.CSS_SELECTOR, ".reasons li")

    # Filter by type: only movies remain.
    browser.find_element(By.CSS_SELECTOR, '#type-chips button[data-type="Movie"]').click()
    movies = wait_for_cards(browser, cards)
    # textContent, not .text: Selenium reports "" for cards still fading in (opacity 0).
    metas = [meta.get_attribute("textContent") for meta in browser.find_elements(By.CSS_SELECTOR, "#results .card .meta")]
    assert metas
    assert all(meta.startswith("Movie") for meta in metas), metas
    screenshot(browser, "03-movies")

    # Mark the first one not interested: it leaves the list, which refills.
    target = movies[0]
    browser.find_element(By.CSS_SELECTOR, f'#results .card[data-anime-id="{target}"] .nope').click()
    after = wait_for_cards(browser, movies)
    assert target not in after
    assert browser.find_element(By.ID, "hidden-count").text == "1"
    screenshot(browser, "04-not-interested")


def test_genre_filter_and_adult_default(server: ThreadedServer, browser) -> None:
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#genre-select option[value=Comedy]")))
    genre_values = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#genre-select option")]
    assert "Hentai" not in genre_values
    assert not browser.find_element(By.ID, "adult-toggle").is_selected()

    pick_title(browser, "toradora", "Toradora!")
    before = wait_for_cards(browser)
    from selenium.webdriver.support.select import Select

    Select(browser.find_element(By.ID, "genre-select")).select_by_value("Sports")
    sports = wait_for_cards(browser, before)
    assert sports
    chips = [chip.text for chip in browser.find_elements(By.CSS_SELECTOR, "#active-genres button")]
    assert chips == ["Sports ✕"]
    for card in browser.find_elements(By.CSS_SELECTOR, "#results .card"):
        genres = [g.get_attribute("textContent") for g in card.find_elements(By.CSS_SELECTOR, ".genres li")]
        assert "Hentai" not in genres
    screenshot(browser, "05-genre-sports")


def test_similar_dialog_and_keyboard(server: ThreadedServer, browser) -> None:
    browser.get(server.url + "/")
    pick_title(browser, "monster", "Monster")
    wait_for_cards(browser)
    browser.find_element(By.CSS_SELECTOR, "#results .card .similar").click()
    wait = WebDriverWait(browser, WAIT_SECONDS)
    dialog = browser.find_element(By.ID, "similar-dialog")
    wait.until(lambda d: dialog.get_attribute("open") is not None)
    try:
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#similar-list li .chip-button")) >= 5)
    except TimeoutException:
        pytest.fail("the similar-anime dialog did not list anime: " + dialog.text)
    assert browser.find_element(By.ID, "similar-title").text.startswith("Similar to ")
    screenshot(browser, "06-similar")
    dialog.send_keys(Keys.ESCAPE)
    wait.until(lambda d: dialog.get_attribute("open") is None)

    # Escape closes suggestions without choosing anything.
    box = browser.find_element(By.ID, "search-input")
    box.send_keys("naruto")
    wait.until(lambda d: box.get_attribute("aria-expanded") == "true")
    box.send_keys(Keys.ESCAPE)
    wait.until(lambda d: box.get_attribute("aria-expanded") == "false")
    assert liked_titles(browser) == ["Monster"]


def test_phone_sized_screen(server: ThreadedServer) -> None:
    driver, profile = open_browser(390, 844)
    try:
        driver.get(server.url + "/")
        pick_title(driver, "haikyu", "Haikyuu!!")
        wait_for_cards(driver)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        viewport = driver.execute_script("return window.innerWidth")
        assert width <= viewport, f"the page scrolls sideways: {width} > {viewport}"
        screenshot(driver, "07-phone")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_api_docs_render_without_internet(server: ThreadedServer, browser) -> None:
    """Swagger UI takes its script and style from this server, not a CDN, so the operations
    appear on a machine without internet access."""
    browser.get(server.url + "/docs")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    try:
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= 8)
    except TimeoutException:
        pytest.fail("Swagger UI listed no operations: " + browser.find_element(By.TAG_NAME, "body").text[:300])
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/recommendations" in paths
    assert "/users/{user_id}/recommendations" in paths
    screenshot(browser, "08-api-docs")
