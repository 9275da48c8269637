"""The HTML report opened in headless Chromium (selenium): charts load, tables are there, no network.

`make test` installs the Debian packages `chromium` and `chromium-driver` (target test-deps).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.scored import scored_table

from kefu.serving.report import build_report

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
CHARTS = {
    "chart-intent",
    "chart-urgency",
    "chart-emotion",
    "chart-reasons",
    "chart-trend-volume",
    "chart-trend-emotion",
    "chart-trend-escalation",
}
TABLES = {
    "top-intents",
    "urgency",
    "emotion",
    "escalation-reasons",
    "queues",
    "priorities",
    "queue-intents",
    "repeated-questions",
    "trends",
}


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium and chromedriver are missing: run `make test-deps`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By

    scored = tmp_path / "scored.parquet"
    pq.write_table(scored_table(), scored)
    report = tmp_path / "report.html"
    build_report([str(scored)], report, time_col="created_at")

    browser.get(report.as_uri())
    assert browser.title.startswith("kefu hotspot report")
    images = {img.get_attribute("id"): img for img in browser.find_elements(By.TAG_NAME, "img")}
    assert set(images) == CHARTS
    for chart_id, img in images.items():
        loaded = browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", img
        )
        assert loaded > 0, f"{chart_id} did not load"
        assert img.size["height"] > 50  # laid out, not a broken-image icon
    tables = {t.get_attribute("id"): t for t in browser.find_elements(By.TAG_NAME, "table")}
    assert set(tables) == TABLES
    first_intent = tables["top-intents"].find_elements(By.CSS_SELECTOR, "tbody tr")[0]
    assert first_intent.find_elements(By.TAG_NAME, "td")[1].text == "logistics_status"
    assert len(tables["trends"].find_elements(By.CSS_SELECTOR, "tbody tr")) == 3
    # nothing fetched from anywhere: data: URIs are not resource loads
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [url for url in fetched if not url.startswith("data:")] == []


@pytest.mark.browser
def test_a_long_unbroken_example_wraps_inside_the_page(tmp_path, browser):
    """A pasted link has no break opportunity: its 120-character example pushed the main intent
    column off the page, behind a horizontal scroll bar."""
    table = scored_table()
    link = "https://item.example.com/product/" + "a1b2c3d4" * 20
    texts = [link] * 3 + table.column("text").to_pylist()[3:]
    scored = tmp_path / "scored.parquet"
    pq.write_table(table.set_column(1, "text", pa.array(texts)), scored)
    report = tmp_path / "report.html"
    build_report([str(scored)], report)
    browser.set_window_size(1200, 900)
    browser.get(report.as_uri())
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1]
    shares = browser.execute_script(
        "return [...document.querySelectorAll('#repeated-questions td.n')].map(cell => {"
        " const range = document.createRange(); range.selectNodeContents(cell);"
        " return range.getClientRects().length; })"
    )
    assert shares and set(shares) == {1}  # numbers and shares stay on one line
