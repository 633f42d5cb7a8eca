"""Errors as RFC 9457 problem details (`application/problem+json`) with a detail a person can act on."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:optfb:problem:"
# For `responses=` in route decorators, so OpenAPI lists the problem media type.
PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


class Problem(Exception):
    """Raise in a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = PROBLEM_BASE + kind if kind else "about:blank"
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    *,
    type: str = "about:blank",
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_errors(errors: Any) -> list[dict[str, str]]:
    """Pydantic errors as [{"field": "inner.lr", "message": "..."}]."""
    out = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        out.append({"field": where, "message": str(err.get("msg", "invalid"))})
    return out


async def _problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status, exc.detail, type=exc.type, title=exc.title, headers=exc.headers, **exc.extra
    )


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem_response(
        422,
        detail,
        type=PROBLEM_BASE + "invalid-request",
        title="Invalid request",
        errors=errors,
    )


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _database(_: Request, exc: Exception) -> JSONResponse:
    # Missing tables (not migrated) or an unreachable server: the service is not ready.
    log.error("database error: %s", exc)
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return problem_response(
        503,
        f"the database is unavailable or not migrated ({reason}); "
        "run the migrations with `python -m store.db` and check OPTFB_DATABASE_URL",
        type=PROBLEM_BASE + "database-unavailable",
        title="Database unavailable",
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    """Answer every error of `app` with a problem document."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(ProgrammingError, _database)
    app.add_exception_handler(Exception, _unexpected)
