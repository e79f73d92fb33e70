"""OCR of scanned PDF pages, for real: a page of a corpus report is rendered to an image-only PDF
(no text layer), read back by Tesseract (French data), and its passages keep their page number and
say ``ocr``. Also: ASSISTANT_OCR=0, Tesseract absent from the PATH (French message saying how to
install it), and a scan that failed is tried again once OCR is possible. Fake embedder (named so)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from scans import char_accuracy, write_pdf  # noqa: E402

from assistant import ocr  # noqa: E402
from assistant.answer import answer  # noqa: E402
from assistant.ingest import ingest  # noqa: E402
from assistant.loaders import load_file  # noqa: E402
from assistant.retrieve import open_index  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "corpus" / "rapports" / "enquete-regionale-dialogue-territorial.pdf"


def corpus_page(number: int) -> str:
    """The text layer of one page of a real corpus PDF: the known text of the scan."""
    from pypdf import PdfReader

    return PdfReader(str(REPORT)).pages[number - 1].extract_text()


def image_only_pdf(path: Path, source: Path, pages: list[int], dpi: int = 200) -> Path:
    """``source`` pages rendered to images (PDFium), then put in a PDF without any text (fpdf2)."""
    import pypdfium2 as pdfium
    from fpdf import FPDF

    doc = pdfium.PdfDocument(str(source))
    pdf = FPDF(unit="mm", format="A4")
    for number in pages:
        image = doc[number - 1].render(scale=dpi / 72, grayscale=True).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pdf.add_page()
        pdf.image(buffer, x=0, y=0, w=210, h=297)
    doc.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


needs_tesseract = pytest.mark.skipif(ocr.ocr_problem("fra") is not None,
                                     reason="Tesseract absent : bash scripts/setup.sh l'installe (root)")


@needs_tesseract
def test_a_rendered_corpus_page_is_recognised(tmp_path):
    scan = image_only_pdf(tmp_path / "rapports" / "scan.pdf", REPORT, [2])
    from pypdf import PdfReader

    assert not PdfReader(str(scan)).pages[0].extract_text().strip(), "the scan has no text layer"
    result = load_file(scan, tmp_path, ocr_lang="fra")
    assert [d.metadata["page"] for d in result.documents] == [1]
    doc = result.documents[0]
    assert doc.metadata["ocr"] is True
    accuracy = char_accuracy(corpus_page(2), ocr.ocr_pdf_pages(scan.read_bytes(), [1])[1])
    assert accuracy > 0.97, accuracy
    assert any("reconnaissance de caractères (OCR)" in w for w in result.warnings)


@needs_tesseract
def test_scanned_page_keeps_its_number_and_is_cited_as_ocr(tmp_path, settings_for):
    settings = settings_for()
    text_page = "Rapport d'activité du centre.\n\nCette première page a une couche texte ordinaire."
    scanned = ("Les ateliers de quartier du Bourg-Neuf\n\nEn 2024, les ateliers de quartier du Bourg-Neuf ont réuni "
               "quarante habitants autour du réaménagement du lavoir. La mairie a financé une maquette en bois "
               "et les habitants ont voté pour conserver le bassin.")
    write_pdf(settings.corpus_dir / "rapports" / "bilan.pdf", [("text", text_page), ("scan", scanned)])
    report = ingest(settings.corpus_dir, settings.index_dir, settings, progress=False)
    assert not report.failed and report.added == ["rapports/bilan.pdf"]
    index = open_index(settings)
    pages = {m["page"]: m for m in index.metadata.values()}
    assert pages[2]["ocr"] is True and "ocr" not in pages[1]
    result = answer("Qu'ont voté les habitants pour le lavoir du Bourg-Neuf ?", index=index)
    cited = [c for c in result.citations if c.page == 2]
    assert cited and cited[0].ocr and "lavoir" in cited[0].text
    index.manifest.close()


def test_ocr_off_or_tesseract_absent_says_what_to_do(tmp_path, settings_for, monkeypatch):
    settings = settings_for(ocr=False)
    write_pdf(settings.corpus_dir / "rapports" / "scan.pdf", [("scan", "Un texte numérisé sur la concertation.")])
    report = ingest(settings.corpus_dir, settings.index_dir, settings, progress=False)
    assert "ASSISTANT_OCR=0" in dict(report.failed)["rapports/scan.pdf"]
    # Tesseract missing from this PATH: the real lookup fails and the message says how to install it
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    problem = ocr.ocr_problem("fra")
    assert problem and "apt-get install -y tesseract-ocr tesseract-ocr-fra" in problem
    on = settings_for(ocr=True)
    report = ingest(on.corpus_dir, on.index_dir, on, progress=False)
    reason = dict(report.failed)["rapports/scan.pdf"]
    assert "Tesseract" in reason and "tesseract-ocr-fra" in reason and "ASSISTANT_OCR=0" in reason


@needs_tesseract
def test_a_failed_scan_is_tried_again_when_ocr_is_turned_on(tmp_path, settings_for):
    off = settings_for(ocr=False)
    write_pdf(off.corpus_dir / "rapports" / "scan.pdf",
              [("scan", "La maison des habitants ouvre un atelier de concertation chaque mardi soir.")])
    assert dict(ingest(off.corpus_dir, off.index_dir, off, progress=False).failed)
    on = settings_for(ocr=True)
    report = ingest(on.corpus_dir, on.index_dir, on, progress=False)
    assert report.changed == ["rapports/scan.pdf"] and not report.failed
    again = ingest(on.corpus_dir, on.index_dir, on, progress=False)
    assert again.chunks_embedded == 0 and again.unchanged == ["rapports/scan.pdf"]
