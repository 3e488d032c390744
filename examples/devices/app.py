"""A server-rendered app with a device list: sign in, see where you are signed in, sign devices out.

Every form is protected by ``CSRFMiddleware`` (a token in a hidden field, plus
the Fetch Metadata / Origin checks); results are shown once, as flash messages.
The same device list is also a JSON API under ``/api`` (``sessions_router``).

Run it with ``uvicorn examples.devices.app:app`` (it needs ``python-multipart`` for
the forms) and open http://127.0.0.1:8000 in two browsers. The cookie is not
``Secure`` here so that plain-http localhost works; keep the default in production.
"""

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from fastapi_sessions import (
    CookieFrontend,
    CSRFMiddleware,
    InMemoryBackend,
    SessionInfo,
    SessionManager,
    SessionMiddleware,
    csrf_token,
    flash,
    get_flashed_messages,
    session_of,
    sessions_router,
)

manager = SessionManager(
    InMemoryBackend(),
    CookieFrontend("example-secret-key-change-me-0123456789", secure=False),
    max_sessions_per_user=5,  # a sixth sign-in ends the oldest
)
app = FastAPI(lifespan=manager.lifespan)
app.add_middleware(CSRFMiddleware, manager=manager)  # inside the session middleware: added first
app.add_middleware(SessionMiddleware, manager=manager)
app.include_router(sessions_router(manager), prefix="/api")


def _page(request: Request, body: str) -> HTMLResponse:
    flashes = "".join(f'<p class="{escape(category)}">{escape(message)}</p>'
                      for category, message in get_flashed_messages(request, with_categories=True))
    return HTMLResponse(f"<!doctype html><title>Devices</title>{flashes}{body}")


def _form(request: Request, action: str, label: str) -> str:
    token = escape(csrf_token(request))
    return (f'<form method="post" action="{escape(action)}"><input type="hidden" name="csrf_token" value="{token}">'
            f"<button>{escape(label)}</button></form>")


def _row(request: Request, info: SessionInfo) -> str:
    device = escape(info.user_agent or "unknown browser")
    seen = info.last_seen.strftime("%Y-%m-%d %H:%M UTC") if info.last_seen else "-"
    action = "this device" if info.current else _form(request, f"/devices/{info.key}/sign-out", "Sign out")
    return f"<tr><td>{device}</td><td>{seen}</td><td>{action}</td></tr>"


@app.get("/")
async def home(request: Request) -> HTMLResponse:
    session = session_of(request)
    if session.user_id is None:
        token = escape(csrf_token(request))  # an anonymous session gets a token: login forms need one too
        return _page(request, '<form method="post" action="/login">'
                              f'<input type="hidden" name="csrf_token" value="{token}">'
                              '<input name="username" placeholder="name" required> <button>Sign in</button></form>')
    infos = await manager.list_sessions(session.user_id, current=session)
    rows = "".join(_row(request, info) for info in infos)
    return _page(request, f"<h1>Signed in as {escape(session.user_id)}</h1>"
                          f"<table><tr><th>Device</th><th>Last seen</th><th></th></tr>{rows}</table>"
                          + _form(request, "/devices/sign-out-others", "Sign out all other devices")
                          + _form(request, "/logout", "Sign out"))


@app.post("/login")
async def login(request: Request) -> RedirectResponse:
    username = str((await request.form()).get("username", "")).strip()
    if username:
        session_of(request).user_id = username  # a new token, the device recorded, the CSRF token rotated
        flash(request, f"Signed in as {username}.")
    return RedirectResponse("/", status_code=303)


@app.post("/devices/{key}/sign-out")
async def sign_out_device(key: str, request: Request) -> RedirectResponse:
    user_id = session_of(request).user_id
    if user_id is not None and await manager.revoke(key, user_id=user_id):  # only one of this user's own
        flash(request, "That device is signed out.")
    else:
        flash(request, "No such device.", "error")
    return RedirectResponse("/", status_code=303)


@app.post("/devices/sign-out-others")
async def sign_out_others(request: Request) -> RedirectResponse:
    ended = await manager.revoke_others(session_of(request))
    flash(request, f"Signed out {ended} other device(s).")
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    request.session.clear()
    flash(request, "You are signed out.")  # survives the logout: it starts a fresh anonymous session
    return RedirectResponse("/", status_code=303)
