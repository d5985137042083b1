"""The inspector in a real headless Chromium against a real ``receiver serve``.

One server and one browser for the module (the steps build on each other, in file
order): sign in, follow a delivery to its event and lead, replay, the playground,
script payloads staying inert, live mode, keyboard use, a phone-width screen, erasure.
Screenshots of every page land in test-output/screenshots/ (look at them).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AUTH, ROOT, SECRETS, Server, make_env
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"

# Each payload, if it ever ran, would set window.__xss or change the title.
SCRIPT = "<script>window.__xss='script'</script>"
IMG = "\"><img src=x onerror=\"window.__xss='img';document.title='pwned'\">"
SVG = "<svg onload=\"window.__xss='svg'\"></svg>"
JS_URL = "javascript:window.__xss='href'"
XSS_KARTRA = {
    "lead": {
        "id": "xss-1",
        "email": "mallory@example.com",
        "first_name": SCRIPT,
        "last_name": IMG,
        "company": SVG,
        "website": JS_URL,
        "custom_fields": [
            {"field_identifier": "bio", "field_type": "text_area", "field_value": SCRIPT + IMG},
            {"field_identifier": IMG, "field_type": "input_field", "field_value": JS_URL},
        ],
    },
    "action": "assign_tag",
    "action_details": {"tag": {"tag_id": "9", "tag_name": IMG + SVG}},
}
XSS_CROCT = {"type": "linkOpened", "link": JS_URL, "userId": "<script>window.__xss='croct'</script>"}
ANA_KARTRA = {
    "lead": {
        "id": "ana-1",
        "email": "Ana@Example.com",
        "first_name": "Ana",
        "website": "https://ana.example/",
    },
    "action": "kartra_page_visit",
    "action_details": {"kartra_page": {"kartra_page_id": "7", "kartra_page_name": "Pricing"}},
}
ANA_CROCT = {"type": "leadGenerated", "lead": {"email": "ana@example.com", "company": "Acme"}}
ANA_AFFITOR = {"customer_code": "c-ana", "user_id": "u-ana", "email": "ana@example.com", "name": "Ana Silva"}
ANA_CONVEAD = {
    "app_key": SECRETS["RECEIVER_CONVEAD_APP_KEY"],
    "visitor_uid": "ana-visitor",
    "guest_uid": "g-ana",
    "data": '{"type":"link","url":"https://shop.example/?utm_source=news","title":"Shop",'
    '"visitor_info":{"email":"ana@example.com","last_name":"Silva"}}',
}


@pytest.fixture(scope="module")
def live_server() -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix="receiver-ui-")) / "data"
    server = Server(data_dir, env=make_env(data_dir)).start()
    yield server
    server.stop()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


def chromium(profile: str) -> WebDriver:
    """Debian's Chromium through its chromedriver, with the flags a closed network needs."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(15)
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not Path(CHROMIUM).exists() or not Path(DRIVER).exists():
        pytest.fail("chromium and chromium-driver are needed (scripts/test installs them with apt-get)")
    profile = tempfile.mkdtemp(prefix="receiver-chromium-")
    driver = chromium(profile)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# -- helpers ----------------------------------------------------------------------------
def post(server: Server, source: str, path: str = "", **kwargs: Any) -> httpx.Response:
    auth = AUTH[source]
    params = {**auth.get("params", {}), **kwargs.pop("params", {})}
    headers = {**auth.get("headers", {}), **kwargs.pop("headers", {})}
    return httpx.post(f"{server.url}/hooks/{source}{path}", params=params, headers=headers, **kwargs)


def wait(driver: WebDriver, css: str, timeout: float = 5) -> WebElement:
    return WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def follow(driver: WebDriver, element: WebElement, keys: str | None = None) -> None:
    """Click (or type ``keys`` into) an element and wait until the next page has loaded."""
    driver.execute_script("window.__leaving = true")
    if keys is None:
        element.click()
    else:
        element.send_keys(keys)
    # Mid-navigation the driver may raise anything about the old document: keep polling.
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__leaving === undefined && document.readyState === 'complete'"
        )
    )
    wait(driver, "main")


def shot(driver: WebDriver, name: str, width: int = 1280) -> None:
    """A full-page screenshot: the window is stretched to the page's height first."""
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 100, 600), 6000))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1280, 900)


def inert(driver: WebDriver) -> None:
    """No payload ran, and no vendor value became a javascript: link."""
    assert driver.execute_script("return window.__xss === undefined")
    assert driver.title.endswith("receiver inspector") and "pwned" not in driver.title
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('[href],[src],[action]'))"
        ".map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action'))"
    )
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")]
    assert not driver.find_elements(By.CSS_SELECTOR, "main img, main script, main iframe")


