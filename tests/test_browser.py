"""The web app in a real browser: Debian's chromium driven by Playwright, a real uvicorn server and a
host page served from ANOTHER origin that embeds the widget with the one-line script.

Checked: keyboard-operable launcher with visible focus, iframe title, question → answer with a
citation, citation opened, feedback stored, Escape closes and gives focus back, no keyboard trap,
HTML from a question or a corpus document shown as text, a disallowed origin refused (CSP
frame-ancestors and CORS), the Gradio chat in French, and no request leaving 127.0.0.1.
Tiny corpus with the fake embedder (named so). Screenshots go to the test's temporary folder, or to
the folder named by ASSISTANT_SCREENSHOTS_DIR (the README's « Captures » section gives the command that uses it to refresh docs/)."""

from __future__ import annotations

import http.server
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_web import build_web_index

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("ASSISTANT_SCREENSHOTS_DIR")
HOST_PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Site d'un territoire</title></head>
<body><h1>Communauté de communes du Plateau (fictive)</h1>
<p>Page d'un site partenaire. <a href="#actus">Actualités</a></p>
<p style="max-width:40em">Le centre de ressources propose un assistant qui répond aux questions sur le dialogue
territorial : il s'ouvre avec le bouton en bas à droite.</p>
<script src="{app}/embed.js" data-label="Une question sur le dialogue territorial ?" defer></script>
</body></html>"""
IFRAME_PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Iframe</title></head>
<body><iframe id="w" src="{app}/widget" title="Assistant du dialogue territorial (PQN-A)" width="400" height="600"></iframe>
</body></html>"""


