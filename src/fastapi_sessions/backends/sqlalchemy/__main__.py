"""``python -m fastapi_sessions.backends.sqlalchemy create-table|drop-table|ddl URL``; see :func:`main`."""

import sys

from ._cli import main

sys.exit(main())
