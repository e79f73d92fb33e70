"""Security, tried as an attacker would, against a real ``assistant serve`` process (SECURITY.md).

The server runs in a subprocess on 127.0.0.1 over a tiny corpus with the fake embedder (named so),
the staff space enabled. Checked: no server file readable through Gradio's queue API (the exact
payload of issue 13, absolute and relative paths, a symlink, the file route itself); every staff
function of the Gradio UI refused without logging in; bounded bodies (413), slow bodies (408),
history limits; X-Forwarded-For ignored unless a proxy is trusted; failed staff logins limited;
cross-site staff requests refused; malformed input answered 400, never 500; ``/sources/`` serves
indexed files only; ``channel`` from a fixed list; CSV cells quoted.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import serve_subprocess
from test_web import build_web_index

from assistant.web.security import LoginThrottle, StaffSessions, csv_cell, is_cross_site, text_problem

pytestmark = pytest.mark.integration

PASSWORD = "secret-equipe"
CANARY = "CANARI-7f3a9c-ne-doit-jamais-sortir"
STAFF_FUNCTIONS = {"start": ["test.yaml", None, ""], "poll": [""], "export_gaps": [""], "refresh_staff": [""]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("securite")
    settings, index = build_web_index(root, chroma_collection="security_test")
    index.manifest.close()
    (root / "canary.txt").write_text(CANARY, encoding="utf-8")
    (root / "corpus" / "README.md").write_text("Notes internes : non indexé.", encoding="utf-8")
    web_tmp = root / "web-tmp"
    web_tmp.mkdir()
    (web_tmp / "lien").symlink_to(root / "canary.txt")
    (root / "evals" / "gold").mkdir(parents=True)
    (root / "evals" / "gold" / "test.yaml").write_text("questions: []\n", encoding="utf-8")
    port = free_port()
    with serve_subprocess(settings, root, port, ASSISTANT_STAFF_PASSWORD=PASSWORD, ASSISTANT_RATE_LIMIT_PER_MINUTE="60",
                          ASSISTANT_MAX_BODY_KB="16", ASSISTANT_MAX_UPLOAD_MB="1", ASSISTANT_BODY_TIMEOUT_S="2",
                          ASSISTANT_WEB_TEMP_DIR=str(web_tmp), ASSISTANT_MAX_HISTORY_TURNS="10") as base:
        yield {"base": base, "root": root, "port": port, "web_tmp": web_tmp}


def gradio_call(base: str, api_name: str, data: list, session: str | None = None) -> dict:
    """One event through Gradio's own queue API (join, then read the event stream)."""
    config = httpx.get(base + "/config").json()
    fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == api_name)
    session = session or uuid.uuid4().hex[:12]
    joined = httpx.post(base + "/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
        "trigger_id": config["dependencies"][fn_index]["targets"][0][0]})
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", base + f"/gradio_api/queue/data?session_hash={session}", timeout=30) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("pas de fin d'événement")


def file_part(path: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "file", "file": {"path": path, "meta": {"_type": "gradio.FileData"}}}]}]


