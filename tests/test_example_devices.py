"""examples/devices: two browsers, the device list, signing the other out, CSRF on every form, flashes once."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devices_example", ROOT / "examples" / "devices" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _browser(example: ModuleType, agent: str) -> TestClient:
    # Same-origin form posts, as a browser sends them.
    return TestClient(example.app, base_url="http://testserver",
                      headers={"User-Agent": agent, "Sec-Fetch-Site": "same-origin"})


def _token(page: str) -> str:
    found = TOKEN.search(page)
    assert found, page
    return found.group(1)


def _sign_in(client: TestClient, name: str) -> str:
    token = _token(client.get("/").text)
    page = client.post("/login", data={"username": name, "csrf_token": token}).text
    assert f"Signed in as {name}" in page
    return page


def test_two_browsers_see_each_other_and_one_signs_the_other_out(example: ModuleType) -> None:
    with _browser(example, "Laptop Firefox") as laptop, _browser(example, "Phone Safari") as phone:
        _sign_in(laptop, "alice")
        page = _sign_in(phone, "alice")
        assert "Laptop Firefox" in page and "this device" in page  # the phone lists both, itself marked
        assert "Signed in as alice." in page
        assert "Signed in as alice." not in phone.get("/").text  # a flash is shown once

        page = phone.post("/devices/sign-out-others", data={"csrf_token": _token(page)}).text
        assert "Signed out 1 other device(s)." in page
        assert "Laptop Firefox" not in page
        assert 'name="username"' in laptop.get("/").text  # the laptop is signed out


def test_every_form_needs_its_csrf_token(example: ModuleType) -> None:
    with _browser(example, "Laptop") as laptop:
        assert laptop.post("/login", data={"username": "mallory"}).status_code == 403  # login CSRF too
        page = _sign_in(laptop, "alice")
        assert laptop.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        cross = laptop.post("/logout", data={"csrf_token": _token(page)}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert "Signed in as alice" in laptop.get("/").text
        page = laptop.post("/logout", data={"csrf_token": _token(laptop.get("/").text)}).text
        assert "You are signed out." in page


def test_a_device_of_another_user_cannot_be_signed_out(example: ModuleType) -> None:
    with _browser(example, "Bob's") as bob, _browser(example, "Alice's") as alice:
        _sign_in(bob, "bob")
        page = _sign_in(alice, "alice")
        bobs = bob.get("/api/sessions").json()
        (bob_key,) = [device["id"] for device in bobs]
        page = alice.post(f"/devices/{bob_key}/sign-out", data={"csrf_token": _token(page)}).text
        assert "No such device." in page
        assert "Signed in as bob" in bob.get("/").text
