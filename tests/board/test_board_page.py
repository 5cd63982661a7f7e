"""The board page in a real headless Chromium against a live `opsledger serve` on port 0."""
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from opsledger.client.ledger_client import OpsledgerClient
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
    # The page re-renders its rows as events arrive: an element can go stale between find and read.
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=[StaleElementReferenceException]).until(lambda d: predicate(d))


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#rows tr.ticket")


def no_alert(driver):
    try:
        driver.switch_to.alert  # noqa: B018 - the property raises when no alert is open
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


def in_view(driver, element_id):
    """The element's box intersects the window (what the operator sees without scrolling)."""
    return driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.height > 0 && r.top < window.innerHeight && r.bottom > 0 && r.left < window.innerWidth;",
        element_id)


def line_boxes(driver, cell):
    """How many lines a cell's text takes (one client rect per line box)."""
    return driver.execute_script(
        "const range = document.createRange(); range.selectNodeContents(arguments[0]);"
        "return range.getClientRects().length;", cell)


def test_board_shows_detail_in_view_and_says_what_it_means(browser, root):
    import httpx

    root.mkdir(parents=True)
    bundle = root / "state/strategy_bundle/latest/strategy_bundle_latest.json"
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(b"\x00\xff not a bundle")  # unreadable
    srv = ServerProcess(root)
    try:
        base = f"http://127.0.0.1:{srv.info['http_port']}/"
        favicon = httpx.get(base + "favicon.ico")
        assert favicon.status_code == 200 and favicon.headers["content-type"].startswith("image/")
        with OpsledgerClient(srv.target) as c:
            ids = [c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id for i in range(45)]
            for rid in ids[:45:3]:
                c.consume(rid, "w1", "started by the night batch with a longish message to fill the column")
            receipt = c.run_cycle().receipt
        browser.set_window_size(1100, 800)
        browser.get(base)
        wait(browser, lambda d: len(rows(d)) == 45)

        # Full id: the cell's text (what a copy takes) and its title (what a hover shows).
        first = browser.find_element(By.CSS_SELECTOR, f'#rows tr[data-request-id="{ids[-1]}"]')
        cell = first.find_elements(By.TAG_NAME, "td")[5]
        assert cell.get_attribute("textContent").strip() == ids[-1]
        assert cell.find_element(By.CSS_SELECTOR, "[title]").get_attribute("title") == ids[-1]

        # Timestamps keep to one line, here and at phone width.
        for width in (1100, 390):
            browser.set_window_size(width, 800)
            time.sleep(0.3)
            for tr in rows(browser)[:10]:
                for td in tr.find_elements(By.TAG_NAME, "td")[2:4]:
                    if td.is_displayed():  # the phone layout hides the processed column
                        assert line_boxes(browser, td) == 1, (width, td.text)
        browser.set_window_size(1100, 800)

        # The detail opens where the operator is looking: near the top, and far down the page.
        for rid in (ids[-3], ids[2]):
            row = browser.find_element(By.CSS_SELECTOR, f'#rows tr[data-request-id="{rid}"]')
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
            row.click()
            wait(browser, lambda d, rid=rid: d.find_element(By.ID, "d-id").text == rid)
            assert in_view(browser, "detail-panel") and in_view(browser, "d-id") and in_view(browser, "d-close")
            if rid == ids[2]:
                time.sleep(4.5)  # one auto-refresh later: still there, still under its row
                assert browser.find_element(By.ID, "d-id").text == rid and in_view(browser, "detail-panel")
                below = browser.execute_script(
                    "return document.querySelector('#rows tr.selected').nextElementSibling.contains("
                    "document.getElementById('detail-panel'))")
                assert below and browser.find_element(By.ID, "conn").text == ""
            browser.find_element(By.ID, "d-close").click()
            assert not browser.find_element(By.ID, "detail-panel").is_displayed()

        # An unreadable bundle is not "fresh"; a BLOCKED reco says so instead of an empty table.
        wait(browser, lambda d: d.find_element(By.ID, "c-id").text == receipt.cycle_id, timeout=30)
        said = browser.find_element(By.ID, "c-bundle").text
        assert said.startswith("FAIL") and "fresh" not in said and "unusable" in said and "unreadable" in said
        empty = wait(browser, lambda d: d.find_element(By.ID, "r-empty"))
        assert "Blocked" in empty.text and "BUNDLE_FAIL" in empty.text
    finally:
        assert srv.terminate() == 0


def _board_fetches(driver) -> int:
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/tickets/latest?')).length")


def test_board_follows_the_event_stream_without_polling(browser, root):
    root.mkdir(parents=True)
    srv = ServerProcess(root)
    try:
        base = f"http://127.0.0.1:{srv.info['http_port']}/"
        with OpsledgerClient(srv.target) as c:
            first = c.submit("ACKNOWLEDGE", {"message_id": "before"}).request_id
            browser.get(base)
            live = lambda d: d.find_element(By.ID, "live")  # noqa: E731
            wait(browser, lambda d: live(d).get_attribute("data-state") == "live")
            assert "live" in live(browser).text
            wait(browser, lambda d: len(rows(d)) == 1)
            # The EventSource is a real text/event-stream connection.
            source = browser.execute_script(
                "return [live.source instanceof EventSource, live.source.readyState, live.source.url]")
            assert source == [True, 1, base + "api/tickets/events"]
            # Idle and live: no polling (the fallback interval is 4 s).
            settled = _board_fetches(browser)
            time.sleep(5)
            assert _board_fetches(browser) == settled
            # Events update rows and counts as they come.
            second = c.submit("REQUEST_LIVE_CYCLE", {"reason": "live"}).request_id
            wait(browser, lambda d: len(rows(d)) == 2)
            c.consume(first, "w1")
            wait(browser, lambda d: d.find_element(
                By.CSS_SELECTOR, f'#rows tr[data-request-id="{first}"]').get_attribute("data-status") == "IN_PROGRESS")
            wait(browser, lambda d: {e.get_attribute("data-status"): e.text.split()[-1]
                                     for e in d.find_elements(By.CSS_SELECTOR, "#counts .count")}.get("OPEN") == "1")
            assert second in {r.get_attribute("data-request-id") for r in rows(browser)}
        # The server goes away: the page says so (and falls back to polling).
        srv.terminate()
        wait(browser, lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "reconnecting")
        assert "reconnecting" in browser.find_element(By.ID, "live").text
    finally:
        if srv.proc.poll() is None:
            srv.kill()