def leaked(base: str, message: dict) -> list[str]:
    """Contents of every file URL found in an event's output."""
    urls: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("url"), str):
                urls.append(value["url"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(message.get("output"))
    return [httpx.get(u if u.startswith("http") else base + u).text for u in urls]


@pytest.mark.parametrize("target", ["/etc/passwd", "canary.txt", "./canary.txt", "../{root}/canary.txt",
                                    "{root}/canary.txt", "{root}/index/feedback.sqlite", "/proc/self/environ",
                                    "{web_tmp}/lien"])
def test_no_server_file_through_the_chat(server, target):
    base = server["base"]
    path = target.format(root=str(server["root"]).lstrip("/") if target.startswith("..") else server["root"],
                         web_tmp=server["web_tmp"])
    for content in (file_part(path), [{"role": "user", "content": {"path": path, "meta": {"_type": "gradio.FileData"}}}]):
        message = gradio_call(base, "respond", ["bonjour", content, [], {}, None, None, None, None])
        bodies = leaked(base, message)
        text = json.dumps(message)
        assert CANARY not in text and "root:x:0:0" not in text and PASSWORD not in text
        assert not any(CANARY in b or "root:x:" in b or PASSWORD in b for b in bodies), bodies


def test_file_route_serves_nothing_outside_gradio_folder(server):
    base = server["base"]
    for path in (server["root"] / "canary.txt", Path("/etc/passwd"), server["web_tmp"] / "lien",
                 server["root"] / "index" / "feedback.sqlite"):
        response = httpx.get(f"{base}/gradio_api/file={path}")
        assert response.status_code in (403, 404), path
        assert CANARY not in response.text


def test_chat_still_answers(server):
    message = gradio_call(server["base"], "respond", ["Comment lancer un conseil citoyen ?", [], [], {},
                                                      None, None, None, None])
    assert message["success"], message
    chat = message["output"]["data"][1]
    assert any("conseil citoyen" in json.dumps(m, ensure_ascii=False).lower() for m in chat if m["role"] == "assistant")


@pytest.mark.parametrize("name", sorted(STAFF_FUNCTIONS))
def test_staff_functions_refused_without_login(server, name):
    message = gradio_call(server["base"], name, STAFF_FUNCTIONS[name])
    text = json.dumps(message, ensure_ascii=False)
    assert "connectez-vous" in text or not message.get("success"), text
    assert "réponses servies" not in text and "ajoutée" not in text and "en cours" not in text
    assert not (server["root"] / "evals" / "parts" / "lacunes.yaml").exists()
    assert not (server["root"] / "evals" / "reports").exists()


def test_staff_login_through_gradio_opens_a_session(server):
    session = uuid.uuid4().hex[:12]
    wrong = gradio_call(server["base"], "open_staff", ["mauvais"], session)
    assert "incorrect" in json.dumps(wrong, ensure_ascii=False)
    opened = gradio_call(server["base"], "open_staff", [PASSWORD], session)
    assert "réponses servies" in json.dumps(opened, ensure_ascii=False)
    # same browser session: the token kept in its gr.State lets the staff functions run
    refreshed = gradio_call(server["base"], "refresh_staff", [""], session)
    assert "réponses servies" in json.dumps(refreshed, ensure_ascii=False)
    # another session, even sending a made-up token, is refused
    other = gradio_call(server["base"], "refresh_staff", ["jeton-invente"])
    assert "connectez-vous" in json.dumps(other, ensure_ascii=False)


def test_bodies_and_history_are_bounded(server):
    base = server["base"]
    big = httpx.post(base + "/api/ask", json={"question": "x" * 40_000})
    assert big.status_code == 413 and "trop volumineuse" in big.json()["detail"]

    def chunks():
        for _ in range(40):
            yield b" " * 1024

    chunked = httpx.post(base + "/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    history = httpx.post(base + "/api/ask", json={"question": "Comment lancer un conseil citoyen ?",
                                                  "history": ["conseil citoyen ?"] * 11})
    assert history.status_code == 400 and "Historique trop long" in history.json()["detail"]
    upload = httpx.post(base + "/gradio_api/upload", files={"files": ("gros.csv", b"a" * (2 * 2**20), "text/csv")})
    assert upload.status_code == 413, upload.text
    small = httpx.post(base + "/gradio_api/upload", files={"files": ("petit.csv", b"question\n", "text/csv")})
    assert small.status_code == 200


def test_slow_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as sock:
        sock.sendall(b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"question\":")
        started = time.monotonic()
        reply = sock.recv(4096).decode("utf-8", "replace")
        assert " 408 " in reply.split("\r\n")[0] and time.monotonic() - started < 8


def test_idle_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=15) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = b""
        while b"passages" not in reply:
            reply += sock.recv(4096)
        assert b" 200 " in reply
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server after the keep-alive timeout (5 s)
        assert time.monotonic() - started < 12


