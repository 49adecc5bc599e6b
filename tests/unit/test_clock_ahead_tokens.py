"""Links and session tokens issued at the test clock's time are read at that time, even when the
test clock runs ahead of the real one (PyJWT compares `iat` with the real clock)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from billing_graphql.services.portal.sessions import PortalTokenInvalid, read_portal_token
from billing_graphql.services.platform.auth import AuthenticationFailed, _authenticate_session_token
from tests.helpers import test_settings

AHEAD = datetime(2031, 3, 5, 9, 0, tzinfo=UTC)
SECRET = "s" * 40


def _portal_token(issued: datetime, minutes: int = 30) -> str:
    return jwt.encode(
        {"aud": "billing-portal", "org": str(uuid.uuid4()), "ret": "http://localhost:8000",
         "iat": int(issued.timestamp()), "exp": int((issued + timedelta(minutes=minutes)).timestamp()),
         "jti": "x"},
        SECRET, algorithm="HS256",
    )


def test_a_portal_link_issued_at_a_test_clock_ahead_of_real_time_is_read_at_that_time() -> None:
    settings = test_settings("sqlite+aiosqlite://", portal_secret=SECRET)
    claims = read_portal_token(_portal_token(AHEAD), settings=settings, now=AHEAD + timedelta(minutes=1))
    assert claims.expires_at == AHEAD + timedelta(minutes=30)


def test_a_portal_link_still_expires_by_the_gateways_clock() -> None:
    settings = test_settings("sqlite+aiosqlite://", portal_secret=SECRET)
    with pytest.raises(PortalTokenInvalid, match="expired"):
        read_portal_token(_portal_token(AHEAD), settings=settings, now=AHEAD + timedelta(minutes=31))


async def test_a_session_token_issued_ahead_of_real_time_is_not_refused_for_its_iat() -> None:
    token = jwt.encode({"sub": "u1", "role": "SUPER_ADMIN", "iat": int(AHEAD.timestamp()),
                        "exp": int((AHEAD + timedelta(hours=1)).timestamp())}, SECRET, algorithm="HS256")
    assert AHEAD.timestamp() > time.time()
    actor = await _authenticate_session_token(None, token, SECRET, AHEAD)  # type: ignore[arg-type]
    assert actor.subject.endswith("u1")
    with pytest.raises(AuthenticationFailed, match="expired"):
        await _authenticate_session_token(None, token, SECRET, AHEAD + timedelta(hours=2))  # type: ignore[arg-type]