def shots_dir() -> Path:
    path = Path(SHOTS) if SHOTS else Path(tempfile.gettempdir()) / "pqna-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_server(pages: dict[str, str], port: int) -> http.server.ThreadingHTTPServer:
    """A plain static server for the host pages (another origin than the app)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    import uvicorn

    from assistant.web.server import create_app

    if not CHROMIUM.exists():
        pytest.fail("chromium absent de /usr/bin/chromium : bash scripts/setup.sh --dev l'installe (root).")
    allowed_port, other_port = free_port(), free_port()
    allowed_origin = f"http://127.0.0.1:{allowed_port}"
    settings, index = build_web_index(tmp_path_factory.mktemp("browser"), allowed_origins=allowed_origin,
                                      chroma_collection="browser_test")
    app = create_app(settings, index=index)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    app_url = f"http://127.0.0.1:{port}"
    pages = {"/": HOST_PAGE.format(app=app_url), "/iframe.html": IFRAME_PAGE.format(app=app_url)}
    allowed, other = host_server(pages, allowed_port), host_server(pages, other_port)
    yield {"app": app_url, "allowed": allowed_origin, "other": f"http://127.0.0.1:{other_port}", "service": app.state.service}
    for s in (allowed, other):
        s.shutdown()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page whose requests to anything but 127.0.0.1 are aborted and recorded."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 800})
    outside: list[str] = []

    def guard(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    pg = context.new_page()
    yield pg
    context.close()
    assert outside == [], f"requêtes sorties de la machine : {outside}"


def active(page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.tagName + '.' + document.activeElement.className : ''")


def test_widget_on_host_page_with_keyboard(servers, page):
    page.goto(servers["allowed"] + "/")
    launcher = page.locator("button.pqna-launcher")
    launcher.wait_for()
    for _ in range(10):  # reach the launcher with Tab only
        page.keyboard.press("Tab")
        if active(page) == "BUTTON.pqna-launcher":
            break
    assert active(page) == "BUTTON.pqna-launcher"
    outline = launcher.evaluate("b => getComputedStyle(b).outlineStyle + ' ' + getComputedStyle(b).outlineWidth")
    assert not outline.startswith("none") and not outline.endswith(" 0px"), outline  # visible focus
    assert launcher.get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    iframe = page.locator("#pqna-panel iframe")
    iframe.wait_for()
    assert launcher.get_attribute("aria-expanded") == "true"
    assert iframe.get_attribute("title") == "Assistant du dialogue territorial (PQN-A)"
    frame = page.frame_locator("#pqna-panel iframe")
    frame.locator("#q").wait_for()
    assert frame.locator("html").get_attribute("lang") == "fr"
    assert frame.locator("#log").get_attribute("aria-live") == "polite"
    q = frame.locator("#q")
    for _ in range(20):  # the launcher moves focus into the chat's question field
        if q.evaluate("el => document.activeElement === el"):
            break
        time.sleep(0.05)
    assert q.evaluate("el => document.activeElement === el")
    page.keyboard.type("Comment lancer un conseil citoyen ?")
    page.keyboard.press("Enter")
    answer = frame.locator("article.msg.assistant").first
    answer.wait_for(timeout=15000)
    page.screenshot(path=str(shots_dir() / "widget.png"))
    cites = answer.locator("button.cite")
    assert cites.count() >= 1
    # every button of the chat has an accessible name
    unnamed = frame.locator("button").evaluate_all(
        "bs => bs.filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length")
    assert unnamed == 0
    cites.first.focus()
    page.keyboard.press("Enter")  # a citation opens its source in the panel
    opened = answer.locator(".sources details[open]").first
    opened.wait_for()
    quote = opened.locator("blockquote").inner_text()
    link = opened.locator("a")
    href = link.get_attribute("href")
    assert href.startswith("sources/") and link.get_attribute("target") == "_blank"
    assert quote.strip()
    with page.expect_popup() as popup:
        link.click()
    source = popup.value
    source.wait_for_load_state()
    assert source.url.startswith(servers["app"] + "/sources/") and "conseil citoyen" in source.content().lower()
    source.close()
    assert frame.locator("body").evaluate("() => window.__pwned === undefined")
    # feedback: thumbs up, then a comment
    answer.get_by_role("button", name="Oui, réponse utile").click()
    answer.locator(".said").filter(has_text="Merci").wait_for()
    answer.locator("textarea").fill("Réponse claire, merci.")
    answer.get_by_role("button", name="Envoyer le commentaire").click()
    answer.locator(".said").filter(has_text="Merci").wait_for()
    rows = servers["service"].store.feedback_rows()
    assert any(r["rating"] == "up" and r["comment"] == "Réponse claire, merci." and r["channel"] == "widget" for r in rows)
    # HTML in a question and in a corpus passage is shown as text, never run
    q.fill('<img src=x onerror="window.__pwned=3">Où afficher la charte ?')
    q.press("Enter")
    second = frame.locator("article.msg.assistant").nth(1)
    second.wait_for(timeout=15000)
    assert "<img src=x" in frame.locator("p.msg.user").nth(1).inner_text()
    passages = " ".join(second.locator("blockquote").all_text_contents())
    assert "<script>window.__pwned = 1</script>" in passages and 'onerror="window.__pwned = 2"' in passages
    assert frame.locator("body").evaluate("() => window.__pwned === undefined")
    assert frame.locator("blockquote img, blockquote script, p.msg.user img").count() == 0
    # no keyboard trap: Tab eventually leaves the iframe
    q.focus()
    left = False
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.tagName !== 'IFRAME'"):
            left = True
            break
    assert left, "le focus clavier reste piégé dans le widget"
    # Escape inside the chat closes it and gives focus back to the launcher
    q.focus()
    page.keyboard.press("Escape")
    page.locator("#pqna-panel").wait_for(state="hidden")
    assert active(page) == "BUTTON.pqna-launcher" and launcher.get_attribute("aria-expanded") == "false"


def test_plain_iframe_snippet_works_from_allowed_origin(servers, page):
    page.goto(servers["allowed"] + "/iframe.html")
    page.frame_locator("#w").locator("#q").wait_for(timeout=10000)


def test_widget_shows_an_uncertain_answer_with_its_excerpts(servers, page):
    import dataclasses

    from assistant import refusal

    index = servers["service"].index
    saved = refusal.ensure_calibration(index)
    index._calibration = dataclasses.replace(saved, refuse_below=-10.0, answer_from=10.0)  # every question borderline
    try:
        page.goto(servers["allowed"] + "/iframe.html")
        frame = page.frame_locator("#w")
        frame.locator("#q").fill("Comment lancer un conseil citoyen ?")
        frame.locator("#q").press("Enter")
        answer = frame.locator("article.msg.assistant").first
        answer.wait_for(timeout=15000)
        assert "Réponse incertaine" in answer.locator(".uncertain").inner_text()
        assert answer.locator("button.cite").count() >= 1
        assert answer.locator(".sources blockquote").count() >= 1
        assert answer.locator(".experiences").count() == 0
    finally:
        index._calibration = saved


def test_disallowed_origin_is_refused(servers, page):
    page.goto(servers["other"] + "/iframe.html")
    page.wait_for_load_state("load")
    time.sleep(0.5)
    frame = next(f for f in page.frames if f != page.main_frame)
    assert frame.locator("#q").count() == 0  # CSP frame-ancestors blocked the widget
    result = page.evaluate("""url => fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({question: 'conseil citoyen'})}).then(r => 'lu:' + r.status).catch(e => 'refusé')""",
                           servers["app"] + "/api/ask")
    assert result == "refusé"  # CORS: the other origin cannot call the API


def test_gradio_chat_in_french(servers, page):
    page.goto(servers["app"] + "/")
    assert page.locator("html").get_attribute("lang") == "fr"
    box = page.locator("#question textarea")
    box.wait_for(timeout=20000)
    box.fill("Comment lancer un conseil citoyen ?")
    page.locator("#send").click()
    page.locator("#sources").get_by_text("[1]").first.wait_for(timeout=20000)
    bot = page.locator("#conversation")
    bot.get_by_text("Pour aller plus loin").first.wait_for(timeout=20000)
    marked = page.locator("#experiences").inner_text() + page.locator("#sources").inner_text()
    assert "exemple fictif" in marked
    page.get_by_text("Exemples de questions").first.wait_for()
    page.screenshot(path=str(shots_dir() / "chat.png"), full_page=True)
    # HTML in a question and in a corpus passage is shown as text, never run
    box.fill('<img src=x onerror="window.__pwned=4">Où afficher la charte ?')
    page.locator("#send").click()
    page.locator("#sources").get_by_text("<script>window.__pwned = 1</script>").first.wait_for(timeout=20000)
    bot.get_by_text('<img src=x onerror="window.__pwned=4">').first.wait_for(timeout=20000)
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#sources img, #sources script, #conversation img[src=x]").count() == 0
    # feedback from the chat: thumbs up (Gradio's own button, labelled in French) and a comment
    page.locator("#conversation").get_by_role("button", name="J'aime").last.click()
    page.locator("#feedback-status").get_by_text("Merci pour votre retour").wait_for()
    page.get_by_text("Un commentaire sur la dernière réponse").click()
    page.get_by_label("Commentaire", exact=True).fill("Utile pour notre quartier.")
    page.get_by_role("button", name="Envoyer le commentaire").click()
    page.locator("#feedback-status").get_by_text("commentaire est enregistré").wait_for()
    rows = servers["service"].store.feedback_rows()
    assert any(r["channel"] == "ui" and r["rating"] == "up" and r["comment"] == "Utile pour notre quartier."
               for r in rows)
    page.locator("#new-conversation").click()
    page.locator("#sources").get_by_text("apparaîtront ici").wait_for()
    # staff view: password, then feedback and « lacunes du corpus »
    page.get_by_role("tab", name="Espace équipe").click()
    page.get_by_label("Mot de passe de l'équipe").fill("mauvais")
    page.get_by_role("button", name="Ouvrir l'espace équipe").click()
    page.get_by_text("Mot de passe incorrect.").wait_for()
    page.get_by_label("Mot de passe de l'équipe").fill("secret-equipe")
    page.get_by_role("button", name="Ouvrir l'espace équipe").click()
    page.get_by_text("réponses servies").wait_for()
    page.get_by_text("Lacunes du corpus").first.wait_for()