def open_page(driver: WebDriver, server: Server, path: str) -> None:
    driver.get(server.url + path)
    wait(driver, "main")


# -- the steps --------------------------------------------------------------------------
def test_sign_in_with_the_key_and_land_where_you_were_going(live_server: Server, browser: WebDriver) -> None:
    open_page(browser, live_server, "/ui/deliveries?status=accepted")
    assert "/ui/?next=" in browser.current_url
    field = browser.switch_to.active_element  # autofocus: typing works at once
    assert field.get_attribute("name") == "api_key" and field.get_attribute("type") == "password"
    follow(browser, field, "not-the-key" + Keys.ENTER)
    error = wait(browser, ".error[role=alert]")
    assert "not the read-API key" in error.text
    shot(browser, "01-sign-in-error")
    follow(browser, browser.find_element(By.NAME, "api_key"), SECRETS["RECEIVER_API_KEY"] + Keys.ENTER)
    assert browser.current_url.endswith("/ui/deliveries?status=accepted")
    cookie = browser.get_cookie("receiver_ui")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it


def test_a_delivery_leads_to_its_event_and_its_lead(live_server: Server, browser: WebDriver) -> None:
    r = post(live_server, "kartra", json=ANA_KARTRA)
    assert r.status_code == 202
    delivery_id, event_id = r.json()["delivery_id"], r.json()["events"][0]["id"]
    assert post(live_server, "convead", "/watch/event", data=ANA_CONVEAD).status_code == 200
    assert post(live_server, "croct", json=ANA_CROCT).status_code == 202
    assert post(live_server, "affitor", "/api/tracking/lead", json=ANA_AFFITOR).status_code == 200
    beacon = {
        "context": {"tabId": "t-1", "url": "https://shop.example/checkout", "timeZone": "Europe/Lisbon"},
        "payload": {"type": "goalCompleted", "goalId": "x", "value": -1, "currency": "EUR"},
        "originalTime": 1764028800000,
    }
    rejected = post(live_server, "croct", "/client/web/track", json=beacon, headers={"X-Client-Id": "c" * 32})
    assert rejected.status_code == 422

    open_page(browser, live_server, "/ui/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    chart = browser.find_element(By.CSS_SELECTOR, "figure.chart")
    assert chart.find_element(By.TAG_NAME, "title").get_attribute("textContent").startswith("5 deliveries")
    assert chart.find_element(By.TAG_NAME, "figcaption").text.startswith("5 in the last hour")
    assert len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")) == 60
    shot(browser, "02-overview")

    open_page(browser, live_server, "/ui/deliveries")
    search = browser.find_element(By.ID, "f-q")
    follow(browser, search, delivery_id[-12:] + Keys.ENTER)
    wait(browser, f"tr[data-id='{delivery_id}']")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#delivery-rows tr")) == 1
    open_page(browser, live_server, "/ui/deliveries")
    shot(browser, "03-deliveries")
    follow(browser, browser.find_element(By.CSS_SELECTOR, f"a[href='/ui/deliveries/{delivery_id}']"))
    assert delivery_id in browser.find_element(By.TAG_NAME, "h1").text
    assert '"first_name": "Ana"' in browser.find_element(By.CSS_SELECTOR, "pre.json").text
    curl = browser.find_element(By.ID, "curl").text
    assert "${RECEIVER_KARTRA_TOKEN}" in curl and SECRETS["RECEIVER_KARTRA_TOKEN"] not in curl
    shot(browser, "04-delivery")

    follow(browser, browser.find_element(By.CSS_SELECTOR, f"a[href='/ui/events/{event_id}']"))
    assert "page.viewed" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    shot(browser, "05-event")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "dl.facts a[href^='/ui/leads/']"))
    timeline = browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")
    assert len(timeline) == 4  # one person, across the four vendors
    sources = {s.text for s in browser.find_elements(By.CSS_SELECTOR, ".timeline .source")}
    assert sources == {"kartra", "convead", "croct", "affitor"}
    traits = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-traits]").text
    assert "last_name Silva convead" in traits and "first_name Ana kartra" in traits
    assert "company Acme croct" in traits
    assert "Ana Silva" not in traits  # Affitor's name is dropped before anything is stored
    link = browser.find_element(By.LINK_TEXT, "https://ana.example/")
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    shot(browser, "06-lead")

    rejected_id = rejected_delivery(live_server)
    open_page(browser, live_server, f"/ui/deliveries/{rejected_id}")
    hits = browser.find_elements(By.CSS_SELECTOR, "pre.json .line.hit")
    assert {h.text.strip() for h in hits} == {'"goalId": "x",', '"value": -1,'}  # inside /payload
    browser.find_element(By.LINK_TEXT, "show in the body").click()
    assert browser.execute_script("return location.hash") == "#at-1"
    shot(browser, "07-delivery-rejected")


