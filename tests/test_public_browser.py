"""The public side in a real browser (Debian's chromium driven by Playwright), against a real
``assistant serve`` process, with a host page served from ANOTHER origin that embeds the widget with
``data-*`` options; axe-core (npm, installed by scripts/setup.sh --dev) audits every page.

Checked: the widget streams tokens (several DOM updates before the final answer), applies the host
page's ``data-departement`` preset, shows follow-up questions, keeps the conversation across two
questions and a reload of the tab (sessionStorage), « Nouvelle conversation » clears it; a
keyboard-only walk (open, ask, read, open a citation, close, focus back on the launcher); the
catalogue filters without JavaScript and opens a document; the staff analytics page shows plots
after a few questions; no serious or critical axe-core violation on the widget host page, the
chat, the catalogue, the accessibility statement and the staff space. Tiny corpus, fake embedder
(named so). Screenshots go to ASSISTANT_SCREENSHOTS_DIR (or the temporary folder)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest
from conftest import serve_subprocess
from test_browser import ARGS, CHROMIUM, free_port, host_server, shots_dir
from test_web import build_web_index

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / ".venv" / "node" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "secret-equipe"
HOST_PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Site d'un territoire landais</title></head>
<body><main><h1>Communauté de communes des Landes (fictive)</h1>
<p>Page d'un site partenaire. <a href="#actus">Actualités</a></p></main>
<script src="{app}/embed.js" data-label="Une question ?" data-title="Assistant des Landes"
  data-greeting="Bonjour ! Posez votre question sur la participation." data-color="#7c2d12"
  data-departement="Landes" data-position="left" defer></script>
</body></html>"""


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("public-browser")
    host_port = free_port()
    host_origin = f"http://127.0.0.1:{host_port}"
    settings, index = build_web_index(root, chroma_collection="public_browser", allowed_origins=host_origin)
    index.manifest.close()
    with serve_subprocess(settings, root, free_port(), ASSISTANT_STAFF_PASSWORD=PASSWORD,
                          ASSISTANT_RATE_LIMIT_PER_MINUTE="1000", ASSISTANT_ALLOWED_ORIGINS=host_origin) as base:
        pale = HOST_PAGE.format(app=base).replace("#7c2d12", "#ffcc00")  # 1.6:1 with white: refused
        host = host_server({"/": HOST_PAGE.format(app=base), "/pale": pale}, host_port)
        yield {"app": base, "host": host_origin}
        host.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("chromium absent de /usr/bin/chromium : bash scripts/setup.sh --dev l'installe (root).")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def new_page(browser, **options):
    context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 800}, **options)
    return context, context.new_page()


