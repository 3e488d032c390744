"""The README's first example: sessions through the manager's direct API.

Run it with ``python3 scripts/dev.py example`` (or ``uvicorn examples.quickstart:app``), then:

    curl -X POST 'http://127.0.0.1:8000/login?username=alice'
    curl 'http://127.0.0.1:8000/me?session_id=<the id it returned>'
"""

from typing import Any

from fastapi import FastAPI, HTTPException

from fastapi_sessions import CookieFrontend, InMemoryBackend, SessionManager

app = FastAPI()
backend = InMemoryBackend()
frontend = CookieFrontend(secret_key="my-secret-key")
manager = SessionManager(backend=backend, frontend=frontend)


@app.post("/login")
async def login(username: str) -> dict[str, str]:
    session_id = await manager.create_session(data={"user": username})
    return {"session_id": session_id}


@app.get("/me")
async def get_me(session_id: str) -> dict[str, Any]:
    session = await manager.get_session(session_id)
    if not session:
        raise HTTPException(status_code=401, detail="Invalid session")
    return session.data
