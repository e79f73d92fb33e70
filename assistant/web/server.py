"""The FastAPI app: REST API, widget, launcher script, source files, staff CSV, Gradio UI at ``/``.

Routes: ``GET /health``, ``POST /api/ask`` (JSON contract of DESIGN.md, answer id in the
``X-Answer-Id`` header), ``POST /api/feedback``, ``GET /widget`` (compact chat for iframes),
``GET /embed.js`` (launcher), ``GET /sources/<path>`` (corpus files for citation links),
``GET /staff/feedback.csv`` and ``POST /staff/reindex`` (HTTP Basic, staff password: the export of
feedback, and an incremental re-index in the warm process), the ``/staff/documents`` endpoints
(``assistant/web/documents_api.py``), and the Gradio UI mounted at ``/``.

Usage::

    app = create_app(load_settings())          # then: uvicorn.run(app, host="127.0.0.1", port=7860)
    serve(settings)                            # same, what ``assistant serve`` runs
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response  # noqa: E402

from assistant.retrieve import Index  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.store.db import StoreUnavailable  # noqa: E402
from assistant.store.lock import IngestBusy  # noqa: E402
from assistant.web.analytics import register_analytics  # noqa: E402
from assistant.web.catalogue import register_public_pages, widget_filters_html  # noqa: E402
from assistant.web.limits import RequestLimits  # noqa: E402
from assistant.web.ratelimit import RATE_LIMIT_MESSAGE  # noqa: E402
from assistant.web.security import (  # noqa: E402
    CROSS_SITE_REFUSED,
    LOGIN_LOCKED,
    is_cross_site,
    password_ok,
    text_problem,
)
from assistant.web.service import QuestionError, Service  # noqa: E402
from assistant.web.stream import register_stream  # noqa: E402

STATIC = Path(__file__).resolve().parent / "static"
SOURCE_TYPES = {".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
                ".pdf": "application/pdf",
                ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
WIDGET_ASSETS = {"widget.js": "text/javascript; charset=utf-8", "widget.css": "text/css; charset=utf-8"}
ORIGIN_REFUSED = "Ce site n'est pas autorisé à utiliser l'assistant (origine non autorisée)."


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def client_id(request: Request) -> str:
    """The client's address (uvicorn applies X-Forwarded-For from trusted proxies only)."""
    return request.client.host if request.client else "inconnu"


class SecurityHeaders:
    """Pure ASGI middleware: CSP ``frame-ancestors`` (allowed origins on the widget and sources,
    ``'self'`` elsewhere), a strict CSP on the widget, nosniff, and ``lang="fr"`` on the Gradio page."""

    def __init__(self, app: Any, allowed_origins: list[str]) -> None:
        self.app = app
        ancestors = " ".join(["'self'", *allowed_origins])
        self.embeddable = f"frame-ancestors {ancestors}"
        self.widget = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                       f"connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'; {self.embeddable}")

    def policy(self, path: str) -> str:
        if path == "/widget":
            return self.widget
        if path.startswith("/sources/"):
            return self.embeddable
        if path.startswith("/staff/"):
            return "frame-ancestors 'none'"
        return "frame-ancestors 'self'"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        state = {"html": False}

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"]
                headers += [(b"content-security-policy", self.policy(path).encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"strict-origin-when-cross-origin")]
                state["html"] = path == "/" and any(k.lower() == b"content-type" and v.startswith(b"text/html")
                                                    for k, v in headers)
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and state["html"]:
                # Gradio's page template says lang="en": same length, so Content-Length stays right
                body = message.get("body", b"")
                if b'lang="en"' in body:
                    message = {**message, "body": body.replace(b'lang="en"', b'lang="fr"', 1)}
                    state["html"] = False
            await send(message)

        await self.app(scope, receive, wrapped)


