"""The dashboard in a real browser: headless Chromium through a real server, clusters and a local agent.

Set RAINBOW_TEST_SCREENSHOTS to a directory to keep screenshots of the pages (docs/img holds the ones
docs/dashboard.md shows).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from web_helpers import Cluster, register

from rainbow.agent import Agent, LocalExecutor
from rainbow.agent.hooks import Hooks
from rainbow.agent.link import ClusterLink
from rainbow.client import RainbowClient
from rainbow.server import ServerConfig
from rainbow.server.background import BackgroundServer

from conftest import REGISTRATION_SECRET

pytestmark = pytest.mark.browser
pytest.importorskip("aiohttp")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = "<img src=x onerror=alert(1)>"
WAIT = 30


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}: .ci/run must install them")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rainbow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class World:
    """A server with the dashboard, keebler (with a running local agent) and tioga (no agent)."""

    def __init__(self, root: Path) -> None:
        self.server = BackgroundServer(ServerConfig(
            host="127.0.0.1:0", db=str(root / "rainbow.db"), secret=REGISTRATION_SECRET, workers=4,
            web="127.0.0.1:0")).start()
        self.url = f"http://127.0.0.1:{self.server.server.web_port}"
        self.keebler: Cluster = register(self.server.address, root, "keebler")
        self.tioga: Cluster = register(self.server.address, root, "tioga")
        link = ClusterLink(RainbowClient(self.server.address, config_file=self.keebler.config, retries=0, timeout=5),
                           agent="agent-1", timeout=5)
        executor = LocalExecutor(3, 12, state_dir=root / "agent", cluster="keebler")
        self.agent = Agent(link, executor, hooks=Hooks(), stream=False, interval=0.2, state={"site": "livermore"})
        self.thread = threading.Thread(target=self.agent.run, name="keebler-agent", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.agent.stop()
        self.thread.join(30)
        for cluster in (self.keebler, self.tioga):
            cluster.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("dashboard"))
    yield world
    world.close()


def shot(driver, name: str) -> None:
    folder = os.environ.get("RAINBOW_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"dashboard-{name}.png"))


def wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition, message)


def text_of(driver, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.CSS_SELECTOR, css).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


@pytest.fixture(scope="module")
def signed_in(browser, world):
    """Sign in with keebler's token through the form, as a person would."""
    from selenium.webdriver.common.by import By

    browser.get(world.url + "/")
    assert "/signin" in browser.current_url
    browser.find_element(By.ID, "token").send_keys("not-a-token")
    browser.find_element(By.ID, "signin").click()
    wait(browser, lambda d: "opens no cluster" in text_of(d, "#signin-error"), "a wrong token was not refused")
    browser.find_element(By.ID, "token").send_keys(world.keebler.token)
    browser.find_element(By.ID, "signin").click()
    wait(browser, lambda d: text_of(d, "h1") == "Clusters", "the overview did not open")
    return browser


def test_the_overview_shows_the_clusters_the_token_opens_with_live_charts(signed_in, world):
    from selenium.webdriver.common.by import By

    driver = signed_in
    world.keebler.submit(["true"], name="warm-up")
    driver.get(world.url + "/")
    rows = driver.find_elements(By.CSS_SELECTOR, "#clusters tbody tr[data-cluster]")
    assert [r.get_attribute("data-cluster") for r in rows] == ["keebler"]
    assert "alive" in rows[0].text and "36" in rows[0].text
    wait(driver, lambda d: "site=livermore" in text_of(d, "#clusters"), "the agent's state keys did not show")
    wait(driver, lambda d: "completed 1" in text_of(d, '#clusters tr[data-cluster="keebler"] td.counts'),
         "the jobs by state of keebler did not update")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-states polyline"), "no chart of jobs by state")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#chart-load rect[data-cluster="keebler"]'),
         "no load chart")
    assert not driver.find_elements(By.CSS_SELECTOR, '#chart-load rect[data-cluster="tioga"]')
    wait(driver, lambda d: "live" in (d.find_element(By.ID, "live").get_attribute("class") or ""), "not live")
    shot(driver, "overview")
    driver.get(world.url + "/clusters/keebler")
    assert "3" in text_of(driver, ".classes tbody") and "12 core, 1 socket" in text_of(driver, ".classes tbody")
    shot(driver, "cluster")


