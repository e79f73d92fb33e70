"""Optical character recognition of PDF pages that have no text layer (scans), with Tesseract.

Pages are rendered by PDFium (``pypdfium2``) at ``dpi`` and read by Tesseract through
``pytesseract`` with the French data (Debian packages ``tesseract-ocr`` and ``tesseract-ocr-fra``).
Measured choice against OCRmyPDF in ``benchmarks/ocr.py`` (README, « Documents scannés »).

Usage::

    problem = ocr_problem("fra")          # None when Tesseract and its French data are installed
    texts = ocr_pdf_pages(raw_pdf_bytes, [2, 3], lang="fra")   # {2: "texte…", 3: "…"} (1-based)
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from functools import lru_cache
from typing import Any

from assistant.errors import AssistantError

INSTALL_HINT = ("installez Tesseract et ses données françaises (Debian/Ubuntu : sudo apt-get install -y "
                "tesseract-ocr tesseract-ocr-fra ; bash scripts/setup.sh le fait en root), ou désactivez "
                "la reconnaissance avec ASSISTANT_OCR=0")
DEFAULT_DPI = 300
# One Tesseract thread: as fast on this 2-core machine (benchmarks/ocr.py: 1.68 s against 1.59 s a
# page), and its OpenMP threads no longer fight the web server's (a first try on the loaded machine
# took 6.3 s a page with the default threads, 1.1 s with one)
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


class OcrUnavailable(AssistantError):
    """Tesseract (or the language data) is missing; the French message says how to install it."""


@lru_cache(maxsize=8)
def _languages(binary: str) -> frozenset[str]:
    try:
        out = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in out.splitlines()[1:] if line.strip())


def ocr_problem(lang: str = "fra") -> str | None:
    """None when OCR can run for ``lang`` (e.g. ``fra`` or ``fra+eng``); else the French reason."""
    binary = shutil.which("tesseract")
    if binary is None:
        return f"Tesseract (reconnaissance de caractères) est absent de cette machine : {INSTALL_HINT}."
    missing = [code for code in lang.split("+") if code not in _languages(binary)]
    if missing:
        return (f"les données de langue Tesseract « {', '.join(missing)} » sont absentes : {INSTALL_HINT}.")
    try:
        import pypdfium2  # noqa: F401
        import pytesseract  # noqa: F401
    except ImportError:
        return "les paquets Python pytesseract et pypdfium2 manquent : relancez bash scripts/setup.sh."
    return None


def render_pages(raw: bytes, pages: list[int], dpi: int = DEFAULT_DPI) -> dict[int, Any]:
    """PIL images (greyscale) of the 1-based ``pages`` of a PDF."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(io.BytesIO(raw))
    try:
        out = {}
        for number in pages:
            page = pdf[number - 1]
            out[number] = page.render(scale=dpi / 72, grayscale=True).to_pil()
            page.close()
        return out
    finally:
        pdf.close()


def ocr_image(image: Any, lang: str = "fra") -> str:
    """Tesseract's text for one image (automatic page segmentation)."""
    import pytesseract

    return str(pytesseract.image_to_string(image, lang=lang, config="--psm 3"))


def ocr_pdf_pages(raw: bytes, pages: list[int], lang: str = "fra", dpi: int = DEFAULT_DPI) -> dict[int, str]:
    """Recognised text of the 1-based ``pages``; raises ``OcrUnavailable`` when Tesseract is missing."""
    problem = ocr_problem(lang)
    if problem:
        raise OcrUnavailable(problem)
    out = {}
    for number, image in render_pages(raw, pages, dpi).items():
        out[number] = ocr_image(image, lang)
    return out
