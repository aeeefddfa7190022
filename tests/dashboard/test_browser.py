"""The real thing: `streamlit run` in a subprocess, headless Chromium finds the Pareto plot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.launch import find_chromium, free_port, make_driver, start_app, stop_app, wait_ready

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason="chromium and chromedriver are not installed "
                              "(apt-get install chromium chromium-driver; .ci/run installs them)"),
]
WAIT_S = 90  # first page load imports plotly and scipy in the app process


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app serving ``demo_db`` on a free localhost port."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    proc = start_app(str(demo_db), port, log=log)
    try:
        wait_ready(port, proc, timeout_s=WAIT_S)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_app(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    driver = make_driver(str(tmp_path_factory.mktemp("chromium-profile")))
    try:
        yield driver
    finally:
        driver.quit()


def test_pareto_plot_renders_in_chromium(served: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/pareto")
    wait = WebDriverWait(browser, WAIT_S)
    plot = wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')))
    wait.until(lambda d: plot.find_elements(By.CSS_SELECTOR, ".scatterlayer .point"))
    assert "Pareto front" in browser.find_element(By.TAG_NAME, "h1").text
    assert plot.find_elements(By.CSS_SELECTOR, ".legendtext")  # families in the legend
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')


def test_overview_answers_in_chromium(served: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/overview")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: "Bottom-heavy vs top-heavy" in d.find_element(By.TAG_NAME, "body").text)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')


def test_budget_page_is_the_front_door_in_chromium(served: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served)
    wait = WebDriverWait(browser, WAIT_S)
    plot = wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')))
    wait.until(lambda d: plot.find_elements(By.CSS_SELECTOR, ".scatterlayer .point"))
    assert "What to pick under a budget" in browser.find_element(By.TAG_NAME, "h1").text
    assert plot.find_elements(By.CSS_SELECTOR, ".annotation-text")  # named points, budget line
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')


@pytest.mark.parametrize(("path", "title"), [
    ("overview", "Study"), ("pareto", "Pareto front"), ("placement", "Placement"),
    ("importance", "Which choice matters"), ("compare", "Compare networks"),
    ("curves", "Learning curves"), ("trial", "Trial detail"), ("table", "Trials")])
def test_every_page_renders_in_chromium_without_an_error_box(served: str, browser, path: str,
                                                             title: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/{path}")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: title in " ".join(h.text for h in d.find_elements(By.TAG_NAME, "h1"))
        and not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'))
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