def test_malformed_input_gets_400_not_500(server):
    base = server["base"]
    for path in ("/sources/%00", "/sources/fiches-outils/conseil-citoyen.md%00.txt", "/sources/%ff%fe"):
        assert httpx.get(base + path).status_code in (400, 404), path
    surrogate = httpx.post(base + "/api/ask", content=b'{"question": "conseil \\ud800 citoyen"}',
                           headers={"Content-Type": "application/json"})
    assert surrogate.status_code == 400 and "invalide" in surrogate.json()["detail"]
    nul = httpx.post(base + "/api/ask", json={"question": "conseil\u0000citoyen"})
    assert nul.status_code == 400
    bad_utf8 = httpx.post(base + "/api/ask", content=b'{"question": "conseil \xff citoyen"}',
                          headers={"Content-Type": "application/json"})
    assert bad_utf8.status_code == 400


def test_sources_only_indexed_files(server):
    base = server["base"]
    assert httpx.get(base + "/sources/fiches-outils/conseil-citoyen.md").status_code == 200
    assert httpx.get(base + "/sources/README.md").status_code == 404


def test_channel_from_a_fixed_list(server):
    response = httpx.post(server["base"] + "/api/ask", json={"question": "Comment lancer un conseil citoyen ?",
                                                            "channel": "\t=1+1"})
    assert response.status_code == 400 and "Canal inconnu" in response.json()["detail"]


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"equipe:{password}".encode()).decode()}


def test_cross_site_staff_request_refused(server):
    base = server["base"]
    for headers in ({"Origin": "http://site-malveillant.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = httpx.post(base + "/staff/reindex", headers={**basic(PASSWORD), **headers})
        assert response.status_code == 403 and "autre site" in response.json()["detail"]
    same = httpx.post(base + "/staff/reindex", headers={**basic(PASSWORD), "Origin": base, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200, same.text


def test_forwarded_for_rotation_does_not_bypass_limits(server):
    """Last: it uses up this client's question budget and its staff password attempts."""
    base = server["base"]
    codes = [httpx.post(base + "/api/ask", json={"question": "Comment lancer un conseil citoyen ?"},
                        headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"}).status_code for i in range(70)]
    assert 429 in codes and codes.count(200) <= 60
    guesses = [httpx.get(base + "/staff/feedback.csv", headers={**basic(f"essai-{i}"), "X-Forwarded-For": f"10.1.0.{i}"})
               .status_code for i in range(40)]
    assert guesses.count(401) <= 5 and 429 in guesses
    # the right password is refused too while the space is locked: guessing gains nothing
    assert httpx.get(base + "/staff/feedback.csv", headers=basic(PASSWORD)).status_code == 429


def test_login_throttle_is_global_too():
    clock = [0.0]
    throttle = LoginThrottle(per_client=5, overall=20, window_s=300, clock=lambda: clock[0])
    for i in range(20):
        assert not throttle.locked(f"client-{i}")
        throttle.failed(f"client-{i}")
    assert throttle.locked("client-nouveau")
    clock[0] = 301
    assert not throttle.locked("client-nouveau")


def test_staff_sessions_expire_and_are_random():
    clock = [0.0]
    sessions = StaffSessions(ttl_s=10, clock=lambda: clock[0])
    token = sessions.open()
    assert sessions.valid(token) and not sessions.valid("") and not sessions.valid(None)
    assert sessions.open() != token
    clock[0] = 11
    assert not sessions.valid(token)


def test_small_checks():
    assert is_cross_site({"origin": "http://evil.example"}, "127.0.0.1:7860")
    assert not is_cross_site({"origin": "http://127.0.0.1:7860"}, "127.0.0.1:7860")
    assert not is_cross_site({}, "127.0.0.1:7860")
    assert is_cross_site({"sec-fetch-site": "cross-site"}, "127.0.0.1:7860")
    assert text_problem("conseil\x00") and text_problem("a\ud800b") and not text_problem("Qu'est-ce qu'un PETR ?\n")
    for prefix in ("=", "+", "-", "@", "\t", "\r", " =", "|", "%"):
        assert csv_cell(prefix + "1+1").startswith("'"), prefix
    assert csv_cell("Comment lancer ?") == "Comment lancer ?" and csv_cell(3) == 3
