"""The fastapi-sessions 0.3.2 API, kept so that 0.3.2 applications run unchanged.

0.3.2 (September 2021, unmaintained since) had no manager and no store of its own: the
application generates a UUID per session, stores a pydantic model under it in
a ``SessionBackend[ID, SessionModel]`` (four async methods; ``InMemoryBackend``
was the only one), sends the UUID in an itsdangerous-signed cookie
(``SessionCookie``), and reads the model back in routes through a
``SessionVerifier`` subclass that shares the cookie's ``identifier``. The
cookie leaves the id in ``request.state.session_ids[identifier]`` for the
verifier to pick up.

The implementation lives here; each 0.3.2 import path (under
``fastapi_sessions.``) is a thin re-export of one module:

    frontends.session_frontend          ID, SessionFrontend, registry   .frontend
    frontends.implementations[.cookie]  SessionCookie, CookieParameters,
                                        SameSiteEnum                    .cookie
    backends.session_backend            SessionBackend, SessionModel    .backend
    backends (lazy ``SessionBackend``)                                  .backend
    backends.implementations[.in_memory_backend]  InMemoryBackend       .memory
    backends.implementations[.bridge]   BridgeBackend (new)             .bridge
    session_verifier                    SessionVerifier                 .verifier

Their exceptions (0.3.2's ``BackendError`` and ``FrontendError``, the bridge's
``StoreError`` and ``StoreUnavailable``) are in :mod:`fastapi_sessions.errors`
with all the others.

Classes whose 0.3.2 names are also names of the new API carry a ``Legacy``
prefix here (``LegacySessionBackend``, ``LegacySessionFrontend``,
``LegacyInMemoryBackend``, ``LegacyBackendError``), so that inside the package
one name means one thing. Users never see the prefix: the old paths re-export
them under their 0.3.2 names, and every class here shows its 0.3.2 module and
name in reprs, tracebacks and pickles (``errors.public_path``).

Caveat: the frontend registry that lets a verifier find its cookie
(:func:`.frontend.register_frontend`, the fix for 0.3.2 issue #18) is
process-global and keyed by ``identifier`` alone. Two apps in one process
whose cookies share an identifier see each other's frontend: the latest one
built wins. Give each app its own identifier.

Nothing in the new API imports this package.
"""
