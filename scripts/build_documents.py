"""Génère les documents PDF et Word du corpus d'exemple à partir de sources Markdown.

Les sources sont des fichiers Markdown avec un bloc de métadonnées YAML (front matter)
et une syntaxe réduite : titres ``#``, ``##``, ``###``, paragraphes, listes à puces
``- `` et listes numérotées ``1. `` (le gras ``**...**`` est aussi reconnu).

- ``scripts/corpus_src/rapports/*.md``    -> ``corpus/rapports/<nom>.pdf`` (fpdf2)
- ``scripts/corpus_src/fiches-word/*.md`` -> ``corpus/fiches-outils/<nom>.docx`` (python-docx)

Les dates de création sont fixes pour que deux constructions successives donnent
les mêmes octets.

Usage :
    .venv/bin/python scripts/build_documents.py
    .venv/bin/python scripts/build_documents.py --src scripts/corpus_src --out corpus
    .venv/bin/python scripts/build_documents.py --only pdf     # ou --only docx
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FIXED_DATE = datetime(2025, 6, 1, 0, 0, 0, tzinfo=UTC)
ZIP_DATE = (2025, 6, 1, 0, 0, 0)
AUTHOR = "PQN-A (document fictif)"
META_ORDER = ("type", "echelle", "themes", "date", "statut")
DOCX_FIELDS = ("type", "titre", "echelle", "themes", "date")

# Remplacements utilisés quand la police DejaVu est absente (polices PDF de base en latin-1).
LATIN1_REPLACEMENTS = {
    "\u2019": "'",
    "\u2018": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u0153": "oe",
    "\u0152": "OE",
    "\u2014": "-",
    "\u2013": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u202f": " ",
    "\u2009": " ",
    "\u20ac": "EUR",
}


@dataclass
class Block:
    """Un bloc de contenu : titre, paragraphe ou élément de liste."""

    kind: str  # h1 | h2 | h3 | p | bullet | number
    text: str
    number: str = ""


@dataclass
class Document:
    """Un document source : métadonnées du front matter et blocs de contenu."""

    name: str
    meta: dict[str, Any]
    blocks: list[Block] = field(default_factory=list)

    @property
    def title(self) -> str:
        return str(self.meta.get("titre", self.name))


# ---------------------------------------------------------------------------
# Lecture des sources
# ---------------------------------------------------------------------------

HEADING_RE = re.compile(r"^(#{1,3})\s+(.*)$")
NUMBER_RE = re.compile(r"^(\d+)\.\s+(.*)$")
FRENCH_PUNCT_RE = re.compile(r"(?<=\S) (?=[;:?!»])|(?<=«) ")


def parse_markdown(path: Path) -> Document:
    """Lit un fichier Markdown avec front matter YAML et le découpe en blocs."""
    raw = path.read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    body = raw
    if raw.startswith("---"):
        parts = raw.split("---", 2)
        if len(parts) == 3:
            meta = yaml.safe_load(parts[1]) or {}
            body = parts[2]
    doc = Document(name=path.stem, meta=meta)
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            doc.blocks.append(Block("p", " ".join(paragraph)))
            paragraph.clear()

    for line in body.splitlines():
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        heading = HEADING_RE.match(stripped)
        number = NUMBER_RE.match(stripped)
        if heading:
            flush()
            doc.blocks.append(Block(f"h{len(heading.group(1))}", heading.group(2).strip()))
        elif stripped.startswith("- "):
            flush()
            doc.blocks.append(Block("bullet", stripped[2:].strip()))
        elif number:
            flush()
            doc.blocks.append(Block("number", number.group(2).strip(), number.group(1)))
        elif (
            line.startswith((" ", "\t"))
            and doc.blocks
            and doc.blocks[-1].kind in ("bullet", "number")
            and not paragraph
        ):
            doc.blocks[-1].text += " " + stripped
        else:
            paragraph.append(stripped)
    flush()
    return doc


def meta_value(value: Any) -> str:
    """Rend une valeur de front matter sous forme de texte (listes jointes par des virgules)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def pdf_keywords(meta: dict[str, Any]) -> str:
    """Construit la chaîne de mots-clés PDF « clé=valeur » séparés par des points-virgules."""
    return "; ".join(f"{key}={meta_value(meta[key])}" for key in META_ORDER if key in meta)


