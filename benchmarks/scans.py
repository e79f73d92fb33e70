"""Generated « scans »: known text drawn on an A4 page image (Pillow), slightly rotated, blurred and
noisy, put in a PDF with no text layer (fpdf2). Used by tests/test_ocr.py and benchmarks/ocr.py.

Usage::

    write_pdf(Path("scan.pdf"), [("scan", "Texte de la page 1…"), ("text", "Page 2 avec texte")])
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
A4_MM = (210, 297)


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT), size) if FONT.exists() else ImageFont.load_default(size=size)


def scan_image(text: str, dpi: int = 200, noise: bool = True, seed: int = 1) -> Any:
    """An A4 greyscale image of ``text`` (11 pt, 2 cm margins), as a scanner would give it."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = int(A4_MM[0] / 25.4 * dpi), int(A4_MM[1] / 25.4 * dpi)
    margin = int(20 / 25.4 * dpi)
    font = _font(int(11 / 72 * dpi))
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    line_height = int(11 / 72 * dpi * 1.45)
    y = margin
    for paragraph in text.split("\n"):
        words, line = paragraph.split(), ""
        for word in words + [None]:
            candidate = f"{line} {word}".strip() if word else line
            if word is not None and draw.textlength(candidate, font=font) <= width - 2 * margin:
                line = candidate
                continue
            if line:
                draw.text((margin, y), line, font=font, fill=30)
                y += line_height
            line = word or ""
            if y > height - margin:
                break
        y += line_height // 2
    if noise:
        rng = random.Random(seed)
        image = image.rotate(rng.uniform(-0.6, 0.6), resample=Image.Resampling.BICUBIC, fillcolor=255)
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        pixels = image.load()
        for _ in range(width * height // 400):  # dust
            pixels[rng.randrange(width), rng.randrange(height)] = rng.randrange(0, 160)
    return image


def write_pdf(path: Path, pages: list[tuple[str, str]], dpi: int = 200, title: str | None = None) -> Path:
    """A PDF whose pages are ``("scan", text)`` (an image only, no text layer) or ``("text", text)``."""
    import io

    from fpdf import FPDF

    pdf = FPDF(unit="mm", format="A4")
    if FONT.exists():
        pdf.add_font("DejaVu", "", str(FONT))
        pdf.set_font("DejaVu", size=11)
    else:
        pdf.set_font("Helvetica", size=11)
    if title:
        pdf.set_title(title)
    for number, (kind, text) in enumerate(pages, start=1):
        pdf.add_page()
        if kind == "scan":
            buffer = io.BytesIO()
            scan_image(text, dpi=dpi, seed=number).save(buffer, format="PNG")
            pdf.image(buffer, x=0, y=0, w=A4_MM[0], h=A4_MM[1])
        else:
            pdf.multi_cell(0, 6, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def char_accuracy(reference: str, recognised: str) -> float:
    """Share of the reference's characters found, in order, in the recognised text (whitespace
    runs count as one space): the matching blocks of difflib, without its junk heuristic."""
    import difflib

    ref, hyp = " ".join(reference.split()), " ".join(recognised.split())
    if not ref:
        return 1.0
    matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(ref)
