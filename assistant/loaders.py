"""Read corpus files into ``Document`` objects: Markdown (YAML front matter), text, PDF, Word.

Usage::

    from assistant.loaders import load_file
    result = load_file(Path("corpus/fiches-outils/conseil-citoyen.md"), Path("corpus"))
    result.documents[0].metadata["title"], result.warnings

Every problem becomes a ``LoadError`` whose message, in French, names the file and says what to do.
Formats are normalised to light Markdown (``#`` headings, ``- `` lists) so that one chunker serves all.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import LoadError
from assistant.types import DOC_TYPES, Document

SUPPORTED = {".md", ".markdown", ".txt", ".pdf", ".docx"}
SIDECAR_SUFFIX = ".meta.yaml"  # « rapports/etude.pdf » -> « rapports/etude.pdf.meta.yaml » (corpus/README.md)
SIDECAR_KEYS = ("type", "titre", "territoire", "departement", "echelle", "themes", "date", "statut")
IGNORED_NAMES = {"readme.md", "stats.md"}
FOLDER_TYPES = {
    "fiches-outils": "fiche_outil", "fiches_outils": "fiche_outil", "outils": "fiche_outil",
    "fiches-experiences": "fiche_experience", "fiches_experiences": "fiche_experience",
    "experiences": "fiche_experience", "entretiens": "entretien", "transcriptions": "entretien",
    "rapports": "rapport",
}
FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
# Speaker turns: "**Nom** : texte", "Nom : texte", "Q : texte". A label is 1-4 words, capitalised.
TURN = re.compile(
    r"^(?:\*\*(?P<b>[^*\n]{1,40}?)\*\*\s*:|(?P<p>(?:[A-ZÀ-ÖØ-Ý][\w'’.-]*)(?:\s[A-ZÀ-ÖØ-Ýa-zà-ÿ][\w'’.-]*){0,3})\s?:)\s+(?=\S)",
    re.M,
)


@dataclass
class LoadResult:
    """Documents read from one file, plus warnings that did not stop the reading."""

    documents: list[Document]
    warnings: list[str] = field(default_factory=list)


def guess_doc_type(rel_path: Path) -> str:
    """Document type from the first folder of the path that names one, else ``autre``."""
    for part in rel_path.parts[:-1]:
        key = unicodedata.normalize("NFKD", part.lower()).encode("ascii", "ignore").decode()
        if key in FOLDER_TYPES:
            return FOLDER_TYPES[key]
    return "autre"


def is_illustrative(meta: dict[str, Any]) -> bool:
    """True when the front matter says the text is invented (``statut: exemple fictif``)."""
    statut = str(meta.get("statut", "")).lower()
    return "fictif" in statut or "illustrati" in statut


def decode_text(raw: bytes, rel: str) -> tuple[str, str | None]:
    """UTF-8 first; else detect cp1252 / latin-1. Returns (text, warning or None)."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw, cp_isolation=["cp1252", "latin_1", "utf_16"]).best()
    encoding = best.encoding if best is not None else "cp1252"
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        text = raw.decode("latin-1")
        encoding = "latin-1"
    return text, f"{rel} : encodage {encoding} détecté (pas UTF-8) ; texte converti. Enregistrez-le en UTF-8 pour éviter toute erreur."


def split_front_matter(text: str, rel: str) -> tuple[dict[str, Any], str, str | None]:
    """Return (metadata, body, warning). Invalid YAML keeps the body and warns."""
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text, None
    body = text[match.end():]
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (ligne {line + 2})" if line is not None else ""
        return {}, body, (
            f"{rel} : bloc de métadonnées YAML invalide{where}, ignoré ; le texte est indexé sans "
            "métadonnées. Corrigez le bloc entre les lignes « --- »."
        )
    if not isinstance(data, dict):
        return {}, body, f"{rel} : le bloc de métadonnées n'est pas une liste « clé: valeur », ignoré."
    return {str(k): v for k, v in data.items()}, body, None


