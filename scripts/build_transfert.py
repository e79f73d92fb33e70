"""Build the slide-deck PDFs of the transfer corpus (issue 15) from their text sources.

    .venv/bin/python scripts/build_transfert.py

``evals/transfert/src/<nom>.md`` (pages separated by ``---``; ``# `` = slide title, ``- `` = bullet)
-> ``evals/transfert/corpus/<nom>.pdf`` (fpdf2, landscape, one slide per page, a title and short
lines, like a presentation exported to PDF). The PDF metadata carries the title and the
« exemple fictif » mark.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "evals" / "transfert" / "src"
OUT = ROOT / "evals" / "transfert" / "corpus"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def build(src: Path, out: Path) -> Path:
    from fpdf import FPDF

    pages = [p.strip() for p in src.read_text(encoding="utf-8").split("\n---\n") if p.strip()]
    pdf = FPDF(orientation="L", format="A4")
    pdf.add_font("DejaVu", "", str(FONT))
    pdf.add_font("DejaVu", "B", str(BOLD))
    title = pages[0].splitlines()[0].lstrip("# ").strip()
    pdf.set_title(title)
    pdf.set_keywords("exemple fictif")
    pdf.set_creation_date(__import__("datetime").datetime(2025, 1, 1))
    for page in pages:
        pdf.add_page()
        for line in page.splitlines():
            if line.startswith("# "):
                pdf.set_font("DejaVu", "B", 26)
                pdf.multi_cell(0, 14, line[2:].strip())
                pdf.ln(6)
            elif line.strip():
                pdf.set_font("DejaVu", "", 17)
                text = "• " + line[2:].strip() if line.startswith("- ") else line.strip()
                pdf.multi_cell(0, 10, text)
                pdf.ln(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))
    return out


def main() -> None:
    for src in sorted(SRC.glob("*.md")):
        print(build(src, OUT / f"{src.stem}.pdf").relative_to(ROOT))


if __name__ == "__main__":
    main()
