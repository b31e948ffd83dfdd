"""The stats page in a real browser: Debian's chromium, headless, driven by
chromedriver through selenium, against a real farm with traffic.

It checks what a person sees at 1,400 px: the page fits without a
horizontal scrollbar, the graphs draw from the master's sampler, the
filter and "hide DOWN servers" work, and a bulk admin action applied from
the page reaches the master (`show stat` over the admin socket). A
screenshot is left in the test's directory (its path is printed)."""

from __future__ import annotations

import csv as pycsv
import io
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.simple_http import NamedServer
from tests.integration.test_stats import request, wait_for
from tests.integration.tools import debian_tool

WIDTH = 1400
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", f"--window-size={WIDTH},1000")
GRAPH_HEIGHT = 54          # the svg height of a graph (farm/stats_assets.py)


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver), installed from Debian when missing (the
    test run installs them with scripts/setup-system --test)."""
    chromium = debian_tool("chromium")
    driver = shutil.which("chromedriver") or debian_tool("chromedriver", "chromium-driver")
    if chromium and driver:
        return chromium, driver
    return None


@pytest.fixture
def browser(tmp_path, monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    paths = browser_paths()
    if paths is None:
        pytest.skip("chromium and chromium-driver are not installable here (apt-get install "
                    "chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1], log_output=str(tmp_path / "chromedriver.log")),
                              options=opts)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def config(port: int, port2: int, sport: int, sock: Path, servers: dict) -> str:
    def entry(be: str, name: str, address: str) -> str:
        return f'[[backends.{be}.servers]]\nname = "{name}"\naddress = "{address}"\n'
    return f"""
[global]
workers = 2
hard_stop_after = "2s"
admin_socket = "{sock}"
[log]
events = "@EVENTS@"
[stats]
bind = "127.0.0.1:{sport}"
refresh = "2s"
admin = true
[defaults]
mode = "http"
[frontends.www]
bind = "127.0.0.1:{port}"
default_backend = "app"
[[frontends.www.http_request]]
action = "deny"
status = 403
if = "{{ path_beg /admin }}"
[frontends.api_in]
bind = "127.0.0.1:{port2}"
default_backend = "api"
[backends.app]
[backends.app.check]
type = "http"
path = "/healthz"
interval = "200ms"
rise = 2
fall = 2
{"".join(entry("app", name, servers[name]) for name in ("web1", "web2", "dead"))}
[backends.api]
{entry("api", "api1", servers["api1"])}
"""


def admin_stat(sock: Path) -> dict:
    """`show stat` over the admin socket: {(pxname, svname): row}."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    lines = list(pycsv.reader(io.StringIO(out.decode().strip())))
    head = [lines[0][0][2:]] + lines[0][1:]
    return {(r[0], r[1]): dict(zip(head, r)) for r in lines[1:]}


class Traffic:
    """Requests to farm from a thread until stopped (at most `limit` s):
    every tenth to a denied path (403), the rest to the backends."""

    def __init__(self, ports: list[int], limit: float = 60.0):
        self.ports = ports
        self.stop_at = time.monotonic() + limit
        self.done = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        i = 0
        while not self.done.is_set() and time.monotonic() < self.stop_at:
            port = self.ports[i % len(self.ports)]
            try:
                request(port, path="/admin" if i % 10 == 9 else "/")
            except OSError:
                pass
            i += 1
            self.sent = i
            time.sleep(0.01)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d or "")]


def rate_line(driver, key: str) -> list[tuple[float, float]]:
    d = js(driver, "var p = document.querySelector('.graphs[data-key=\"' + arguments[0] + "
               "'\"] [data-c=rate] path.s'); return p && p.getAttribute('d');", key)
    return path_points(d)


def visible_rows(driver) -> dict:
    """{section name: [server names shown]} for the sections shown."""
    return js(driver, """
        var out = {};
        document.querySelectorAll('section.px').forEach(function (s) {
          if (s.hidden) return;
          out[s.dataset.name] = Array.from(s.querySelectorAll('tr.srv'))
            .filter(function (r) { return !r.hidden; }).map(function (r) { return r.dataset.name; });
        });
        return out;""")