def normalise_metadata(meta: dict[str, Any], rel_path: Path, body: str) -> dict[str, Any]:
    """Common fields: source, title, doc_type, illustrative, themes (list), echelle, departement."""
    out = dict(meta)
    doc_type = str(meta.get("type") or "").strip().lower()
    out["doc_type"] = doc_type if doc_type in DOC_TYPES else guess_doc_type(rel_path)
    title = meta.get("titre") or meta.get("title")
    if not title:
        first = HEADING.search(body)
        title = first.group(2) if first else rel_path.stem.replace("-", " ").replace("_", " ").capitalize()
    out["title"] = str(title).strip()
    themes = meta.get("themes") or []
    if isinstance(themes, str):
        themes = [t.strip() for t in re.split(r"[,;]", themes) if t.strip()]
    out["themes"] = [str(t) for t in themes]
    echelle = meta.get("echelle")
    if isinstance(echelle, str):
        echelle = [e.strip() for e in re.split(r"[,;]", echelle) if e.strip()]
    out["echelle"] = [str(e) for e in (echelle or [])]
    for key in ("date", "departement", "territoire", "statut"):
        if key in out and out[key] is not None:
            out[key] = str(out[key])
    out["source"] = rel_path.as_posix()
    out["illustrative"] = is_illustrative(meta)
    speakers = speakers_of(body) if out["doc_type"] == "entretien" else []
    declared = meta.get("intervenants")
    if isinstance(declared, list) and declared:
        speakers = [str(s) for s in declared]
    if speakers:
        out["speakers"] = speakers
    out.pop("titre", None)
    out.pop("type", None)
    return out


def turn_label(match: re.Match[str] | None) -> str:
    """The speaker label of a ``TURN`` match (« **Nom** : », « Nom : »), "" when there is none."""
    return (match.group("b") or match.group("p") or "").strip() if match else ""


def nest_heading(path: list[tuple[int, str]], level: int, title: str) -> list[tuple[int, str]]:
    """The heading path after a heading of ``level``: deeper or equal levels are closed."""
    return [p for p in path if p[0] < level] + [(level, title)]