def split_bold(text: str) -> list[tuple[str, bool]]:
    """Découpe un texte en segments (texte, gras ?) selon les marqueurs ``**``."""
    segments: list[tuple[str, bool]] = []
    for i, part in enumerate(text.split("**")):
        if part:
            segments.append((part, i % 2 == 1))
    return segments


# ---------------------------------------------------------------------------
# PDF (fpdf2)
# ---------------------------------------------------------------------------


def build_pdf(doc: Document, out_path: Path) -> int:
    """Écrit un rapport PDF A4 et renvoie son nombre de pages."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    regular = FONT_DIR / "DejaVuSans.ttf"
    bold = FONT_DIR / "DejaVuSans-Bold.ttf"
    unicode_font = regular.is_file() and bold.is_file()
    family = "DejaVu" if unicode_font else "Helvetica"
    bullet_char = "\u2022" if unicode_font else "-"

    def clean(text: str) -> str:
        if unicode_font:
            # Espaces insécables de la typographie française : pas de « ; » en début de ligne.
            return FRENCH_PUNCT_RE.sub("\u00a0", text)
        for src, dst in LATIN1_REPLACEMENTS.items():
            text = text.replace(src, dst)
        return text.encode("latin-1", errors="replace").decode("latin-1")

    title = doc.title

    class ReportPDF(FPDF):
        def header(self) -> None:
            if self.page_no() == 1:
                return
            self.set_font(family, "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 6, clean(title), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(2)
            self.set_text_color(0, 0, 0)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font(family, "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 10, f"Page {self.page_no()}/{{nb}}", align="C")
            self.set_text_color(0, 0, 0)

    pdf = ReportPDF(orientation="P", unit="mm", format="A4")
    if unicode_font:
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.alias_nb_pages()
    pdf.set_title(title)
    pdf.set_author(AUTHOR)
    pdf.set_subject(title)
    pdf.set_keywords(pdf_keywords(doc.meta))
    pdf.set_creator("scripts/build_documents.py")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_lang("fr-FR")

    # Page de titre
    pdf.add_page()
    pdf.set_y(70)
    pdf.set_font(family, "B", 22)
    pdf.multi_cell(0, 11, clean(title), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(10)
    pdf.set_font(family, "", 12)
    pdf.multi_cell(
        0,
        7,
        clean("Pays et Quartiers de Nouvelle-Aquitaine (PQN-A)"),
        align="C",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    if doc.meta.get("date"):
        pdf.multi_cell(
            0, 7, clean(f"Date : {doc.meta['date']}"), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    if doc.meta.get("statut"):
        pdf.ln(20)
        pdf.set_font(family, "B", 12)
        pdf.set_text_color(160, 30, 30)
        pdf.multi_cell(
            0,
            7,
            clean(f"{str(doc.meta['statut']).capitalize()} - document à visée illustrative"),
            align="C",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_text_color(0, 0, 0)
    if doc.meta.get("themes"):
        pdf.ln(6)
        pdf.set_font(family, "", 10)
        pdf.multi_cell(
            0,
            6,
            clean(f"Thèmes : {meta_value(doc.meta['themes'])}"),
            align="C",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )

    pdf.add_page()
    line_h = 5.6
    sizes = {"h1": 18, "h2": 14, "h3": 12}
    for block in doc.blocks:
        if block.kind == "h1" and block.text == title:
            continue
        text = clean(block.text)
        if block.kind in sizes:
            if pdf.get_y() > pdf.page_break_trigger - 30:
                pdf.add_page()
            pdf.ln(4 if block.kind == "h3" else 6)
            pdf.set_font(family, "B", sizes[block.kind])
            pdf.multi_cell(
                0,
                sizes[block.kind] * 0.5,
                text.replace("**", ""),
                align="L",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
            pdf.ln(2)
            continue
        pdf.set_font(family, "", 10.5)
        markdown = "**" in text
        if block.kind == "p":
            pdf.multi_cell(0, line_h, text, markdown=markdown, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(2)
        else:
            marker = bullet_char if block.kind == "bullet" else f"{block.number}."
            indent = 5.0
            marker_w = 7.0
            pdf.set_x(pdf.l_margin + indent)
            pdf.cell(marker_w, line_h, marker)
            pdf.multi_cell(
                pdf.epw - indent - marker_w,
                line_h,
                text,
                markdown=markdown,
                align="L",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
            pdf.ln(1)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out_path))
    return pdf.pages_count


# ---------------------------------------------------------------------------
# Word (python-docx)
# ---------------------------------------------------------------------------


def add_runs(paragraph: Any, text: str) -> None:
    """Ajoute le texte à un paragraphe Word en respectant les segments en gras."""
    for segment, is_bold in split_bold(text):
        run = paragraph.add_run(segment)
        if is_bold:
            run.bold = True


def normalize_zip(path: Path) -> None:
    """Réécrit l'archive .docx avec des dates fixes pour des octets reproductibles."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
    path.write_bytes(buffer.getvalue())


