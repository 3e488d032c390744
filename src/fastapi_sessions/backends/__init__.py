"""Storage backends. Each lives in its own module and imports its own driver.

Import a backend module explicitly (``fastapi_sessions.backends.in_memory``);
this package imports none of them, so installing one extra never requires
another's driver.
"""
