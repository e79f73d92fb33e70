"""REST endpoints of the « Documents » tab (HTTP Basic with the staff password; the ones that
change something refuse cross-site requests).

Routes: ``GET /staff/documents`` (JSON list), ``GET /staff/ingest`` (progress of the background
ingest), ``GET /staff/documents/{source}/passages`` (preview), ``POST /staff/documents`` (multipart:
field ``files``, one or several; optional ``folder`` and ``replace=1``), ``DELETE
/staff/documents/{source}``, ``PUT /staff/documents/{source}/metadata`` (JSON object of the
sidecar fields).
Files are limited to ``ASSISTANT_MAX_FILE_MB`` each, the whole upload to ``ASSISTANT_MAX_UPLOAD_MB``.

Usage::

    add_document_routes(app, service, staff_refusal)     # from server.create_app
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from assistant.documents import DocumentError
from assistant.web.service import Service


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)

def add_document_routes(app: FastAPI, service: Service, staff_refusal: Callable[..., Response | None]) -> None:
    """``staff_refusal(request, changes=...)``: the server's check of the staff password, which with
    ``changes=True`` also refuses a request sent by another site (``security.is_cross_site``). The
    request body is capped by ``RequestLimits`` (``ASSISTANT_MAX_UPLOAD_MB`` for the upload)."""
    settings = service.settings

    def refuse(request: Request, changes: bool) -> Response | None:
        return staff_refusal(request, changes=changes)

    @app.get("/staff/documents")
    def list_documents(request: Request) -> Response:
        refusal = refuse(request, changes=False)
        if refusal is not None:
            return refusal
        return JSONResponse(service.documents_state()["documents"])

    @app.get("/staff/ingest")
    def ingest_state(request: Request) -> Response:
        refusal = refuse(request, changes=False)
        return refusal if refusal is not None else JSONResponse(service.ingest_job.state())

    @app.get("/staff/documents/{source:path}/passages")
    def passages(request: Request, source: str) -> Response:
        refusal = refuse(request, changes=False)
        if refusal is not None:
            return refusal
        try:
            return JSONResponse(service.documents.passages(source))
        except DocumentError as exc:
            return _error(exc.status, str(exc))

    @app.post("/staff/documents")
    async def upload(request: Request) -> Response:
        refusal = refuse(request, changes=True)
        if refusal is not None:
            return refusal
        try:
            form = await request.form(max_files=20, max_fields=10)
        except Exception:  # noqa: BLE001 - starlette raises on a malformed or oversized multipart body
            return _error(400, "Envoi invalide : envoyez un formulaire multipart avec le champ « files » (20 fichiers au plus).")
        limit = int(settings.max_file_mb * 1024 * 1024)
        files: list[tuple[str, bytes]] = []
        for item in form.getlist("files"):
            if isinstance(item, str):
                continue
            raw = await item.read(limit + 1)
            files.append((item.filename or "", raw))
        if not files:
            return _error(400, "Aucun fichier reçu : envoyez un ou plusieurs fichiers dans le champ « files ».")
        replace = str(form.get("replace") or "").lower() in ("1", "true", "oui", "on")
        folder = form.get("folder")
        results = service.upload(files, folder=folder if isinstance(folder, str) and folder else None, replace=replace)
        status = 200 if any(r["ok"] for r in results) else int(results[0].get("status", 400))
        return JSONResponse({"results": results, "ingest": service.ingest_job.state()}, status_code=status)

    @app.delete("/staff/documents/{source:path}")
    def delete(request: Request, source: str) -> Response:
        refusal = refuse(request, changes=True)
        if refusal is not None:
            return refusal
        try:
            rel = service.delete_document(source)
        except DocumentError as exc:
            return _error(exc.status, str(exc))
        return JSONResponse({"deleted": rel, "ingest": service.ingest_job.state()})

    @app.put("/staff/documents/{source:path}/metadata")
    async def metadata(request: Request, source: str) -> Response:
        refusal = refuse(request, changes=True)
        if refusal is not None:
            return refusal
        try:
            body: Any = await request.json()
        except ValueError:
            return _error(400, "Métadonnées invalides : envoyez un objet JSON {\"departement\": \"Creuse\", …}.")
        try:
            values = service.set_document_metadata(source, body)
        except DocumentError as exc:
            return _error(exc.status, str(exc))
        return JSONResponse({"source": source, "metadata": values, "ingest": service.ingest_job.state()})
