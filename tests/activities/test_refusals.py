"""Which database errors end a step for good (activities/refusals.py): only the data's
own faults. Faults of a deploy (a missing column, a revoked grant) and of the moment (a
lost connection, a deadlock) heal, so the step is retried and the booking waits."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DBAPIError, StatementError
from temporalio.exceptions import ApplicationError

from activities.refusals import describe, refusals_are_final, refused_for_good
from contract import Failure


def wrapped(orig: Exception) -> StatementError:
    """As SQLAlchemy raises it, statement and parameters included."""
    return DBAPIError.instance(
        "UPDATE bookings SET reason = %(reason)s",
        {"reason": "Grace Hopper, +49 151 0000"},
        orig,
        psycopg.Error,
    )


@pytest.mark.parametrize(
    "orig",
    [
        errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
        errors.InvalidTextRepresentation('invalid input syntax for type uuid: "Grace"'),
        errors.NotNullViolation("null value"),
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
    ],
)
def test_data_the_database_refuses_is_refused_for_good(orig: Exception) -> None:
    assert refused_for_good(wrapped(orig))


def test_a_string_that_cannot_be_encoded_is_refused_for_good() -> None:
    encoding = UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
    assert refused_for_good(StatementError("cannot encode", "SELECT 1", {}, encoding))


@pytest.mark.parametrize(
    "orig",
    [
        errors.UndefinedColumn('column "payment_client_secret" does not exist'),
        errors.InsufficientPrivilege("permission denied for table bookings"),
        errors.SerializationFailure("could not serialize access"),
        errors.DeadlockDetected("deadlock detected"),
        psycopg.OperationalError("connection refused"),
    ],
)
def test_faults_that_heal_are_retried(orig: Exception) -> None:
    assert not refused_for_good(wrapped(orig))


def test_a_refusal_is_described_without_the_data() -> None:
    said = describe(wrapped(errors.InvalidTextRepresentation('for type uuid: "Grace"')))
    assert said.startswith("the database refused the data (InvalidTextRepresentation")
    assert "Grace" not in said and "+49" not in said


async def test_a_step_meeting_a_refusal_fails_for_good_and_other_faults_propagate() -> None:
    @refusals_are_final
    async def step(orig: Exception) -> None:
        raise wrapped(orig)

    with pytest.raises(ApplicationError) as final:
        await step(errors.UntranslatableCharacter("unsupported Unicode escape sequence"))
    assert final.value.type == Failure.DATA_REFUSED and final.value.non_retryable
    assert final.value.__cause__ is None  # the statement and its parameters stay behind
    with pytest.raises(StatementError):
        await step(errors.UndefinedColumn("no such column"))