def speakers_of(text: str) -> list[str]:
    """Speaker labels found at the start of lines, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in TURN.finditer(text):
        label = turn_label(match)
        if label and label.lower() not in {"note", "remarque", "attention", "exemple", "source"}:
            seen.setdefault(label, None)
    return list(seen)


def load_markdown(raw: bytes, rel_path: Path, sidecar: dict[str, Any] | None = None) -> LoadResult:
    rel = rel_path.as_posix()
    text, warning = decode_text(raw, rel)
    warnings = [warning] if warning else []
    meta, body, fm_warning = split_front_matter(text, rel)
    meta.update(sidecar or {})
    if fm_warning:
        warnings.append(fm_warning)
    body = body.replace("\r\n", "\n").strip()
    if not body:
        raise LoadError(rel, "le fichier ne contient que des métadonnées, aucun texte à indexer.")
    return LoadResult([Document(body, normalise_metadata(meta, rel_path, body))], warnings)


def _parse_keywords(raw: str) -> dict[str, Any]:
    """PDF Keywords written as ``type=rapport; echelle=region; themes=a, b``."""
    meta: dict[str, Any] = {}
    for part in raw.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            key = key.strip().lower()
            value = value.strip()
            meta[key] = [v.strip() for v in value.split(",") if v.strip()] if key == "themes" else value
    return meta


NUMBERED_HEADING = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+([A-ZÀ-ÖØ-Ý][^.!?:,;]{2,70})$")
PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d{1,4}(?:\s*(?:/|sur)\s*\d{1,4})?$", re.I)


def _repeated_lines(pages: list[str]) -> set[str]:
    """Running headers and footers: lines found at the top or bottom of at least half the pages."""
    if len(pages) < 3:
        return set()
    counts: dict[str, int] = {}
    for text in pages:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for line in set(lines[:2] + lines[-2:]):
            counts[line] = counts.get(line, 0) + 1
    return {line for line, n in counts.items() if n >= max(2, len(pages) // 2)}


def _pdf_page_to_markdown(text: str, drop: set[str] | None = None) -> str:
    """Light structure for PDF text: running headers, footers and page numbers removed, numbered
    short lines become headings, bullets become list items, lines broken by the layout re-joined."""
    out: list[str] = []
    text = text.replace("\u00a0", " ").replace("\u202f", " ")
    lines = text.replace("\r", "").split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped in (drop or ()) or PAGE_NUMBER.match(stripped):
            continue
        if stripped.startswith(("•", "◦", "▪")):
            out.extend(["", "- " + stripped[1:].strip()])
            continue
        following = next((ln.strip() for ln in lines[i + 1 :] if ln.strip()), "")
        match = NUMBERED_HEADING.match(stripped)
        if match and following[:1].islower():  # a list item continued on the next line, not a heading
            match = None
        if match:
            depth = min(match.group(1).count(".") + 2, 6)
            out.append("")
            out.append("#" * depth + " " + stripped)
            out.append("")
        else:
            out.append(stripped)
    joined = "\n".join(out)
    # re-join lines broken by the PDF layout: a line not ending a sentence continues on the next
    joined = re.sub(r"(?<=[^\n.!?:;»])\n(?=[a-zà-ÿ(«0-9])", " ", joined)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def _ocr_empty_pages(raw: bytes, rel: str, pages: list[str], ocr_lang: str | None,
                     warnings: list[str]) -> set[int]:
    """Recognise (OCR) the pages without a text layer, in place; returns their 1-based numbers."""
    empty = [i for i, p in enumerate(pages, start=1) if not p.strip()]
    if not empty:
        return set()
    if not ocr_lang:
        if len(empty) == len(pages):
            raise LoadError(
                rel, f"aucun texte extractible dans ce PDF ({len(pages)} page(s)) : c'est probablement un "
                "document scanné, et la reconnaissance de caractères (OCR) est désactivée (ASSISTANT_OCR=0). "
                "Activez-la (ASSISTANT_OCR=1) ou déposez une version avec du texte.")
        warnings.append(f"{rel} : pages sans texte (scannées ?) : {', '.join(map(str, empty))} ; "
                        "OCR désactivée (ASSISTANT_OCR=0).")
        return set()
    from assistant.ocr import ocr_pdf_pages, ocr_problem

    problem = ocr_problem(ocr_lang)
    if problem:
        if len(empty) == len(pages):
            raise LoadError(rel, f"aucun texte extractible dans ce PDF ({len(pages)} page(s)) : c'est probablement "
                                 f"un document scanné, mais la reconnaissance de caractères est impossible : {problem}")
        warnings.append(f"{rel} : pages sans texte (scannées ?) non lues : {', '.join(map(str, empty))} ; {problem}")
        return set()
    done: set[int] = set()
    for number, text in ocr_pdf_pages(raw, empty, lang=ocr_lang).items():
        text = text.replace("\u00a0", " ").replace("\u202f", " ")
        if text.strip():
            pages[number - 1] = text
            done.add(number)
    if done:
        warnings.append(f"{rel} : page(s) {', '.join(map(str, sorted(done)))} lue(s) par reconnaissance de "
                        "caractères (OCR) : vérifiez les passages dans l'onglet Documents.")
    still = sorted(set(empty) - done)
    if still:
        warnings.append(f"{rel} : pages sans texte, même après OCR : {', '.join(map(str, still))}.")
    return done


def load_pdf(raw: bytes, rel_path: Path, ocr_lang: str | None = None,
             sidecar: dict[str, Any] | None = None) -> LoadResult:
    """One Document per page; pages without a text layer are recognised by Tesseract when
    ``ocr_lang`` is given (``fra``), and their metadata say ``ocr: True``."""
    rel = rel_path.as_posix()
    if not raw.lstrip()[:5].startswith(b"%PDF-"):
        raise LoadError(
            rel, "ce fichier porte l'extension .pdf mais n'est pas un PDF (contenu d'un autre format). "
            "Réexportez-le en PDF ou donnez-lui sa vraie extension."
        )
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:  # noqa: BLE001 - pypdf raises several types here
                ok = 0
            if not ok:
                raise LoadError(
                    rel, "PDF protégé par un mot de passe : impossible de lire son texte. "
                    "Déposez une version sans protection."
                )
        info = reader.metadata or {}
        pages = [(page.extract_text() or "").replace("\u00a0", " ").replace("\u202f", " ") for page in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(rel, f"PDF illisible ou endommagé ({exc.__class__.__name__}). Réexportez-le.") from None
    warnings: list[str] = []
    ocr_pages = _ocr_empty_pages(raw, rel, pages, ocr_lang, warnings)
    if not any(p.strip() for p in pages):
        raise LoadError(
            rel, f"aucun texte lisible dans ce PDF ({len(pages)} page(s)), même par reconnaissance de "
            "caractères (OCR) : la numérisation est-elle lisible ? Rescannez-le en 300 dpi, ou déposez une version avec du texte."
        )
    meta: dict[str, Any] = _parse_keywords(str(info.get("/Keywords") or ""))
    pdf_title = str(info.get("/Title") or "").strip()
    if pdf_title:
        meta.setdefault("titre", pdf_title)
    if not meta.get("titre"):
        first_line = next((ln.strip() for p in pages for ln in p.splitlines() if ln.strip()), "")
        if first_line:
            meta["titre"] = first_line[:120]
    meta.update(sidecar or {})
    documents = []
    drop = _repeated_lines(pages)
    path: list[tuple[int, str]] = []  # headings in force at the end of the previous page
    for number, page_text in enumerate(pages, start=1):
        body = _pdf_page_to_markdown(page_text, drop)
        if not body:
            continue
        md = normalise_metadata(meta, rel_path, body)
        md["page"] = number
        md["pages"] = len(pages)
        md["heading_path"] = list(path)
        if number in ocr_pages:
            md["ocr"] = True
        documents.append(Document(body, md))
        for heading in HEADING.finditer(body):
            level = len(heading.group(1))
            path = nest_heading(path, level, heading.group(2).strip())
    return LoadResult(documents, warnings)


def _docx_blocks(document: Any) -> list[tuple[str, Any]]:
    """Body items in document order: ("p", paragraph) or ("t", table)."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    items: list[tuple[str, Any]] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            items.append(("p", Paragraph(child, document)))
        elif tag == "tbl":
            items.append(("t", Table(child, document)))
    return items


