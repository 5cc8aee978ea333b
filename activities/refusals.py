"""Which database errors can heal, for the steps that run as activities. A lost
connection, a serialization failure or a deadlock may go away on the next try, so a step
meeting one is retried (for as long as it takes: an outage delays a booking, never undoes
it). Data the database refuses (a NUL byte, a value out of range, a broken constraint)
gets the same answer every time, so retrying it would wedge the booking: such a step
fails for good instead.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError, StatementError

from contract import Failure, failure

P = ParamSpec("P")
T = TypeVar("T")

# Only the data's own faults. A missing column, a revoked grant or bad SQL is a fault of
# the deploy: it heals once the migration runs or the fix ships, so it is retried (a
# booking waits; it is never undone for it).
_REFUSED = (
    psycopg.DataError,
    psycopg.IntegrityError,
    UnicodeError,  # a string with a lone surrogate cannot even be sent
)


def refused_for_good(exc: BaseException) -> bool:
    """Whether the database (or its driver) refused the data itself."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return False
    orig = exc.orig if isinstance(exc, StatementError) else exc
    return isinstance(orig, _REFUSED)


def describe(exc: BaseException) -> str:
    """The refusal by its kind alone: the statement, its parameters and even the
    database's message (`invalid input syntax ...: "<the value>"`) may quote a
    customer's data, and this text goes into histories and answers."""
    orig = exc.orig if isinstance(exc, StatementError) else exc
    code = getattr(orig, "sqlstate", None)
    kind = f"{type(orig).__name__}, SQLSTATE {code}" if code else type(orig).__name__
    return f"the database refused the data ({kind})"


def refusals_are_final(step: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Wrap a database step: a refusal becomes a non-retryable DataRefused failure,
    anything else propagates and is retried."""

    @functools.wraps(step)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await step(*args, **kwargs)
        except (StatementError, *_REFUSED) as exc:
            if not refused_for_good(exc):
                raise
            raise failure(Failure.DATA_REFUSED, describe(exc)) from None

    return guarded
