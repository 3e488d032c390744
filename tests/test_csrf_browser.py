"""CSRFMiddleware in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``) on uvicorn.

One browser and one server for the module. The victim's site is
``http://127.0.0.1:PORT``; the attacker's page is served by the same server but
opened as ``http://localhost:PORT``, another site to the browser. Without the
browser (or selenium) the tests skip, and fail when ``FASTAPI_SESSIONS_TEST_REQUIRE``
is ``all`` or names ``browser``, as CI sets it.
"""

from __future__ import annotations

import html
import json
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Router

from conftest import SECRET, free_port
from fastapi_sessions import (
    CSRFMiddleware,
    HeaderFrontend,
    InMemoryBackend,
    SessionManager,
    SessionMiddleware,
    csrf_token,
    session_of,
)
from fastapi_sessions.frontends import CookieFrontend
from fastapi_sessions.testing.servers import REQUIRE_VARIABLE, required

WAIT = 20  # seconds: the bound on every page load, script and server start


def _missing(what: str) -> None:
    message = f"the browser tests need {what}: apt-get install -y chromium chromium-driver; pip install selenium"
    if required("browser"):
        pytest.fail(f"{message}; {REQUIRE_VARIABLE} requires it", pytrace=False)
    pytest.skip(message)


class Bank:
    """What the victim's site did: the transfers that went through."""

    def __init__(self) -> None:
        self.transfers: list[str] = []


def cookie_app(bank: Bank) -> FastAPI:
    manager = SessionManager(InMemoryBackend(), CookieFrontend(SECRET, secure=False))  # plain http on loopback
    app = FastAPI()
    app.add_middleware(CSRFMiddleware, manager=manager)
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.get("/form", response_class=HTMLResponse)
    async def form(request: Request) -> str:
        token = html.escape(csrf_token(request))
        return (f'<form method="post" action="/transfer"><input type="hidden" name="csrf_token" value="{token}">'
                '<input name="amount" value="10"><button id="go">Send</button></form>'
                f'<script>window.csrfToken = "{token}";</script>')

    @app.post("/transfer")
    async def transfer(request: Request) -> JSONResponse:
        amount = parse_qs((await request.body()).decode()).get("amount", ["?"])[0]
        bank.transfers.append(amount)
        return JSONResponse({"transferred": amount})

    @app.get("/evil", response_class=HTMLResponse)
    async def evil(request: Request) -> str:
        target = request.query_params["target"]
        return (f'<form id="attack" method="post" action="{html.escape(target)}">'
                '<input type="hidden" name="csrf_token" value="guessed"><input name="amount" value="1000"></form>'
                '<script>document.getElementById("attack").submit();</script>')

    return app


