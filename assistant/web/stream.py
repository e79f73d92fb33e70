"""The widget's streamed answers (``POST /api/ask/stream``) and its follow-up questions.

The stream is Server-Sent Events over one POST (read with ``fetch`` and a stream reader):

    event: token     data: {"text": "…"}            (several; the answer's text, in order)
    event: answer    data: {…the JSON contract of DESIGN.md…, "answer_id": "…", "follow_ups": [...]}
    event: error     data: {"detail": "message en français"}

The answer comes from the same ``Service.ask`` → ``answer()`` as ``/api/ask``: with a language model
the tokens are the model's own (``on_token``); with the built-in composer (no model) the composed
text is sent in small pieces as soon as it is ready. A refused request (bad question, filter,
origin, rate limit) gets a JSON error status before any stream starts.

Follow-up questions come from the structure of the cited documents only: the headings of their
sections that the answer did not cite (« Le conseil citoyen : pièges à éviter ? »), then the
experiences suggested with the answer; nothing is invented, every suggestion names a real section
or document of the index.

Usage::

    register_stream(app, service, origin_allowed)    # in server.create_app
    follow_ups(index, result)                        # ["Le conseil citoyen : pièges à éviter ?", ...]
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from assistant.retrieve import Index
from assistant.types import Answer
from assistant.web.ratelimit import RATE_LIMIT_MESSAGE
from assistant.web.service import QuestionError, Service

MAX_FOLLOW_UPS = 3
PIECE_WORDS = 3  # built-in composer: words per streamed piece
STRUCTURED_TYPES = ("fiche_outil", "fiche_experience", "rapport")


def _heading(section: str | None) -> str:
    """The last heading of a section path (« 4. État des lieux > 4.2 Les moyens » → « 4.2 Les moyens »)."""
    return (section or "").split(" > ")[-1].strip()


def follow_ups(index: Index, result: Answer, limit: int = MAX_FOLLOW_UPS) -> list[str]:
    """Two or three follow-up questions from the cited documents' own headings (sections the answer
    did not cite, in document order), then the suggested experiences. Empty for a refusal."""
    if result.status == "no_answer" or not result.citations:
        return []
    cited = {(c.source, _heading(c.section).lower()) for c in result.citations}
    asked = result.standalone_question.lower()
    out: list[str] = []
    seen: set[str] = set()
    sources = list(dict.fromkeys(c.source for c in result.citations))
    sections: dict[str, list[tuple[int, int, str, str]]] = {s: [] for s in sources}
    for meta in index.metadata.values():
        source = str(meta.get("source"))
        if source in sections and meta.get("doc_type") in STRUCTURED_TYPES:
            heading = _heading(meta.get("section"))
            if heading:
                sections[source].append((int(meta.get("page") or 0), int(meta.get("ordinal") or 0), heading,
                                         str(meta.get("title") or "")))
    # one suggestion per cited document in turn, so that two documents both get one
    queues = [sorted(items) for items in sections.values()]
    while len(out) < limit and any(queues):
        for items in queues:
            while items:
                _, _, heading, title = items.pop(0)
                key = heading.lower()
                if (any(key == h for _, h in cited) or key in seen or key == title.lower()
                        or key in asked or len(heading) > 80):
                    continue
                seen.add(key)
                out.append(f"{title} : {heading[0].lower() + heading[1:]} ?" if title else f"{heading} ?")
                break
            if len(out) >= limit:
                break
    for exp in result.experiences:
        if len(out) >= limit:
            break
        title = str(exp.get("title") or "").strip()
        if title and title.lower() not in seen:
            seen.add(title.lower())
            out.append(f"Comment s'est passée l'expérience « {title} » ?")
    return out[:limit]


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def pieces(text: str, words: int = PIECE_WORDS) -> Iterator[str]:
    """The text in pieces of a few words, spaces and newlines kept (joined, they give the text back)."""
    parts = text.split(" ")
    for start in range(0, len(parts), words):
        chunk = " ".join(parts[start:start + words])
        yield chunk + (" " if start + words < len(parts) else "")


def stream_events(service: Service, question: str, history: list[str], filters: dict[str, str],
                  channel: str) -> Iterator[str]:
    """Run ``Service.ask`` in a thread and yield the SSE events (tokens, then the answer)."""
    tokens: queue.Queue[tuple[str, Any]] = queue.Queue()

    def on_token(text: str) -> None:
        tokens.put(("token", text))

    def work() -> None:
        try:
            result, answer_id = service.ask(question, history, filters, channel=channel, on_token=on_token)
            tokens.put(("done", (result, answer_id)))
        except QuestionError as exc:
            tokens.put(("error", str(exc)))
        except Exception:  # noqa: BLE001 - the client gets a French message, the server keeps serving
            tokens.put(("error", "Une erreur interne a empêché la réponse. Réessayez dans un instant."))

    threading.Thread(target=work, daemon=True, name="ask-stream").start()
    yield ": début\n\n"  # opens the stream at once (proxies, the browser's reader)
    streamed = False
    while True:
        kind, value = tokens.get()
        if kind == "token":
            streamed = True
            yield _event("token", {"text": value})
        elif kind == "error":
            yield _event("error", {"detail": value})
            return
        else:
            result, answer_id = value
            if not streamed or result.status == "no_answer":
                # the built-in composer (or a refusal): the final text in pieces; a model's own tokens
                # may differ from the checked final text, which the « answer » event replaces anyway
                if not streamed:
                    for piece in pieces(result.answer):
                        yield _event("token", {"text": piece})
            payload = {**dataclasses.asdict(result), "answer_id": answer_id,
                       "follow_ups": follow_ups(service.index, result)}
            yield _event("answer", payload)
            return


def register_stream(app: FastAPI, service: Service, origin_allowed: Callable[[Request], bool],
                    client_id: Callable[[Request], str], refused: Callable[..., Response]) -> None:
    """Add ``POST /api/ask/stream`` to the app (same checks as ``/api/ask``)."""

    @app.post("/api/ask/stream")
    def ask_stream(request: Request, body: dict[str, Any]) -> Response:
        if not origin_allowed(request):
            return refused(403, "Ce site n'est pas autorisé à utiliser l'assistant (origine non autorisée).")
        client = client_id(request)
        if not service.limiter.allow(client):
            return refused(429, RATE_LIMIT_MESSAGE, {"Retry-After": str(service.limiter.retry_after(client))})
        channel = str(body.get("channel") or "widget")
        try:
            question, history, filters = service.check(body.get("question", ""), body.get("history"),
                                                       body.get("filters"))
            service.check_channel(channel)
        except QuestionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return StreamingResponse(stream_events(service, question, history, filters, channel),
                                 media_type="text/event-stream; charset=utf-8",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