def same_origin(request: Request, origin: str) -> bool:
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def create_app(settings: Settings, index: Index | None = None, with_ui: bool = True,
               service: Service | None = None) -> FastAPI:
    """Build the whole web app. ``index`` (already opened) is for tests; ``with_ui=False`` skips Gradio."""
    service = service or Service(settings, index=index)
    app = FastAPI(title="Assistant du dialogue territorial (PQN-A)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service
    corpus_root = settings.corpus_dir.resolve()
    widget_html = (STATIC / "widget.html").read_text(encoding="utf-8").replace(
        "{{max_chars}}", str(settings.max_question_chars)).replace("{{filters}}", widget_filters_html(service))

    def origin_allowed(request: Request) -> bool:
        origin = request.headers.get("origin")
        return not origin or origin in settings.allowed_origins or same_origin(request, origin)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "Requête invalide : envoyez un objet JSON {\"question\": \"…\", \"history\": [], \"filters\": {}}.")

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        # PostgreSQL restarting: nothing was recorded, the client is told to send it again
        what = "votre avis n'a pas été enregistré" if request.url.path == "/api/feedback" else \
            "la réponse n'a pas pu être enregistrée"
        return _error(503, f"Service momentanément indisponible : {what} (base de données injoignable). "
                           "Réessayez dans quelques secondes.", {"Retry-After": "5"})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "passages": len(service.index.metadata)}

    @app.post("/api/ask")
    def ask(request: Request, body: dict[str, Any]) -> Response:
        if not origin_allowed(request):
            return _error(403, ORIGIN_REFUSED)
        client = client_id(request)
        if not service.limiter.allow(client):
            return _error(429, RATE_LIMIT_MESSAGE, {"Retry-After": str(service.limiter.retry_after(client))})
        try:
            result, answer_id = service.ask(body.get("question", ""), body.get("history"), body.get("filters"),
                                            channel=str(body.get("channel") or "api"))
        except QuestionError as exc:
            return _error(400, str(exc))
        return JSONResponse(dataclasses.asdict(result), headers={"X-Answer-Id": answer_id})

    @app.post("/api/feedback")
    def feedback(request: Request, body: dict[str, Any]) -> Response:
        if not origin_allowed(request):
            return _error(403, ORIGIN_REFUSED)
        if not service.feedback_limiter.allow(client_id(request)):
            return _error(429, RATE_LIMIT_MESSAGE)
        rating, comment = body.get("rating"), body.get("comment")
        if rating not in (None, "up", "down") or not isinstance(comment, str | None):
            return _error(400, "Avis invalide : « rating » vaut « up » ou « down », « comment » est un texte.")
        if not service.store.add_feedback(str(body.get("answer_id", "")), rating, comment):
            return _error(404, "Réponse introuvable : l'avis n'a pas été enregistré.")
        return JSONResponse({"ok": True, "message": "Merci pour votre retour !"})

    @app.get("/widget")
    def widget() -> HTMLResponse:
        return HTMLResponse(widget_html)

    @app.get("/widget-static/{name}")
    def widget_asset(name: str) -> Response:
        if name not in WIDGET_ASSETS:
            return _error(404, "Fichier introuvable.")
        return FileResponse(STATIC / name, media_type=WIDGET_ASSETS[name])

    @app.get("/embed.js")
    def embed() -> Response:
        return FileResponse(STATIC / "embed.js", media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=300"})

    @app.get("/sources/{path:path}")
    def source(path: str) -> Response:
        # only the files that ingestion indexed (not README.md, STATS.md, a file it skipped)
        if text_problem(path, "l'adresse") or path not in service.indexed_sources():
            return _error(404, "Document introuvable dans le corpus.")
        target = (corpus_root / path).resolve()
        if (not target.is_relative_to(corpus_root) or any(p.startswith(".") for p in Path(path).parts)
                or target.suffix.lower() not in SOURCE_TYPES or not target.is_file()):
            return _error(404, "Document introuvable dans le corpus.")
        inline = target.suffix.lower() != ".docx"
        return FileResponse(target, media_type=SOURCE_TYPES[target.suffix.lower()], filename=target.name,
                            content_disposition_type="inline" if inline else "attachment")

    def staff_refusal(request: Request, changes: bool = False) -> Response | None:
        """None when the request carries the staff password; else the French refusal to send.
        ``changes``: the endpoint changes something, so a request from another site is refused."""
        if not settings.staff_password:
            return _error(404, "Espace équipe désactivé (réglage ASSISTANT_STAFF_PASSWORD vide).")
        client = client_id(request)
        if changes and is_cross_site(request.headers, request.headers.get("host", "")):
            return _error(403, CROSS_SITE_REFUSED)
        if not service.staff_limiter.allow(client):
            return _error(429, RATE_LIMIT_MESSAGE)
        if service.login_throttle.locked(client):
            return _error(429, LOGIN_LOCKED, {"Retry-After": "300"})
        if not staff_ok(request.headers.get("authorization", ""), settings.staff_password):
            if request.headers.get("authorization"):
                service.login_throttle.failed(client)
            return Response("Mot de passe de l'espace équipe requis.", status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="Espace equipe PQN-A", charset="UTF-8"'})
        return None

    @app.get("/staff/feedback.csv")
    def staff_csv(request: Request) -> Response:
        refusal = staff_refusal(request)
        if refusal is not None:
            return refusal
        return Response(service.store.export_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="avis-assistant.csv"'})

    @app.post("/staff/reindex")
    def staff_reindex(request: Request) -> Response:
        refusal = staff_refusal(request, changes=True)
        if refusal is not None:
            return refusal
        try:
            report = service.reindex(wait=False)
        except IngestBusy as exc:
            return _error(409, str(exc))
        return JSONResponse({**report.as_dict(), "summary": report.summary()})

    from assistant.web.documents_api import add_document_routes

    add_document_routes(app, service, staff_refusal)

    register_stream(app, service, origin_allowed, client_id, _error)
    register_analytics(app, service, staff_refusal)
    register_public_pages(app, service)
    if with_ui:
        from assistant.web.ui import mount_ui

        mount_ui(app, service)
    app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_origins, allow_methods=["GET", "POST"],
                       allow_headers=["Content-Type"], expose_headers=["X-Answer-Id"], max_age=600)
    app.add_middleware(SecurityHeaders, allowed_origins=settings.allowed_origins)
    app.add_middleware(RequestLimits, api_bytes=settings.max_body_kb * 1024,
                       upload_bytes=int(settings.max_upload_mb * 2**20), body_timeout_s=settings.body_timeout_s)
    return app


def staff_ok(authorization: str, password: str) -> bool:
    """HTTP Basic check (any user name, the staff password), in constant time."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not password:
        return False
    try:
        given = base64.b64decode(value).decode("utf-8").partition(":")[2]
    except ValueError:
        return False
    return password_ok(given, password)


WORKER_SETTINGS = "ASSISTANT_SERVE_SETTINGS"  # the settings handed to each worker process (JSON)


def worker_app() -> FastAPI:
    """The app of one ``--workers`` process (uvicorn factory): same settings as the parent."""
    from assistant.settings import load_settings

    settings = load_settings(**json.loads(os.environ[WORKER_SETTINGS]))
    app = create_app(settings)
    app.state.service.warm_up()
    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Open the index, build the app and serve it with uvicorn until interrupted. ``workers`` > 1
    starts that many processes on the same socket (uvicorn's supervisor); each opens the index and
    the state, and follows the generations that the others publish (``Service.start_refresher``)."""
    import uvicorn

    host, port = host or settings.host, port or settings.port
    if settings.torch_threads == 0:
        # answers are computed one at a time and a question is short: one torch thread is faster
        # than several fighting with the web server's threads (README, « Performances du serveur »)
        settings = settings.model_copy(update={"torch_threads": 1})
    proxies = settings.forwarded_allow_ips.strip()
    # X-Forwarded-For is read only from the proxies named in ASSISTANT_FORWARDED_ALLOW_IPS
    options: dict[str, Any] = dict(host=host, port=port, log_level="warning", proxy_headers=bool(proxies),
                                   forwarded_allow_ips=proxies or None, timeout_keep_alive=settings.keep_alive_s,
                                   limit_concurrency=settings.max_connections, h11_max_incomplete_event_size=16 * 1024)
    if workers > 1:
        os.environ[WORKER_SETTINGS] = settings.model_dump_json()
        print(f"Assistant disponible sur http://{host}:{port}/  ({workers} processus ; widget : /widget)", flush=True)
        uvicorn.run("assistant.web.server:worker_app", factory=True, workers=workers, **options)
        return
    app = create_app(settings)
    app.state.service.warm_up()
    print(f"Assistant disponible sur http://{host}:{port}/  (widget : /widget, lanceur : /embed.js)", flush=True)
    try:
        uvicorn.run(app, **options)
    finally:
        temp = getattr(app.state, "web_temp_dir", None)
        if temp is not None and not settings.web_temp_dir:
            shutil.rmtree(temp, ignore_errors=True)  # the private folder this process made
