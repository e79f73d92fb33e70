"""The « Documents » tab in a real browser (Debian's chromium driven by Playwright, a real uvicorn
server): log in to the staff space, upload a Word file and a scanned PDF, see both indexed, ask a
question answered from the scan with the right page (marked OCR), edit the PDF's metadata
(échelle, département) and find it with the filters, delete it and see it gone from the answers.
Tiny corpus, fake embedder (named so), real Tesseract. The screenshot goes to docs/ when
ASSISTANT_SCREENSHOTS_DIR says so (see the README)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import make_docx
from test_browser import ARGS, CHROMIUM, free_port, shots_dir
from test_web import build_web_index

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from scans import write_pdf  # noqa: E402

from assistant.ocr import ocr_problem  # noqa: E402

pytestmark = pytest.mark.integration

SCAN_PAGE = ("Le jardin partagé des Coquelicots\n\nDepuis 2023, le jardin partagé des Coquelicots réunit "
             "trente familles du quartier. Les parcelles sont attribuées par tirage au sort chaque printemps "
             "et la récolte de courges est partagée lors d'une fête en octobre.")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    import uvicorn

    from assistant.web.server import create_app

    if not CHROMIUM.exists():
        pytest.fail("chromium absent de /usr/bin/chromium : bash scripts/setup.sh --dev l'installe (root).")
    if ocr_problem("fra"):
        pytest.fail("Tesseract absent : bash scripts/setup.sh l'installe (root). " + str(ocr_problem("fra")))
    settings, index = build_web_index(tmp_path_factory.mktemp("documents"), chroma_collection="browser_documents",
                                      rate_limit_per_minute=0)
    app = create_app(settings, index=index)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1000})
        outside: list[str] = []

        def guard(route):
            url = route.request.url
            if url.startswith(("data:", "blob:", "http://127.0.0.1", "http://localhost")):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        context.route("**/*", guard)
        yield context.new_page()
        context.close()
        browser.close()
        assert outside == [], f"requêtes sorties de la machine : {outside}"


def choose(page, elem_id: str, value: str) -> None:
    """Pick ``value`` in a Gradio dropdown."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).first.click()


def table_row(page, source: str):
    return page.locator("#documents-table [role=row]", has_text=source)


