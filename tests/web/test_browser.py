"""The status page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.web.conftest import Served, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
KEEP = os.environ.get("STREAMSEG_KEEP_SCREENSHOT")  # a path: the page's second screenshot is copied there


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no headless Chromium: apt-get install chromium chromium-driver (tools/system-deps.sh tests)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_status_page_shows_the_cameras_and_a_live_view(served: Served, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url + "/")
    # token auth: the page asks for the token (it holds no data itself)
    wait_until(lambda: browser.find_element(By.ID, "login").is_displayed(), 20, "the page to ask for the token")
    browser.find_element(By.ID, "token").send_keys(served.token)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()

    def live_image(name: str):
        found = browser.find_elements(By.CSS_SELECTOR, f'section[data-camera="{name}"] img.live')
        return found[0] if found else None

    def shown(name: str) -> bool:
        image = live_image(name)
        return image is not None and browser.execute_script("return arguments[0].naturalWidth", image) > 0

    wait_until(lambda: shown("bikes") and shown("door"), 30, "both cameras' live images to load")
    for name in ("bikes", "door"):
        title = browser.find_element(By.CSS_SELECTOR, f'section[data-camera="{name}"] h2')
        assert title.is_displayed() and title.text.startswith(name) and "streaming" in title.text

    image = live_image("bikes")
    box = image.rect
    x, y, w, h = (int(round(box[k])) for k in ("x", "y", "width", "height"))
    frame = int(image.get_attribute("data-frame"))
    first_page = tmp_path / "page-1.png"
    browser.save_screenshot(str(first_page))
    time.sleep(3)
    second_page = tmp_path / "page-2.png"
    browser.save_screenshot(str(second_page))
    assert image.rect == box, "the layout moved: the two screenshots cannot be compared"
    if KEEP:
        shutil.copy(second_page, KEEP)

    # in the page's screenshots, where the live view is: a photo, not a placeholder, which moved on in 3 s
    first, second = (png(p.read_bytes())[y : y + h, x : x + w].astype(int) for p in (first_page, second_page))
    assert (w, h) == (640, 272) and first.std() > 20 and second.std() > 20, "the live view looks empty"
    assert np.abs(first - second).mean() > 3, "the live view did not change in 3 s"
    assert int(image.get_attribute("data-frame")) > frame
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "2/2 cameras streaming" in text and "fps in / processed" in text and "zone road" in text
