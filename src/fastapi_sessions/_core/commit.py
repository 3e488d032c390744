"""What a save did, as the manager tells the middleware (or a caller of ``commit``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Commit", "CommitOutcome"]


class CommitOutcome(enum.Enum):
    """What :meth:`SessionManager.commit` did with a request's session."""

    UNCHANGED = "unchanged"  # nothing to store
    TOUCHED = "touched"  # the idle deadline moved; the cookie already outlives it
    SAVED = "saved"  # the data was stored by compare-and-set (merged into a successor, if it had one)
    CREATED = "created"  # stored for the first time: the cookie is set
    REGENERATED = "regenerated"  # a new token for the same data (a login, say): the cookie is set
    ENDED = "ended"  # logged out or emptied: the cookie is cleared
    GONE = "gone"  # the session ended elsewhere during the request: this request's changes were dropped
    DEAD = "dead"  # the request carried a token whose session is gone: the cookie is cleared


@dataclass(frozen=True, slots=True)
class Commit:
    """The outcome of a save, and what the client must be sent.

    ``token`` is set (with ``max_age``, the seconds until the absolute deadline)
    when the client gets a new token; ``clear`` when it must forget its token.
    Any other outcome sends nothing: the token the client holds is still right.
    """

    outcome: CommitOutcome
    token: str | None = None
    max_age: int = 0

    @property
    def clear(self) -> bool:
        return self.outcome in (CommitOutcome.ENDED, CommitOutcome.DEAD)