def axe_violations(frame) -> list[str]:
    """Serious and critical axe-core violations of a page or frame (axe injected by Playwright)."""
    if not AXE.exists():
        pytest.fail(f"axe-core absent ({AXE}) : bash scripts/setup.sh --dev l'installe (npm).")
    frame.add_script_tag(path=str(AXE))
    result = frame.evaluate("""() => axe.run(document, {resultTypes: ['violations'],
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})""")
    return [f"{v['id']} ({v['impact']}) : {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def widget_frame(page):
    return next(f for f in page.frames if "/widget" in f.url)


def active_in_frame(frame) -> str:
    return frame.evaluate("document.activeElement ? document.activeElement.id || document.activeElement.className : ''")


def test_widget_streams_presets_follow_ups_and_keeps_the_conversation(app_server, browser):
    context, page = new_page(browser, bypass_csp=True)  # bypass_csp: only so that axe can be injected
    try:
        page.goto(app_server["host"] + "/")
        launcher = page.locator("button.pqna-launcher")
        launcher.wait_for()
        # the iframe is preloaded before the first click, with the data-* options in its address
        page.locator("#pqna-panel iframe").wait_for(state="attached", timeout=10000)
        frame = widget_frame(page)
        frame.wait_for_selector("#q", state="attached")
        assert "departement=Landes" in frame.url and "title=" in frame.url
        assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(124, 45, 18)"
        assert launcher.evaluate("b => getComputedStyle(b).left") == "20px"
        # keyboard only: Tab to the launcher, Enter opens, focus lands in the question field
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.className") == "pqna-launcher":
                break
        page.keyboard.press("Enter")
        assert page.locator("#pqna-panel iframe").get_attribute("title") == "Assistant des Landes"
        for _ in range(40):
            if active_in_frame(frame) == "q":
                break
            time.sleep(0.05)
        assert active_in_frame(frame) == "q"
        assert frame.locator("h1").inner_text() == "Assistant des Landes"
        assert "Posez votre question sur la participation" in frame.locator(".intro").inner_text()
        assert frame.locator("#w-departement").input_value() == "Landes"
        assert "1 actif" in frame.locator("#filters-on").inner_text()
        # count the DOM updates of the streamed text before the final answer replaces it
        frame.evaluate("""() => { window.__updates = 0;
            new MutationObserver(ms => ms.forEach(m => { if (m.target.closest && m.target.closest('.streaming')
                || (m.target.parentElement && m.target.parentElement.closest('.streaming'))) window.__updates++; }))
              .observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true}); }""")
        page.keyboard.type("Que fait le conseil citoyen du quartier ?")
        page.keyboard.press("Enter")
        first = frame.locator("article.msg.assistant:not(.streaming)").first
        first.wait_for(timeout=20000)
        assert frame.evaluate("window.__updates") >= 2  # several token events reached the page
        # the preset filter applied: only the Landes experience is cited
        sources = first.locator(".sources .meta").evaluate_all("ps => ps.map(p => p.textContent)")
        assert sources and all("cc-acacias.md" in s for s in sources), sources
        assert not axe_violations(frame), axe_violations(frame)
        assert not axe_violations(page.main_frame)
        # keyboard: open a citation, read the passage, then the source opens at its address
        first.locator("button.cite").first.focus()
        page.keyboard.press("Enter")
        opened = first.locator(".sources details[open]").first
        opened.wait_for()
        assert opened.locator("blockquote").inner_text().strip()
        assert opened.locator("a").get_attribute("href").startswith("sources/fiches-experiences/")
        # filters cleared, a second question: follow-ups from the cited documents' headings
        frame.locator("#filters summary").click()
        frame.locator("#w-departement").select_option("")
        frame.locator("#q").fill("Comment lancer un conseil citoyen ?")
        frame.locator("#q").press("Enter")
        second = frame.locator("article.msg.assistant:not(.streaming)").nth(1)
        second.wait_for(timeout=20000)
        follow = second.locator("button.follow-up")
        assert 1 <= follow.count() <= 3
        page.screenshot(path=str(shots_dir() / "widget.png"))
        # a follow-up question continues the conversation, whose history is sent
        follow.first.click()
        frame.locator("article.msg.assistant:not(.streaming)").nth(2).wait_for(timeout=20000)
        stored = frame.evaluate("JSON.parse(sessionStorage.getItem('pqna-conversation'))")
        assert len(stored["turns"]) == 3 and len(stored["history"]) == 3
        # reloading the host page (same tab) shows the conversation again
        page.reload()
        page.locator("button.pqna-launcher").click()
        frame = widget_frame(page)
        frame.wait_for_selector("article.msg.assistant", timeout=10000)
        assert frame.locator("article.msg.assistant").count() == 3
        frame.locator("#new").click()
        assert frame.locator("article.msg.assistant").count() == 0
        assert frame.evaluate("sessionStorage.getItem('pqna-conversation')") is None
        # Escape closes; focus back on the launcher
        frame.locator("#q").focus()
        page.keyboard.press("Escape")
        page.locator("#pqna-panel").wait_for(state="hidden")
        assert page.evaluate("document.activeElement.className") == "pqna-launcher"
        outline = page.locator("button.pqna-launcher").evaluate("b => getComputedStyle(b).outlineStyle")
        assert outline != "none"
    finally:
        context.close()


def test_low_contrast_colour_is_refused(app_server, browser):
    context, page = new_page(browser)
    try:
        page.goto(app_server["host"] + "/pale")
        launcher = page.locator("button.pqna-launcher")
        launcher.wait_for()
        assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(30, 58, 138)"
    finally:
        context.close()


def test_catalogue_filters_without_javascript_and_opens_a_document(app_server, browser):
    context, page = new_page(browser, java_script_enabled=False)
    try:
        page.goto(app_server["app"] + "/catalogue")
        assert page.locator(".tiles li").count() == 12
        page.select_option("#f-type", "fiche_experience")
        page.select_option("#f-departement", "Gironde")
        page.get_by_role("button", name="Filtrer").click()
        page.wait_for_url("**/catalogue?*")
        items = page.locator(".items li.item")
        assert items.count() == 1 and "exemple fictif" in items.first.inner_text()
        page.screenshot(path=str(shots_dir() / "catalogue.png"), full_page=True)
        items.first.locator("h3 a").click()
        page.wait_for_url("**/sources/fiches-experiences/cc-tilleuls.md")
        assert "centre social" in page.content()
    finally:
        context.close()
    context, page = new_page(browser)
    try:
        for path in ("/catalogue", "/catalogue?departement=Landes", "/accessibilite"):
            page.goto(app_server["app"] + path)
            assert not axe_violations(page.main_frame), (path, axe_violations(page.main_frame))
    finally:
        context.close()


def test_chat_and_staff_space_pass_axe(app_server, browser):
    context, page = new_page(browser)
    try:
        page.goto(app_server["app"] + "/")
        box = page.locator("#question textarea")
        box.wait_for(timeout=20000)
        page.get_by_text("Exemples de questions").first.wait_for()
        page.wait_for_timeout(500)  # Gradio finishes laying out its components
        assert not axe_violations(page.main_frame), axe_violations(page.main_frame)
        box.fill("Comment lancer un conseil citoyen ?")
        page.locator("#send").click()
        page.locator("#sources").get_by_text("[1]").first.wait_for(timeout=20000)
        assert not axe_violations(page.main_frame), axe_violations(page.main_frame)
        page.get_by_role("tab", name="Espace équipe").click()
        page.get_by_label("Mot de passe de l'équipe").fill(PASSWORD)
        page.get_by_role("button", name="Ouvrir l'espace équipe").click()
        page.get_by_text("réponses servies").wait_for()
        page.wait_for_timeout(500)
        assert not axe_violations(page.main_frame), axe_violations(page.main_frame)
    finally:
        context.close()


def test_analytics_page_shows_plots(app_server, browser):
    for q in ("Comment lancer un conseil citoyen ?", "Quelle est la recette des crêpes ?"):
        httpx.post(app_server["app"] + "/api/ask", json={"question": q, "channel": "api"}, timeout=30)
    auth = "Basic " + base64.b64encode(f"equipe:{PASSWORD}".encode()).decode()
    context, page = new_page(browser, extra_http_headers={"Authorization": auth})
    try:
        page.goto(app_server["app"] + "/staff/analytics")
        assert page.locator("figure svg").count() == 4
        assert page.locator("figure svg rect").count() >= 2
        page.screenshot(path=str(shots_dir() / "analytics.png"), full_page=True)
        assert not axe_violations(page.main_frame), axe_violations(page.main_frame)
    finally:
        context.close()
