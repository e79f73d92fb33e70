"""Bounded requests (pure ASGI middleware, before any route parses a body); see SECURITY.md.

- a body larger than the limit of its path is refused with a French 413 before it is read
  (``Content-Length``) or as soon as the bytes read pass the limit (chunked bodies): ``/api/*`` and
  ``/staff/*`` take ``max_body_kb``, Gradio's upload and queue take ``max_upload_mb``;
- a body that does not arrive within ``body_timeout_s`` gets a French 408;
- a request line or path with a NUL or invalid percent-encoded UTF-8 gets a French 400.

Usage::

    app.add_middleware(RequestLimits, api_bytes=64 * 1024, upload_bytes=25 * 2**20, body_timeout_s=15)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote_to_bytes

UPLOAD_PATHS = ("/gradio_api/upload", "/upload")
STAFF_UPLOAD_PATH = "/staff/documents"


def _message(status: int, text: str) -> tuple[dict, dict]:
    body = json.dumps({"detail": text}, ensure_ascii=False).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json; charset=utf-8"),
                         (b"content-length", str(len(body)).encode()), (b"connection", b"close")]}
    return start, {"type": "http.response.body", "body": body}


class RequestLimits:
    """See the module docstring."""

    def __init__(self, app: Any, api_bytes: int, upload_bytes: int, body_timeout_s: float) -> None:
        self.app, self.api_bytes, self.upload_bytes, self.body_timeout_s = app, api_bytes, upload_bytes, body_timeout_s

    def limit_for(self, path: str) -> int:
        if path == STAFF_UPLOAD_PATH:  # the Documents tab's REST upload (multipart files)
            return self.upload_bytes
        if path.startswith(("/api/", "/staff/")):
            return self.api_bytes
        if path.startswith(UPLOAD_PATHS):
            return self.upload_bytes
        # Gradio's queue, config and anything else: a question is small, a form at most the upload size
        return self.upload_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        try:
            decoded = unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            decoded = "\0"
        if "\0" in decoded or "\0" in scope.get("path", ""):
            await self._refuse(send, 400, "Adresse invalide : caractère non autorisé dans le chemin.")
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._refuse(send, 400, "En-tête Content-Length invalide.")
                return
            if size > limit:
                await self._refuse(send, 413, self._too_large(limit))
                return
        seen = 0
        state = {"started": False, "refused": False, "body_done": False}

        async def refuse(status: int, text: str) -> dict:
            # answer now, then tell the app the client is gone (it must not parse a partial body)
            if not state["started"]:
                state["refused"] = True
                await self._refuse(send, status, text)
            return {"type": "http.disconnect"}

        async def limited_receive() -> dict:
            nonlocal seen
            if state["refused"]:
                return {"type": "http.disconnect"}
            if state["body_done"]:  # after the body: waiting for a stream's disconnect is not a slow body
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=self.body_timeout_s)
            except TimeoutError:
                return await refuse(408, "Requête trop lente : le corps de la requête n'est pas arrivé à temps.")
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    return await refuse(413, self._too_large(limit))
                state["body_done"] = not message.get("more_body", False)
            else:
                state["body_done"] = True
            return message

        async def guarded_send(message: dict) -> None:
            if state["refused"]:
                return  # the French refusal has been sent already
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise

    @staticmethod
    def _too_large(limit: int) -> str:
        size = f"{limit // 1024} Ko" if limit < 2**20 else f"{limit // 2**20} Mo"
        return f"Requête trop volumineuse : {size} au maximum. Raccourcissez la question ou l'historique, ou le fichier."

    @staticmethod
    async def _refuse(send: Any, status: int, text: str) -> None:
        start, body = _message(status, text)
        await send(start)
        await send(body)