def test_a_job_submitted_over_grpc_appears_and_completes_without_a_reload(signed_in, world):
    from selenium.webdriver.common.by import By

    driver = signed_in
    driver.get(world.url + "/jobs")
    driver.execute_script("window.rainbowNoReload = 'still the same page';")
    wait(driver, lambda d: "live" in (d.find_element(By.ID, "live").get_attribute("class") or ""), "not live")
    job = world.keebler.submit(["sh", "-c", "echo hello"], name="hello-dashboard")
    row = f'tr[data-job="{job}"]'
    wait(driver, lambda d: text_of(d, row), "the new job did not appear")
    wait(driver, lambda d: text_of(d, row + " [data-state]") == "completed", "the job did not reach completed")
    assert driver.execute_script("return window.rainbowNoReload") == "still the same page"
    shot(driver, "jobs")

    driver.find_element(By.CSS_SELECTOR, f'{row} a[href="/jobs/{job}"]').click()
    wait(driver, lambda d: text_of(d, "#job-state") == "completed", "the job page did not open")
    explanation = text_of(driver, "#placement")
    assert "Listed clusters: keebler. Matched: keebler." in explanation
    assert "Selection random chose keebler" in explanation
    timeline = text_of(driver, "#timeline")
    for state in ("assigned", "leased", "accepted", "submitted", "running", "completed"):
        assert state in timeline
    assert text_of(driver, "#exit-code") == "0" and text_of(driver, "#local-id") not in ("", "not yet")
    shot(driver, "job")


def test_cancel_from_the_job_page(signed_in, world):
    from selenium.webdriver.common.by import By

    driver = signed_in
    job = world.keebler.submit(["sleep", "120"], name="long-sleep")
    driver.get(f"{world.url}/jobs/{job}")
    wait(driver, lambda d: text_of(d, "#job-state") == "running", "the job did not start")
    driver.find_element(By.ID, "cancel").click()
    wait(driver, lambda d: "cancel requested" in text_of(d, "#notice"), "the cancel was not confirmed")
    wait(driver, lambda d: text_of(d, "#job-state") == "cancelled", "the job did not end cancelled")
    assert not driver.find_elements(By.ID, "cancel")
    assert world.keebler.info(job).state == "cancelled"


def test_another_clusters_job_stays_hidden(signed_in, world):
    from selenium.webdriver.common.by import By

    driver = signed_in
    hidden = world.tioga.submit(["true"], name="tioga-secret-job")
    driver.get(f"{world.url}/jobs/{hidden}")
    assert "does not open job" in driver.find_element(By.TAG_NAME, "body").text
    driver.get(world.url + "/jobs")
    assert not driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{hidden}"]')
    assert "tioga-secret-job" not in driver.page_source


def test_a_hostile_job_name_is_shown_as_text(signed_in, world):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver = signed_in
    driver.get(world.url + "/jobs")
    wait(driver, lambda d: "live" in (d.find_element(By.ID, "live").get_attribute("class") or ""), "not live")
    job = world.keebler.submit(["true"], name=HOSTILE)
    row = f'tr[data-job="{job}"]'
    wait(driver, lambda d: text_of(d, row + " .name") == HOSTILE, "the hostile name did not show as text")
    assert not driver.find_elements(By.CSS_SELECTOR, "#jobs img")
    shot(driver, "hostile")
    driver.get(f"{world.url}/jobs/{job}")
    assert text_of(driver, "#job-name") == HOSTILE
    assert not driver.find_elements(By.CSS_SELECTOR, "main img")
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the check