def set_filter(driver, text: str) -> None:
    box = driver.find_element("id", "filter")
    box.clear()
    if text:
        box.send_keys(text)
    else:        # clear() fires no input event
        js(driver, "arguments[0].dispatchEvent(new Event('input'))", box)


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page at the window's width (Chrome DevTools Protocol)."""
    import base64
    js(driver, "window.scrollTo(0, 0)")               # the sticky bar at the top
    height = js(driver, "return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": min(height, 6000), "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_stats_page_in_headless_chromium(farm_factory, browser, tmp_path):
    from selenium.webdriver.support.ui import Select
    backends = {name: NamedServer(name) for name in ("web1", "web2", "api1")}
    servers = {name: b.address for name, b in backends.items()}
    servers["dead"] = f"127.0.0.1:{free_port()}"            # nothing listens: DOWN
    port, port2, sport = free_port(), free_port(), free_port()
    sock = tmp_path / "admin.sock"
    farm = farm_factory(config(port, port2, sport, sock, servers))
    traffic = Traffic([port, port, port2])
    try:
        farm.wait_event("server_down", 5, server="dead")
        wait_for(lambda: traffic.sent > 50, 10)
        time.sleep(3)                      # a few samples of the master's sampler
        driver = browser
        driver.get(f"http://127.0.0.1:{sport}/")
        assert driver.title.startswith("farm statistics")
        assert js(driver, "return window.innerWidth") == WIDTH

        # the graphs draw from the history: a rate line of several points,
        # above zero, per frontend and backend; bands of response classes
        for key in ("fe/www", "be/app", "fe/api_in", "be/api"):
            points = wait_for(lambda: (lambda p: p if len(p) >= 3 and min(y for _, y in p) < GRAPH_HEIGHT - 3
                                       else None)(rate_line(driver, key)), 10, 0.2)
            assert all(0 <= x <= 300.5 for x, _ in points), points     # the svg's 300 units
        bands = js(driver, "return Array.from(document.querySelectorAll("
                           "'.graphs[data-key=\"fe/www\"] [data-c=codes] path.band'))"
                           ".map(function (p) { return p.getAttribute('d'); })")
        assert len(bands) == 6 and any(len(path_points(d)) >= 3 for d in bands)
        caption = driver.find_element("css selector", '.graphs[data-key="fe/www"] [data-c=codes] .cap').text
        assert "4xx" in caption and "4xx 0%" not in caption        # the denied tenth
        # ... and keep drawing without a reload
        seq = js(driver, "return performance.getEntriesByType('resource').filter(function (e) {"
                         " return e.name.indexOf(';history') >= 0; }).length")
        wait_for(lambda: js(driver, "return performance.getEntriesByType('resource').filter("
                                    "function (e) { return e.name.indexOf(';history;since=') >= 0; })"
                                    ".length") > 0, 6, 0.2)
        assert seq >= 1

        # whole rows coloured by state, badges kept
        state = js(driver, "var o = {}; document.querySelectorAll('section#be-app tr.srv').forEach("
                           "function (r) { o[r.dataset.name] = r.className; }); return o;")
        assert "r-down" in state["dead"] and "r-up" in state["web1"], state
        assert driver.find_element("css selector", 'tr[data-name="dead"] .st').text == "DOWN"
        colour = js(driver, "return getComputedStyle(document.querySelector("
                            "'tr[data-name=\"dead\"] td:last-child')).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), colour

        # it fits 1,400 px: no horizontal scrollbar, the actions in view
        assert js(driver, "return document.documentElement.scrollWidth") <= WIDTH
        overflow = js(driver, "return Array.from(document.querySelectorAll('.tbl')).filter("
                              "function (t) { return t.scrollWidth > t.clientWidth; }).map("
                              "function (t) { return [t.parentNode.id, t.scrollWidth, t.clientWidth]; })")
        assert overflow == [], overflow
        right = js(driver, "return Math.max.apply(null, Array.from(document.querySelectorAll("
                           "'.bulk button, .bulk select')).map(function (b) {"
                           " return b.getBoundingClientRect().right; }))")
        assert 0 < right <= WIDTH

        # the filter: by server name, by backend or frontend name
        set_filter(driver, "dead")
        assert visible_rows(driver) == {"app": ["dead"]}
        set_filter(driver, "api")
        assert visible_rows(driver) == {"api_in": [], "api": ["api1"]}
        set_filter(driver, "")
        assert set(visible_rows(driver)) == {"www", "api_in", "stats", "app", "api"}

        # a bulk action: check web1, choose MAINT, apply
        section = driver.find_element("id", "be-app")
        section.find_element("css selector", 'input.sel[value="web1"]').click()
        assert section.find_element("css selector", ".bulk .count").text == "1 selected"
        Select(section.find_element("css selector", ".bulk select")).select_by_value("maint")
        section.find_element("css selector", ".bulk button").click()
        wait_for(lambda: "Action processed successfully." in driver.page_source, 10, 0.1)
        assert admin_stat(sock)[("app", "web1")]["status"] == "MAINT"
        assert "r-maint" in driver.find_element("css selector", 'tr[data-name="web1"]').get_attribute("class")

        # hide DOWN servers (as HAProxy: DOWN and not going up, or MAINT)
        driver.find_element("id", "hidedown").click()
        assert visible_rows(driver)["app"] == ["web2"]
        driver.refresh()                                     # the choice is remembered
        wait_for(lambda: js(driver, "return document.body.classList.contains('nojs')") is False, 5)
        assert visible_rows(driver)["app"] == ["web2"]
        driver.find_element("id", "hidedown").click()
        assert visible_rows(driver)["app"] == ["web1", "web2", "dead"]

        # the tables refresh in place (refresh = 2s) and keep a checked box
        section = driver.find_element("id", "be-app")
        section.find_element("css selector", 'input.sel[value="web2"]').click()
        js(driver, "document.querySelector('#be-app .tbl').dataset.old = '1'")
        wait_for(lambda: js(driver, "return document.querySelector('#be-app .tbl').dataset.old") is None,
                 6, 0.2)
        assert driver.find_element("css selector", 'input.sel[value="web2"]').is_selected()
        driver.find_element("css selector", 'input.sel[value="web2"]').click()

        # back to READY from the page, for the screenshot
        section = driver.find_element("id", "be-app")
        section.find_element("css selector", 'input.sel[value="web1"]').click()
        Select(section.find_element("css selector", ".bulk select")).select_by_value("ready")
        section.find_element("css selector", ".bulk button").click()
        wait_for(lambda: admin_stat(sock)[("app", "web1")]["status"] == "UP", 10, 0.1)
        time.sleep(2.5)                                     # a graph poll after the reload
        errors = [e for e in driver.get_log("browser")
                  if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
        assert not errors, errors
        Select(driver.find_element("id", "span")).select_by_value("60")    # the last minute
        shot = tmp_path / "stats-page.png"
        full_page_screenshot(driver, shot)
        print(f"\nstats page screenshot: {shot}")
        assert shot.stat().st_size > 10000
    except Exception:
        failed = tmp_path / "stats-page-failed.png"
        full_page_screenshot(browser, failed)
        print(f"\nstats page screenshot at the failure: {failed}")
        raise
    finally:
        traffic.stop()
        for b in backends.values():
            b.close()