def header_app(bank: Bank) -> FastAPI:
    manager = SessionManager(InMemoryBackend(), HeaderFrontend(SECRET))
    app = FastAPI()
    app.add_middleware(CSRFMiddleware, manager=manager)
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>API client</p>"

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        session_of(request).user_id = "alice"
        return {"ok": True}

    @app.post("/transfer")
    async def transfer(request: Request) -> dict[str, Any]:
        bank.transfers.append("api")
        return {"user": session_of(request).user_id}

    return app


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, Bank]]:
    """The server (cookie sessions at /, header sessions at /api/), its port, and what it did."""
    import uvicorn

    bank = Bank()
    port = free_port()
    app = Router(routes=[Mount("/api", app=header_app(bank)), Mount("/", app=cookie_app(bank))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"{port}", bank
    finally:
        server.should_exit = True
        thread.join(WAIT)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _missing("chromium and chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--host-resolver-rules=MAP localhost 127.0.0.1", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def victim(site: tuple[str, Bank], browser: Any) -> Iterator[tuple[Any, str, Bank]]:
    """The browser with a fresh session on the victim's site (its form page open), and the server's record."""
    port, bank = site
    browser.delete_all_cookies()
    bank.transfers.clear()
    origin = f"http://127.0.0.1:{port}"
    browser.get(f"{origin}/form")
    yield browser, origin, bank


def arrive(browser: Any, url: str) -> None:
    """Wait (at most WAIT) until a navigation the page started has loaded ``url``.

    ``click()`` and a form that submits itself on load return before the navigation they start
    is done, so reading ``current_url`` at once may still see the page before it.
    """
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, WAIT).until(
        lambda b: b.current_url == url and b.execute_script("return document.readyState") == "complete")


def page_json(browser: Any) -> Any:
    from selenium.webdriver.common.by import By

    return json.loads(browser.find_element(By.TAG_NAME, "body").text)


def fetch(browser: Any, path: str, headers: dict[str, str] | None = None, body: str = "amount=5") -> dict[str, Any]:
    """``fetch(path)`` from the open page (POST, its cookies): status, JSON body and the session header."""
    script = """
        const [path, headers, body, done] = arguments;
        fetch(path, {method: "POST", credentials: "same-origin", body: body,
                     headers: Object.assign({"Content-Type": "application/x-www-form-urlencoded"}, headers)})
            .then(async r => done({status: r.status, body: await r.json(),
                                   session: r.headers.get("X-Session-Token")}))
            .catch(e => done({status: 0, body: String(e)}));
    """
    result: dict[str, Any] = browser.execute_async_script(script, path, headers or {}, body)
    return result


def test_a_same_site_form_post_with_the_token_succeeds(victim: tuple[Any, str, Bank]) -> None:
    from selenium.webdriver.common.by import By

    browser, origin, bank = victim
    browser.find_element(By.ID, "go").click()
    arrive(browser, f"{origin}/transfer")
    assert page_json(browser) == {"transferred": "10"}
    assert bank.transfers == ["10"]


def test_a_cross_site_form_post_is_rejected(victim: tuple[Any, str, Bank]) -> None:
    browser, origin, bank = victim
    port = origin.rsplit(":", 1)[1]
    browser.get(f"http://localhost:{port}/evil?target={origin}/transfer")  # submits itself on load
    arrive(browser, f"{origin}/transfer")
    body = page_json(browser)
    assert body["reason"] == "cross_site" and body["detail"].startswith("CSRF check failed")
    assert bank.transfers == []
    # The rejected post left the victim's session usable: the real form still works.
    browser.get(f"{origin}/form")
    token = browser.execute_script("return window.csrfToken")
    assert fetch(browser, "/transfer", {"X-CSRF-Token": token})["status"] == 200


def test_a_fetch_without_the_token_is_rejected_and_with_it_passes(victim: tuple[Any, str, Bank]) -> None:
    browser, _, bank = victim
    rejected = fetch(browser, "/transfer")
    assert (rejected["status"], rejected["body"]["reason"]) == (403, "token_missing")
    wrong = fetch(browser, "/transfer", {"X-CSRF-Token": "0" * 43})
    assert (wrong["status"], wrong["body"]["reason"]) == (403, "token_mismatch")
    assert bank.transfers == []
    token = browser.execute_script("return window.csrfToken")
    assert fetch(browser, "/transfer", {"X-CSRF-Token": token}) == {"status": 200, "body": {"transferred": "5"},
                                                                      "session": None}
    assert bank.transfers == ["5"]


def test_the_header_transport_is_not_affected(site: tuple[str, Bank], browser: Any) -> None:
    port, bank = site
    bank.transfers.clear()
    browser.delete_all_cookies()
    browser.get(f"http://127.0.0.1:{port}/api/page")
    login = fetch(browser, "/api/login")
    assert login["status"] == 200 and login["session"]
    transfer = fetch(browser, "/api/transfer", {"X-Session-Token": login["session"]})  # no CSRF token
    assert transfer == {"status": 200, "body": {"user": "alice"}, "session": None}
    assert bank.transfers == ["api"]


@pytest.mark.parametrize(("require", "outcome"), [("all", "error"), ("", "skipped")])
def test_a_missing_browser_fails_the_run_when_required(tmp_path: Any, require: str, outcome: str) -> None:
    """CI sets FASTAPI_SESSIONS_TEST_REQUIRE=all: there, no browser must be a failure, not a quiet skip."""
    import os
    import subprocess
    import sys

    bare = tmp_path / "bin"  # a PATH with Python and nothing else: no chromium, no chromedriver
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare), REQUIRE_VARIABLE: require}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "header_transport", __file__],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    summary = run.stdout.strip().splitlines()[-1]
    assert f"1 {outcome}" in summary, run.stdout
    assert run.returncode == (0 if outcome == "skipped" else 1)
