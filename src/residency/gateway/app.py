"""The S3 gateway as a Starlette application.

No Starlette routes: S3 names operations by method + query + addressing, not by path shape,
so `S3Endpoint` takes every HTTP request, `routing.route` decides the operation and
`handlers.HANDLERS` maps it to a coroutine.
Every failure leaves as an S3 XML error; unexpected exceptions become `InternalError` plus a
log line carrying the request id, never a traceback on the wire. A database too busy to answer
(SQLite locked, PostgreSQL serialization failure or deadlock) is `SlowDown` (503), which every
S3 SDK retries with backoff: overload is not a server bug.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from residency.config import Settings
from residency.gateway import errors, sigv4
from residency.gateway.accesslog import AccessLog, loggable, new_request_id
from residency.gateway.auth import AccessKeyCache, audit_denial, authenticate
from residency.gateway.authorize import Denied
from residency.gateway.context import Identity, RequestContext
from residency.gateway.drain import UnreadBodyGuard
from residency.gateway.encryption import refuse_encryption
from residency.gateway.errors import S3Error
from residency.gateway.handlers import HANDLERS
from residency.gateway.handlers.common import from_meta
from residency.gateway.routing import Route, route
from residency.gateway.state import Gateway
from residency.gateway.telemetry import Telemetry
from residency.gateway.xml import error_document
from residency.meta.db import is_contention
from residency.meta.errors import MetaError

log = logging.getLogger("residency.gateway")

_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]
MAX_HEADER_BYTES = 8 * 1024
"""S3 refuses request header sections above 8 KiB (user metadata alone may use 2 KiB)."""


def base_domains(settings: Settings) -> tuple[str, ...]:
    """Domains under which `<bucket>.<domain>` is virtual-host addressing.

    `base_domain` (comma-separated; `RESIDENCY_BASE_DOMAIN`) overrides the default
    `localhost`, so `http://photos.localhost:9000/key` works out of the box.
    """
    configured = settings.base_domain or "localhost"
    return tuple(d.strip() for d in configured.split(",") if d.strip())


def error_response(err: S3Error, request: Request, request_id: str) -> Response:
    request.scope.setdefault("state", {})["s3_error"] = err  # for telemetry (refusals by rule)
    body = (
        b""
        if request.method == "HEAD"
        else error_document(err, request_id=request_id, resource=request.url.path)
    )
    headers = {
        **err.headers,
        "x-amz-request-id": request_id,
        "x-amz-id-2": request_id,
    }
    if err.code == "ResidencyViolation":
        headers["x-residency-error"] = "ResidencyViolation"
    media_type = "application/xml" if body else None
    return Response(body, status_code=err.status, headers=headers, media_type=media_type)


def slow_down() -> S3Error:
    return S3Error("SlowDown", "The metadata database is busy; please retry.", 503)


def _header_bytes(request: Request) -> int:
    return sum(len(k) + len(v) + 4 for k, v in request.headers.raw)


async def _dispatch(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    request_id = str(request.scope.get("state", {}).get("request_id") or new_request_id())
    identity: Identity | None = None
    r: Route | None = None
    try:
        if request.method not in _METHODS:
            what = "OBJECT" if "/" in request.url.path.strip("/") else "BUCKET"
            raise errors.method_not_allowed(request.method, what, ", ".join(_METHODS))
        if _header_bytes(request) > MAX_HEADER_BYTES:
            raise errors.request_header_section_too_large()
        parts = sigv4.RequestParts.from_scope(request.scope)
        # One parse of the query for routing, SigV4 and the handler (Starlette's
        # `query_params` would parse it again, into a heavier multi-dict).
        query = dict(sigv4.query_pairs(parts.query_string))
        r = route(
            request.method,
            request.headers.get("host", ""),
            parts.raw_path,
            query,
            request.headers,
            gw.base_domains,
        )
        request.scope.setdefault("state", {})["operation"] = r.operation
        identity, verified = await authenticate(gw, request, parts)
        refuse_encryption(r.operation, request.headers.keys())
        ctx = RequestContext(gw, request, r, request_id, identity, verified, query)
        handler = HANDLERS.get(r.operation)
        if handler is None:
            what = r.operation if r.operation != "NotImplemented" else request.method
            raise errors.not_implemented(f"{what} with these parameters")
        response = await handler(ctx)
    except S3Error as err:
        # A Cedar/ledger denial (`Denied`) carries its own, more detailed audit entry.
        denied_here = err.code == "AccessDenied" and not isinstance(err, Denied)
        if denied_here and identity is not None and r is not None:
            target = f"s3://{r.bucket or ''}/{r.key or ''}".rstrip("/")
            await audit_denial(gw, identity, r.operation, target)
        return error_response(err, request, request_id)
    except MetaError as exc:
        return error_response(from_meta(exc), request, request_id)
    except Exception as exc:
        if is_contention(exc):
            log.warning(
                "database busy handling %s %s id=%s: %s",
                request.method,
                loggable(request.url.path),
                request_id,
                loggable(str(getattr(exc, "orig", exc))),
            )
            return error_response(slow_down(), request, request_id)
        log.exception(
            "internal error handling %s %s id=%s",
            request.method,
            loggable(request.url.path),
            request_id,
        )
        return error_response(errors.internal_error(), request, request_id)
    response.headers["x-amz-request-id"] = request_id
    response.headers["x-amz-id-2"] = request_id
    return response


class S3Endpoint:
    """Answers every HTTP request itself; anything else (lifespan) goes on to Starlette.

    S3 names operations by method, query and addressing, never by path shape, so the gateway
    routes on its own (`routing.route`): Starlette's router, its path matching and its extra
    exception wrappers would only add per-request cost on the hot path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = await _dispatch(Request(scope, receive, send))
        await response(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    """The gateway app; the lifespan opens the database, catalog, locations and policy.

    With metrics on (`residency serve --admin-port`), the worker counts itself ready once
    start-up is done and not ready when it begins to stop (the admin server's `/readyz`).
    """
    telemetry = Telemetry.open() if settings.admin_port is not None else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = await Gateway.open(settings, base_domains(settings))
        gw.telemetry = telemetry
        app.state.gateway = gw
        app.state.access_keys = AccessKeyCache()
        if telemetry is not None:
            telemetry.ready.set(1)
        try:
            yield
        finally:
            if telemetry is not None:
                telemetry.ready.set(0)
            await gw.close()

    return Starlette(
        middleware=[
            Middleware(AccessLog, telemetry=telemetry),
            Middleware(UnreadBodyGuard, drain_timeout=settings.body_idle_timeout),
            Middleware(S3Endpoint),
        ],
        lifespan=lifespan,
    )