METADATA_KEYS = {"type", "titre", "territoire", "departement", "echelle", "themes", "date", "statut"}


def _table_rows(table: Any) -> list[list[str]]:
    return [[cell.text.strip() for cell in row.cells] for row in table.rows]


def load_docx(raw: bytes, rel_path: Path, sidecar: dict[str, Any] | None = None) -> LoadResult:
    rel = rel_path.as_posix()
    from docx import Document as DocxDocument

    try:
        document = DocxDocument(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001 - python-docx raises zip, xml and key errors
        raise LoadError(
            rel, f"fichier Word illisible ({exc.__class__.__name__}) : est-ce bien un .docx ? "
            "Les anciens .doc doivent être réenregistrés au format .docx."
        ) from None
    meta: dict[str, Any] = {}
    lines: list[str] = []
    in_meta_section = False
    for kind, item in _docx_blocks(document):
        if kind == "t":
            rows = _table_rows(item)
            keys = {r[0].strip().lower() for r in rows if r}
            if not meta and len(keys & METADATA_KEYS) >= 2:
                for row in rows:
                    if len(row) >= 2 and row[0].strip().lower() in METADATA_KEYS:
                        meta[row[0].strip().lower()] = row[1].strip()
                continue
            lines.append("")
            lines.extend(" | ".join(c for c in row) for row in rows)
            lines.append("")
            continue
        text = item.text.strip()
        style = (item.style.name if item.style is not None else "").lower()
        level_match = re.search(r"(?:heading|titre)\s*(\d)", style)
        if style in {"title", "titre"}:
            level_match = None
            style = "heading 1"
        if level_match or style == "heading 1":
            level = int(level_match.group(1)) if level_match else 1
            in_meta_section = text.lower().startswith("métadonnées") or text.lower().startswith("metadonnees")
            if in_meta_section:
                continue
            lines.extend(["", "#" * level + " " + text, ""])
            continue
        if in_meta_section:
            if ":" in text:
                key, value = text.split(":", 1)
                if key.strip().lower() in METADATA_KEYS:
                    meta[key.strip().lower()] = value.strip()
            continue
        if not text:
            lines.append("")
        elif "list" in style or "liste" in style:
            lines.append(("1. " if "number" in style or "numéro" in style else "- ") + text)
        else:
            lines.extend([text, ""])
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not body:
        raise LoadError(rel, "document Word vide : aucun texte à indexer.")
    if isinstance(meta.get("themes"), str):
        meta["themes"] = [t.strip() for t in re.split(r"[,;]", meta["themes"]) if t.strip()]
    if not meta.get("titre") and document.core_properties.title:
        meta["titre"] = document.core_properties.title
    meta.update(sidecar or {})
    return LoadResult([Document(body, normalise_metadata(meta, rel_path, body))])


def sidecar_path(path: Path) -> Path:
    """Where the metadata of a file without front matter live: ``<name>.meta.yaml`` next to it."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(path: Path, rel: str) -> tuple[dict[str, Any], str | None]:
    """The sidecar metadata of ``path`` (empty when there is none) and a warning when it is unreadable.
    Only the documented keys are kept; they override the file's own metadata."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}, None
    name = f"{rel}{SIDECAR_SUFFIX}"
    try:
        data = yaml.safe_load(side.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (ligne {line + 1})" if line is not None else ""
        return {}, (f"{name} : métadonnées YAML invalides{where}, ignorées ; {rel} est indexé sans elles. "
                    "Corrigez le fichier (format dans corpus/README.md).")
    if not isinstance(data, dict):
        return {}, f"{name} : ce n'est pas une liste « clé: valeur », ignoré (format dans corpus/README.md)."
    unknown = sorted(str(k) for k in data if str(k) not in SIDECAR_KEYS)
    meta = {str(k): v for k, v in data.items() if str(k) in SIDECAR_KEYS and v not in (None, "", [])}
    warning = (f"{name} : clé(s) inconnue(s) ignorée(s) : {', '.join(unknown)} (clés : {', '.join(SIDECAR_KEYS)})."
               if unknown else None)
    return meta, warning


def is_sidecar(path: Path) -> bool:
    return path.name.lower().endswith(SIDECAR_SUFFIX)


def load_file(path: Path, root: Path, max_bytes: int | None = None, ocr_lang: str | None = None) -> LoadResult:
    """Load one corpus file. Raises ``LoadError`` (French message naming the file) on bad input.
    ``ocr_lang`` (``fra``) turns on the recognition of PDF pages without text; the sidecar
    ``<name>.meta.yaml``, when present, gives or overrides the metadata."""
    rel_path = path.relative_to(root)
    rel = rel_path.as_posix()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(rel, f"extension « {suffix or '(aucune)'} » non prise en charge (formats : md, txt, pdf, docx).")
    size = path.stat().st_size
    if size == 0:
        raise LoadError(rel, "fichier vide (0 octet). Remplacez-le par la bonne version ou supprimez-le.")
    if max_bytes is not None and size > max_bytes:
        raise LoadError(
            rel, f"fichier trop volumineux ({size / 1e6:.1f} Mo > {max_bytes / 1e6:.0f} Mo). Découpez-le, "
            "ou relevez la limite avec ASSISTANT_MAX_FILE_MB."
        )
    raw = path.read_bytes()
    sidecar, warning = read_sidecar(path, rel)
    if suffix == ".pdf":
        result = load_pdf(raw, rel_path, ocr_lang=ocr_lang, sidecar=sidecar)
    elif suffix == ".docx":
        result = load_docx(raw, rel_path, sidecar=sidecar)
    else:
        if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise LoadError(rel, "fichier binaire sous une extension de texte : ce n'est pas du texte lisible.")
        result = load_markdown(raw, rel_path, sidecar=sidecar)
    if warning:
        result.warnings.insert(0, warning)
    return result


def is_candidate(path: Path, root: Path) -> bool:
    """Files the ingester looks at: not hidden, not README/STATS documentation files."""
    rel = path.relative_to(root)
    if any(part.startswith((".", "_")) for part in rel.parts) or is_sidecar(path):
        return False
    return path.name.lower() not in IGNORED_NAMES