def rejected_delivery(server: Server) -> str:
    r = httpx.get(
        f"{server.url}/v1/deliveries",
        params={"status": "rejected"},
        headers={"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"},
    )
    return str(r.json()["data"][0]["id"])


def test_replay_shows_what_changed(live_server: Server, browser: WebDriver) -> None:
    r = post(live_server, "kartra", json={**ANA_KARTRA, "action": "assign_tag"})
    assert r.json()["status"] == "unmapped" or r.status_code == 202
    delivery_id = r.json()["delivery_id"]
    open_page(browser, live_server, f"/ui/deliveries/{delivery_id}")
    button = browser.find_element(By.XPATH, "//button[normalize-space()='Replay']")
    follow(browser, button, Keys.ENTER)  # the keyboard is enough
    panel = wait(browser, "#replay-result")
    assert "Replayed with kartra@1" in panel.text
    assert "Status:" in panel.text
    shot(browser, "08-replayed")


def test_playground_maps_a_valid_body_and_points_at_an_invalid_one(
    live_server: Server, browser: WebDriver
) -> None:
    before = deliveries_count(live_server)
    open_page(browser, live_server, "/ui/mappings")
    Select(browser.find_element(By.ID, "p-source")).select_by_visible_text("croct")
    body = browser.find_element(By.ID, "p-body")
    body.send_keys('{"type":"goalCompleted","goalId":"newsletter-sign-up","value":3,"currency":"EUR"}')
    follow(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Map it']"))
    result = wait(browser, "#result")
    assert "Answer 202" in result.text and "goal.completed" in result.text
    assert '"goal_id": "newsletter-sign-up"' in result.text
    shot(browser, "09-playground-valid")

    body = browser.find_element(By.ID, "p-body")
    body.clear()
    body.send_keys('[{"type":"pageOpened","url":"https://a.example/"},{"type":"goalCompleted","goalId":"g"}]')
    follow(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Map it']"))
    result = wait(browser, "#result")
    assert "Answer 422" in result.text
    assert "/1/goalId" in result.find_element(By.CSS_SELECTOR, "ul.reasons").text
    hit = result.find_element(By.CSS_SELECTOR, "pre.json .line.hit")
    assert '"goalId": "g"' in hit.text
    shot(browser, "10-playground-invalid")
    assert deliveries_count(live_server) == before  # nothing stored


def deliveries_count(server: Server) -> int:
    r = httpx.get(
        f"{server.url}/v1/deliveries",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"},
    )
    return len(r.json()["data"])


def test_script_payloads_stay_inert_on_every_page(live_server: Server, browser: WebDriver) -> None:
    r = post(live_server, "kartra", json=XSS_KARTRA)
    assert r.status_code == 202
    delivery_id, event_id = r.json()["delivery_id"], r.json()["events"][0]["id"]
    assert post(live_server, "croct", json=XSS_CROCT).status_code == 202
    bad = post(live_server, "kartra", content=b'{"lead": "' + IMG.encode() + b'", "action": [}')
    assert bad.status_code == 400
    lead_id = httpx.get(
        f"{live_server.url}/v1/events/{event_id}",
        headers={"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"},
    ).json()["lead_id"]

    pages = [
        "/ui/",
        "/ui/deliveries",
        f"/ui/deliveries/{delivery_id}",
        f"/ui/deliveries/{bad.json().get('delivery_id') or rejected_delivery(live_server)}",
        "/ui/events",
        f"/ui/events/{event_id}",
        "/ui/leads",
        f"/ui/leads/{lead_id}",
    ]
    for path in pages:
        open_page(browser, live_server, path)
        inert(browser)
    # The payloads are there, as text.
    open_page(browser, live_server, f"/ui/leads/{lead_id}")
    traits = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-traits]").text
    assert SCRIPT in traits and IMG in traits and JS_URL in traits
    assert not browser.find_elements(By.PARTIAL_LINK_TEXT, "javascript:")
    shot(browser, "11-xss-lead")
    open_page(browser, live_server, f"/ui/deliveries/{delivery_id}")
    assert json.dumps(IMG + SVG) in browser.find_element(By.CSS_SELECTOR, "pre.json").text
    shot(browser, "12-xss-delivery")

    # The playground echoes what was pasted: escaped there too.
    open_page(browser, live_server, "/ui/mappings")
    Select(browser.find_element(By.ID, "p-source")).select_by_visible_text("kartra")
    browser.find_element(By.ID, "p-body").send_keys('{"lead":{"first_name":"</textarea>' + SCRIPT + '"}}')
    follow(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Map it']"))
    inert(browser)
    assert SCRIPT in browser.find_element(By.ID, "p-body").get_attribute("value")


def test_live_mode_adds_new_deliveries(live_server: Server, browser: WebDriver) -> None:
    open_page(browser, live_server, "/ui/deliveries")
    browser.find_element(By.ID, "live").send_keys(Keys.SPACE)  # a checkbox, from the keyboard
    assert browser.find_element(By.ID, "live").is_selected()
    time.sleep(0.3)
    r = post(live_server, "croct", json={"type": "pageOpened", "url": "https://live.example/"})
    new_id = r.json()["delivery_id"]
    try:
        row = wait(browser, f"#delivery-rows tr[data-id='{new_id}']", timeout=10)
    except TimeoutException:
        pytest.fail("the new delivery did not appear in live mode")
    assert browser.find_elements(By.CSS_SELECTOR, "#delivery-rows tr")[0] == row
    assert "new delivery" in browser.find_element(By.ID, "live-status").text


def test_every_field_has_a_label_and_the_keyboard_reaches_everything(
    live_server: Server, browser: WebDriver
) -> None:
    unlabelled_js = (
        "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
        ".filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.outerHTML)"
    )
    lead_id = httpx.get(
        f"{live_server.url}/v1/leads",
        headers={"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"},
    ).json()["data"][0]["id"]
    for path in ["/ui/", "/ui/deliveries", "/ui/events", "/ui/leads", f"/ui/leads/{lead_id}", "/ui/mappings"]:
        open_page(browser, live_server, path)
        assert browser.execute_script(unlabelled_js) == [], path
    # Tab from the top: the skip link first, then the navigation.
    open_page(browser, live_server, "/ui/events")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.execute_script("return location.hash") == "#main"
    seen = []
    for _ in range(12):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        seen.append(
            browser.switch_to.active_element.get_attribute("id") or browser.switch_to.active_element.text
        )
    assert "f-source" in seen and "f-type" in seen and "f-since" in seen


def test_phone_width_stays_readable(live_server: Server, browser: WebDriver) -> None:
    delivery_id = rejected_delivery(live_server)
    for name, path in [("13-phone-delivery", f"/ui/deliveries/{delivery_id}"), ("14-phone-overview", "/ui/")]:
        browser.set_window_size(390, 844)
        open_page(browser, live_server, path)
        # Nothing wider than the screen except inside the scrollable regions.
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone"
        shot(browser, name, width=390)


def test_erase_asks_for_the_id_then_erases(live_server: Server, browser: WebDriver) -> None:
    r = post(
        live_server, "kartra", json={**ANA_KARTRA, "lead": {"id": "erase-me", "email": "eve@example.com"}}
    )
    event_id = r.json()["events"][0]["id"]
    key = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
    lead_id = httpx.get(f"{live_server.url}/v1/events/{event_id}", headers=key).json()["lead_id"]
    open_page(browser, live_server, f"/ui/leads/{lead_id}")
    button = browser.find_element(By.XPATH, "//button[normalize-space()='Erase']")
    assert not button.is_enabled()  # until the id is typed
    field = browser.find_element(By.ID, "confirm")
    field.send_keys(lead_id[:-1])
    assert not button.is_enabled()
    field.send_keys(lead_id[-1])
    assert button.is_enabled()
    shot(browser, "15-erase-confirm")
    follow(browser, button)
    assert "erased" in browser.find_element(By.TAG_NAME, "h1").text.lower()
    shot(browser, "16-erased")
    assert httpx.get(f"{live_server.url}/v1/leads/{lead_id}", headers=key).status_code == 404
    open_page(browser, live_server, f"/ui/leads/{lead_id}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_sign_out(live_server: Server, browser: WebDriver) -> None:
    open_page(browser, live_server, "/ui/")
    follow(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Sign out']"))
    wait(browser, "#api_key")
    assert browser.get_cookie("receiver_ui") is None
    open_page(browser, live_server, "/ui/deliveries")
    assert browser.find_elements(By.ID, "api_key")