def build_docx(doc: Document, out_path: Path) -> None:
    """Écrit une fiche outil Word : tableau de métadonnées, puis titre et contenu."""
    from docx import Document as WordDocument

    word = WordDocument()
    table = word.add_table(rows=1, cols=2)
    table.style = "Table Grid"
    header = table.rows[0].cells
    header[0].text = "champ"
    header[1].text = "valeur"
    for cell in header:
        for run in cell.paragraphs[0].runs:
            run.bold = True
    for key in DOCX_FIELDS:
        if key not in doc.meta:
            continue
        cells = table.add_row().cells
        cells[0].text = key
        cells[1].text = meta_value(doc.meta[key])

    word.add_heading(doc.title, level=1)
    for block in doc.blocks:
        if block.kind == "h1":
            if block.text != doc.title:
                word.add_heading(block.text, level=1)
            continue
        if block.kind == "h2":
            word.add_heading(block.text, level=2)
        elif block.kind == "h3":
            word.add_heading(block.text, level=3)
        elif block.kind == "bullet":
            add_runs(word.add_paragraph(style="List Bullet"), block.text)
        elif block.kind == "number":
            add_runs(word.add_paragraph(style="List Number"), block.text)
        else:
            add_runs(word.add_paragraph(style="Normal"), block.text)

    props = word.core_properties
    props.title = doc.title
    props.author = "PQN-A"
    props.last_modified_by = "PQN-A"
    props.subject = doc.title
    props.keywords = meta_value(doc.meta.get("themes", ""))
    props.language = "fr-FR"
    props.revision = 1
    naive = FIXED_DATE.replace(tzinfo=None)
    props.created = naive
    props.modified = naive
    props.last_printed = naive

    out_path.parent.mkdir(parents=True, exist_ok=True)
    word.save(str(out_path))
    normalize_zip(out_path)


# ---------------------------------------------------------------------------
# Point d'entrée
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Construit tous les documents et affiche un résumé."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--src", type=Path, default=ROOT / "scripts" / "corpus_src", help="dossier des sources"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "corpus", help="dossier du corpus")
    parser.add_argument("--only", choices=("pdf", "docx"), help="ne construire qu'un type de document")
    args = parser.parse_args(argv)

    src: Path = args.src
    out: Path = args.out
    count = 0
    if args.only in (None, "pdf"):
        for path in sorted((src / "rapports").glob("*.md")):
            doc = parse_markdown(path)
            target = out / "rapports" / f"{doc.name}.pdf"
            pages = build_pdf(doc, target)
            print(f"{target.relative_to(out)} : {pages} pages")
            count += 1
    if args.only in (None, "docx"):
        for path in sorted((src / "fiches-word").glob("*.md")):
            doc = parse_markdown(path)
            target = out / "fiches-outils" / f"{doc.name}.docx"
            build_docx(doc, target)
            print(f"{target.relative_to(out)}")
            count += 1
    if count == 0:
        print("Aucune source trouvée.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