def wait_status(page, source: str, status: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = table_row(page, source)
        if row.count() and status in row.first.inner_text():
            return
        time.sleep(0.3)
    page.screenshot(path=str(shots_dir() / "documents-echec.png"), full_page=True)
    raise AssertionError(f"{source} n'est pas « {status} » : {page.locator('#documents-table').inner_text()}")


def new_question(page, question: str) -> None:
    """« Nouvelle conversation », then the question sent. The reset empties the question box when it
    lands, which on a loaded machine can be after the box was filled: then fill and send again."""
    page.locator("#new-conversation").click()
    box = page.locator("#question textarea")
    asked = page.locator("#conversation").get_by_text(question)
    for _ in range(4):
        box.fill(question)
        page.locator("#send").click()
        try:
            asked.first.wait_for(timeout=8000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try again
            continue
    asked.first.wait_for(timeout=30000)


def ask(page, question: str) -> str:
    page.get_by_role("tab", name="Discuter").click()
    new_question(page, question)
    page.locator("#conversation").get_by_text("Pour aller plus loin").first.wait_for(timeout=30000)
    page.locator("#sources").get_by_text("[1]").first.wait_for(timeout=30000)
    return page.locator("#sources").inner_text()


def open_documents(page) -> None:
    page.get_by_role("tab", name="Espace équipe").click()
    page.get_by_role("tab", name="Documents").click()


def test_staff_upload_ocr_metadata_delete(page, app_url, tmp_path):
    word = make_docx(tmp_path / "Fête des voisins.docx", None,
                     [("Heading 1", "La fête des voisins de la rue Haute"),
                      ("Normal", "La fête des voisins de la rue Haute se tient le premier samedi de juin.")])
    scan = write_pdf(tmp_path / "Bilan jardin scanné.pdf",
                     [("text", "Bilan annuel de la maison de quartier.\n\nPage 1 : le mot du président."),
                      ("scan", SCAN_PAGE)])
    page.goto(app_url + "/")
    page.get_by_role("tab", name="Espace équipe").click()
    page.get_by_label("Mot de passe de l'équipe").fill("secret-equipe")
    page.get_by_role("button", name="Ouvrir l'espace équipe").click()
    page.get_by_text("réponses servies").wait_for()
    page.get_by_role("tab", name="Documents").click()
    wait_status(page, "fiches-outils/conseil-citoyen.md", "indexé")
    page.locator("#documents-upload input[type=file]").set_input_files([str(word), str(scan)])
    page.locator("#documents-upload").get_by_text("Bilan jardin").first.wait_for(timeout=20000)  # uploaded
    page.locator("#documents-send").click()
    page.locator("#documents-upload-message").get_by_text("depots/fete-des-voisins.docx").wait_for(timeout=20000)
    wait_status(page, "depots/fete-des-voisins.docx", "indexé")
    wait_status(page, "depots/bilan-jardin-scanne.pdf", "indexé")
    row = table_row(page, "depots/bilan-jardin-scanne.pdf").first
    cells = [c.inner_text().strip() for c in row.locator("[role=gridcell]").all()]
    assert cells[4] == "pdf" and cells[5] == "2" and cells[7] == "2", cells  # two pages; page 2 read by OCR
    page.screenshot(path=str(shots_dir() / "documents.png"), full_page=True)

    sources = ask(page, "Comment sont attribuées les parcelles du jardin partagé des Coquelicots ?")
    assert "depots/bilan-jardin-scanne.pdf" in sources and "Page : 2" in sources and "texte reconnu (OCR)" in sources

    open_documents(page)
    choose(page, "documents-choice", "depots/bilan-jardin-scanne.pdf")
    page.locator("#documents-passages").get_by_text("tirage au sort").first.wait_for()
    page.locator("#meta-departement textarea, #meta-departement input").first.fill("Creuse")
    choose(page, "meta-echelle", "commune")
    page.locator("#documents-save").click()
    page.locator("#documents-meta-message").get_by_text("enregistrées").wait_for()
    deadline = time.monotonic() + 90
    while "Creuse" not in table_row(page, "depots/bilan-jardin-scanne.pdf").first.inner_text():
        assert time.monotonic() < deadline, "métadonnées non réindexées"
        time.sleep(0.3)
    wait_status(page, "depots/bilan-jardin-scanne.pdf", "indexé")

    page.get_by_role("tab", name="Discuter").click()
    page.get_by_text("Filtres").first.click()
    choose(page, "filter-departement", "Creuse")
    choose(page, "filter-echelle", "Commune")
    page.locator("#question textarea").fill("récolte de courges")
    page.locator("#send").click()
    page.locator("#sources").get_by_text("[1]").first.wait_for(timeout=30000)
    filtered = page.locator("#sources").inner_text()
    assert "depots/bilan-jardin-scanne.pdf" in filtered and "conseil-citoyen" not in filtered

    open_documents(page)
    choose(page, "documents-choice", "depots/bilan-jardin-scanne.pdf")
    page.get_by_label("Je confirme la suppression").check()
    page.locator("#documents-delete").click()
    page.locator("#documents-meta-message").get_by_text("supprimé").wait_for()
    deadline = time.monotonic() + 90
    while table_row(page, "depots/bilan-jardin-scanne.pdf").count():
        assert time.monotonic() < deadline, "document toujours listé"
        time.sleep(0.3)
    page.locator("#documents-progress").get_by_text("Indexation terminée").wait_for(timeout=90000)
    page.get_by_role("tab", name="Discuter").click()
    # « Creuse » left the corpus with the PDF: the filter's choices follow, its value is cleared
    deadline = time.monotonic() + 20
    while page.locator("#filter-departement input").input_value() != "":
        assert time.monotonic() < deadline, "le filtre Département garde une valeur disparue du corpus"
        time.sleep(0.2)
    new_question(page, "Comment sont attribuées les parcelles du jardin partagé des Coquelicots ?")
    deadline = time.monotonic() + 30  # an answer (or an honest refusal) replaces the empty panel
    while "apparaîtront ici" in page.locator("#sources").inner_text():
        assert time.monotonic() < deadline, "pas de réponse"
        time.sleep(0.2)
    assert "bilan-jardin-scanne" not in page.locator("#sources").inner_text()
