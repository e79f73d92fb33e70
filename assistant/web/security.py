"""Checks shared by every web front end (REST, Gradio, staff endpoints); see SECURITY.md.

- ``StaffSessions``: the server-side sessions of the Gradio staff space. Logging in with the staff
  password issues a random token kept in the browser session's ``gr.State``; every staff handler
  calls ``sessions.valid(token)`` before doing anything, so calling a staff function through the
  Gradio API without logging in is refused (hiding a tab or an API name protects nothing).
- ``LoginThrottle``: failed staff logins limited per client *and* globally (a rotating client
  address cannot multiply the guesses).
- ``is_cross_site(headers)``: a state-changing staff request sent by another site's page
  (``Sec-Fetch-Site`` or an ``Origin`` that is not the app's own) is refused, even with valid
  credentials (browsers resend saved Basic credentials).
- ``text_problem(text)``: NUL, lone surrogates and other control characters are refused with a
  French message (400) instead of failing deeper (500).
- ``csv_cell(value)``: a cell a spreadsheet would run as a formula is quoted.
- ``CHANNELS``: the fixed list of channels a client may name.

Usage::

    token = sessions.open()            # after a correct password
    if not sessions.valid(token): ...  # every staff handler
    if is_cross_site(request.headers, request.url.netloc): return 403
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

CHANNELS = ("api", "widget", "ui")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
STAFF_REFUSED = "Espace équipe : connectez-vous d'abord avec le mot de passe de l'équipe."
CROSS_SITE_REFUSED = ("Requête refusée : elle vient d'un autre site. Utilisez l'espace équipe depuis l'adresse "
                      "de l'assistant lui-même.")
LOGIN_LOCKED = "Trop d'essais de mot de passe : l'espace équipe est verrouillé quelques minutes. Réessayez plus tard."


class StaffSessions:
    """Random tokens issued at a correct staff login, valid ``ttl_s`` seconds (server memory)."""

    def __init__(self, ttl_s: float = 8 * 3600, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def open(self) -> str:
        """A new session token."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.ttl_s
        return token

    def valid(self, token: Any) -> bool:
        """Is ``token`` a live session token? (Constant-time comparison.)"""
        if not isinstance(token, str) or not token:
            return False
        now = self.clock()
        with self._lock:
            found = None
            for known, expires in self._tokens.items():
                if hmac.compare_digest(known.encode(), token.encode()):
                    found = expires
            return found is not None and found > now

    def close(self, token: Any) -> None:
        with self._lock:
            self._tokens.pop(str(token), None)


class LoginThrottle:
    """At most ``per_client`` failed logins per client and ``overall`` failed logins in all per window."""

    def __init__(self, per_client: int = 5, overall: int = 20, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_client, self.overall, self.window_s, self.clock = per_client, overall, window_s, clock
        self._failures: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        while self._failures and now - self._failures[0][0] >= self.window_s:
            self._failures.popleft()

    def locked(self, client: str) -> bool:
        """True when no password may be tried now (for this client, or for anyone)."""
        with self._lock:
            self._prune(self.clock())
            mine = sum(1 for _, c in self._failures if c == client)
            return len(self._failures) >= self.overall or mine >= self.per_client

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._prune(now)
            self._failures.append((now, client))


def password_ok(given: Any, password: str) -> bool:
    """The staff password, compared in constant time; never true when no password is set."""
    if not password or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), password.encode())


def is_cross_site(headers: Mapping[str, str], host: str) -> bool:
    """Was this request sent by another site's page? ``host``: the Host the request was sent to."""
    fetch_site = (headers.get("sec-fetch-site") or "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return True
    origin = headers.get("origin")
    if origin and origin != "null":
        return origin.split("://", 1)[-1].rstrip("/") != host
    return origin == "null"


def text_problem(text: str, field: str = "la question") -> str | None:
    """A French message when ``text`` holds characters no question can contain (NUL, lone
    surrogates, control characters other than tab and newlines); None when it is clean."""
    for ch in text:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return f"Texte invalide dans {field} : caractère non valide (encodage UTF-8 incorrect)."
        if code < 32 and ch not in "\t\n\r" or code == 0x7F:
            return f"Texte invalide dans {field} : caractère de contrôle non autorisé."
    return None


def csv_cell(value: Any) -> Any:
    """A CSV cell safe to open in a spreadsheet: text starting like a formula is quoted with ``'``."""
    if isinstance(value, str) and value.lstrip(" ")[:1] in FORMULA_PREFIXES:
        return "'" + value
    return value
