"""One error base carrying its HTTP status, rendered everywhere as {"error": code, "detail": message}.

The detail is for a person: it names the cause and, where we know it, the fix.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgefarm.wire import ErrorOut


class FarmError(Exception):
    status_code = 500
    code = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(FarmError):
    status_code, code = 400, "bad_request"


class Unauthorized(FarmError):
    status_code, code = 401, "unauthorized"


class Forbidden(FarmError):
    status_code, code = 403, "forbidden"


class NotFound(FarmError):
    status_code, code = 404, "not_found"


class Conflict(FarmError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(FarmError):
    status_code, code = 413, "payload_too_large"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 429: "rate_limited"}


_MEANINGS = {400: "the request cannot be carried out as given: the detail says why and what to change",
             401: "no API token, or an invalid or revoked one",
             403: "this token's role (or its agent and pools) does not allow this",
             404: "no such resource", 408: "the request body stalled (no bytes for EDGEFARM_BODY_IDLE_SECONDS)",
             409: "the resource is not in a state that allows this (finished, taken, the last admin token…)",
             413: "the body is over the farm's limit",
             422: "a field is missing, of the wrong type or out of its bounds",
             503: "the gateway is overloaded for a moment; retry after Retry-After seconds"}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the errors a route can answer with, each with the body every error has."""
    return {code: {"model": ErrorOut, "description": _MEANINGS[code]} for code in codes}


def _body(code: str, detail: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts)


def _busy(what: str) -> JSONResponse:
    return _body("unavailable", f"{what}; retry in a moment (Retry-After), or for this load run the farm on "
                 "PostgreSQL and more gateways", 503, {"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FarmError)
    async def _farm_error(_: Request, exc: FarmError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _body(exc.code, exc.detail, exc.status_code, headers)

    @app.exception_handler(OperationalError)
    async def _database_locked(request: Request, exc: OperationalError) -> JSONResponse:
        # SQLite's one write lock was held past the busy timeout (a burst of writers): the request did nothing
        # and may be sent again. Anything else the database says is a server error.
        if "database is locked" not in str(exc.orig):
            raise exc
        return _busy("the database is busy (SQLite, many writers at once)")

    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _no_connection(request: Request, exc: SQLAlchemyTimeoutError) -> JSONResponse:
        return _busy("every database connection of this gateway is in use")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _body("validation_error", _validation_detail(exc), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The headers too: a 405 carries the Allow header that names the methods the path has.
        return _body(_HTTP_CODES.get(exc.status_code, "error"), str(exc.detail), exc.status_code,
                     getattr(exc, "headers", None))
