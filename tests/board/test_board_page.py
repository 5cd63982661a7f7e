"""The board page in a real headless Chromium against a live `opsledger serve` on port 0."""
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from client.ledger_client import OpsledgerClient
from tests.cycle.conftest import write_bundle
from tests.helpers import REPO, ServerProcess

OUT = REPO / "tests" / "out"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    yield driver
    driver.quit()


def wait(driver, predicate, timeout=15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#rows tr.ticket")


def no_alert(driver):
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_board_detail_filter_cycle_and_xss(browser, root):
    root.mkdir(parents=True)
    write_bundle(root)
    srv = ServerProcess(root)
    try:
        base = f"http://127.0.0.1:{srv.info['http_port']}/"
        with OpsledgerClient(srv.target) as c:
            ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(30)]
            ids += [c.submit("REQUEST_RECONCILE", {"mode": "FULL", "reason": f"점검 {i}"}).request_id for i in range(6)]
            evil = ids[3]
            c.consume(evil, "w-x", XSS)
            c.complete(evil, "FAILED", "w-x", XSS + " and more")
            for rid in ids[10:14]:
                c.consume(rid, "w1")
            browser.get(base)
            wait(browser, lambda d: len(rows(d)) == 36)
            shown = {r.get_attribute("data-request-id") for r in rows(browser)}
            assert shown == set(ids)
            counts = {e.get_attribute("data-status"): e.text.split()[-1]
                      for e in browser.find_elements(By.CSS_SELECTOR, "#counts .count")}
            assert counts == {"OPEN": "31", "IN_PROGRESS": "4", "DONE": "0", "FAILED": "1"}

            # a consume made through gRPC shows up after the refresh
            c.consume(ids[20], "w2")
            wait(browser, lambda d: d.find_element(
                By.CSS_SELECTOR, f'#rows tr[data-request-id="{ids[20]}"]').get_attribute("data-status") == "IN_PROGRESS")

            # XSS: shown as text, nothing runs, nothing injected
            row = browser.find_element(By.CSS_SELECTOR, f'#rows tr[data-request-id="{evil}"]')
            assert row.find_element(By.CSS_SELECTOR, "td.msg-cell").text == XSS + " and more"
            assert browser.find_elements(By.CSS_SELECTOR, "img") == []
            assert no_alert(browser)

            # the status filter, kept across refreshes
            Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("IN_PROGRESS")
            wait(browser, lambda d: len(rows(d)) == 5)
            time.sleep(4.5)  # one auto-refresh later the filter still holds
            assert {r.get_attribute("data-status") for r in rows(browser)} == {"IN_PROGRESS"}
            assert len(rows(browser)) == 5
            Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("all")
            wait(browser, lambda d: len(rows(d)) == 36)

            # the detail view shows every result in order
            browser.find_element(By.CSS_SELECTOR, f'#rows tr[data-request-id="{evil}"]').click()
            wait(browser, lambda d: d.find_element(By.ID, "d-id").text == evil)
            results = browser.find_elements(By.CSS_SELECTOR, "#d-results tbody tr")
            assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in results] == ["IN_PROGRESS", "FAILED"]
            assert results[0].find_elements(By.TAG_NAME, "td")[4].text == XSS
            assert '"message_id": "m3"' in browser.find_element(By.ID, "d-payload").text
            assert browser.find_elements(By.CSS_SELECTOR, "img") == [] and no_alert(browser)

            # the cycle panel: run with confirmation, receipt shown
            assert browser.find_element(By.ID, "cycle-empty").is_displayed()
            browser.find_element(By.ID, "run-cycle").click()
            browser.switch_to.alert.accept()
            wait(browser, lambda d: d.find_element(By.ID, "cycle").is_displayed(), timeout=30)
            latest = c.latest_cycle().rows[0]
            wait(browser, lambda d: d.find_element(By.ID, "c-id").text == latest.cycle_id)
            assert browser.find_element(By.ID, "c-hash").text == latest.integrity.payload_sha256
            assert browser.find_element(By.ID, "c-snapshot").text == latest.snapshot_ref
            assert browser.find_element(By.ID, "c-result").text == "OK"
            wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#reco tbody tr")) == 4)
            assert "KODEX 200" in browser.find_element(By.ID, "reco").text
            OUT.mkdir(exist_ok=True)
            browser.find_element(By.ID, "d-close").click()
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(str(OUT / "board.png"))
            browser.set_window_size(390, 844)
            time.sleep(0.5)
            browser.save_screenshot(str(OUT / "board-phone.png"))
            # usable at phone width: no horizontal scroll of the page itself
            assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    finally:
        assert srv.terminate() == 0
    assert (OUT / "board.png").stat().st_size > 10_000


def test_run_cycle_is_refused_visibly_without_a_token(browser, root):
    srv = ServerProcess(root, env={"OPSLEDGER_TOKEN": "board-token-1-7f3c9e"})
    try:
        browser.get(f"http://127.0.0.1:{srv.info['http_port']}/")
        wait(browser, lambda d: d.find_element(By.ID, "cycle-empty").is_displayed())
        browser.find_element(By.ID, "run-cycle").click()
        browser.switch_to.alert.accept()
        msg = wait(browser, lambda d: d.find_element(By.ID, "run-msg") if "token" in d.find_element(
            By.ID, "run-msg").text else None)
        assert "needs a token" in msg.text and "error" in msg.get_attribute("class")
        assert not (root / "reports/live/cycle/latest/live_cycle_latest.json").exists()
        browser.find_element(By.ID, "token").send_keys("board-token-1-7f3c9e")
        browser.find_element(By.ID, "run-cycle").click()
        browser.switch_to.alert.accept()
        wait(browser, lambda d: d.find_element(By.ID, "cycle").is_displayed(), timeout=30)
        assert (root / "reports/live/cycle/latest/live_cycle_latest.json").exists()
    finally:
        assert srv.terminate() == 0
