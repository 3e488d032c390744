"""The bare FastAPI baseline. Needs only FastAPI, so both the main process and
the 0.3.2 subprocess build it from here and subtract the same thing."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from harness import BARE, USER_VALUE, Contender


def bare_contender() -> Contender:
    app = FastAPI()
    # Same dict work as the session routes, on a plain module-level dict.
    state: dict[str, Any] = {}

    @app.post("/setup")
    async def setup() -> JSONResponse:
        state.update(counter=0, user=USER_VALUE)
        return JSONResponse({"value": 0})

    @app.get("/rmw")
    async def rmw() -> JSONResponse:
        value = state["counter"] + 1
        state["counter"] = value
        return JSONResponse({"value": value})

    @app.get("/ro")
    async def ro() -> JSONResponse:
        return JSONResponse({"value": state["user"]})

    return Contender(BARE, app, uses_cookie=False)
