"""OCR accuracy and speed on generated scans of known corpus text.

Each page of the corpus's PDF reports is rendered to an image (PDFium, greyscale, DPI given), put
alone in an image-only PDF, and read back. Compared: our path (pypdfium2 rendering + pytesseract,
one Tesseract thread), the same with Tesseract's default threads, and OCRmyPDF when its command is
on the PATH (not a dependency of the project: ``pip install ocrmypdf`` in another environment to
compare). Accuracy = share of the reference characters recognised in order (benchmarks/scans.py).

    .venv/bin/python benchmarks/ocr.py [--pages 6] [--dpi 200]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scans import char_accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def corpus_pages(limit: int) -> list[tuple[str, int, str]]:
    from pypdf import PdfReader

    out = []
    for pdf in sorted((ROOT / "corpus" / "rapports").glob("*.pdf")):
        for number, page in enumerate(PdfReader(str(pdf)).pages, start=1):
            text = page.extract_text() or ""
            if len(text) > 400:
                out.append((str(pdf), number, text))
    step = max(1, len(out) // limit)
    return out[::step][:limit]


def image_pdf(source: str, number: int, dpi: int) -> bytes:
    import pypdfium2 as pdfium
    from fpdf import FPDF

    doc = pdfium.PdfDocument(source)
    image = doc[number - 1].render(scale=dpi / 72, grayscale=True).to_pil()
    doc.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    pdf = FPDF(unit="mm", format="A4")
    pdf.add_page()
    pdf.image(buffer, x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def run_ours(raw: bytes, threads: str | None) -> tuple[str, float]:
    code = ("import sys; from assistant.ocr import ocr_pdf_pages; "
            "sys.stdout.write(ocr_pdf_pages(sys.stdin.buffer.read(), [1])[1])")
    env = dict(os.environ)
    env.pop("OMP_THREAD_LIMIT", None)
    if threads:
        env["OMP_THREAD_LIMIT"] = threads
    else:
        env["OMP_THREAD_LIMIT"] = str(os.cpu_count() or 1)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], input=raw, capture_output=True, env=env, check=True)
    return out.stdout.decode(), time.perf_counter() - t0


def run_ocrmypdf(binary: str, raw: bytes) -> tuple[str, float]:
    from pypdf import PdfReader

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.pdf", Path(tmp) / "out.pdf"
        src.write_bytes(raw)
        t0 = time.perf_counter()
        subprocess.run([binary, "-q", "-l", "fra", "--output-type", "pdf", str(src), str(dst)], check=True,
                       capture_output=True)
        seconds = time.perf_counter() - t0
        return PdfReader(str(dst)).pages[0].extract_text() or "", seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--ocrmypdf", default=shutil.which("ocrmypdf"), help="commande ocrmypdf (facultative)")
    args = parser.parse_args()
    pages = corpus_pages(args.pages)
    variants = {"pytesseract (1 thread)": lambda raw: run_ours(raw, "1"),
                f"pytesseract ({os.cpu_count()} threads)": lambda raw: run_ours(raw, None)}
    if args.ocrmypdf:
        variants["ocrmypdf"] = lambda raw: run_ocrmypdf(args.ocrmypdf, raw)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for source, number, text in pages:
        raw = image_pdf(source, number, args.dpi)
        for name, run in variants.items():  # interleaved: the machine's load hits all variants alike
            got, seconds = run(raw)
            results[name].append((char_accuracy(text, got), seconds))
    print(f"{len(pages)} pages des rapports du corpus, numérisées à {args.dpi} dpi (images seules)")
    print("| variante | caractères reconnus (médiane, min) | secondes par page (médiane) |")
    print("|---|---|---|")
    for name, rows in results.items():
        acc = [a for a, _ in rows]
        print(f"| {name} | {statistics.median(acc):.3f} ({min(acc):.3f}) | "
              f"{statistics.median(s for _, s in rows):.2f} |")


if __name__ == "__main__":
    main()
