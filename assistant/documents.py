"""The corpus as staff manage it: list, upload, delete, edit metadata (sidecar), preview passages,
and the incremental ingest that follows every change, in the background with its progress.

Nothing here serves answers: ``Service.reindex`` swaps the served index once an ingest is done, so
questions are answered meanwhile from the previous consistent state. No web code either: the REST
endpoints and the Gradio tab call these functions.

Usage::

    docs = Documents(settings)
    docs.list()                                    # [{"source", "status", "reason", "title", …}]
    docs.save_upload("bilan.pdf", raw, folder="rapports", replace=False)   # -> "rapports/bilan.pdf"
    docs.set_metadata("rapports/bilan.pdf", {"echelle": ["commune"], "departement": "Creuse"})
    docs.delete("rapports/bilan.pdf")
    job = IngestJob(service.reindex); job.request(); job.state()   # progress of the background ingest
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import AssistantError
from assistant.ingest import file_state
from assistant.loaders import (
    FRONT_MATTER,
    SIDECAR_KEYS,
    SUPPORTED,
    guess_doc_type,
    is_candidate,
    read_sidecar,
    sidecar_path,
)
from assistant.settings import Settings
from assistant.store.lock import IngestBusy
from assistant.types import DOC_TYPES, ECHELLES

UPLOAD_TYPES = (".md", ".txt", ".pdf", ".docx")
DEFAULT_FOLDER = "depots"
STAGING = ".depots-en-cours"  # hidden: never scanned by the ingest
BINARY_MAGIC = (b"%PDF-", b"PK\x03\x04", b"\x7fELF", b"MZ", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\xd0\xcf\x11\xe0",
                b"\x1f\x8b", b"Rar!", b"7z\xbc\xaf")


class DocumentError(AssistantError):
    """A staff request on the corpus that is refused; ``status`` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class DocumentInfo:
    """One corpus file as the « Documents » tab lists it."""

    source: str
    format: str
    doc_type: str
    title: str
    echelle: list[str] = field(default_factory=list)
    departement: str | None = None
    themes: list[str] = field(default_factory=list)
    illustrative: bool = False
    pages: int | None = None
    passages: int = 0
    ocr_pages: list[int] = field(default_factory=list)
    status: str = "pending"  # indexed | pending | failed
    reason: str | None = None
    size: int = 0
    metadata_source: str = "document"  # document | sidecar | front_matter
    editable: bool = True


def safe_name(name: str) -> str:
    """A file name safe in the corpus: last path part only, accents removed, lower case, letters,
    digits, ``-``, ``_`` and one ``.`` before the extension. Raises ``DocumentError`` when nothing
    usable is left or the extension is not accepted."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode().lower().strip()
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = "." + ext
    if ext not in UPLOAD_TYPES:
        raise DocumentError(f"« {name} » : format non accepté ({ext if ext != '.' else 'sans extension'}). "
                            "Déposez un fichier .md, .txt, .pdf ou .docx.")
    stem = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_.")
    stem = re.sub(r"-{2,}", "-", stem)[:100]
    if not stem:
        raise DocumentError(f"« {name} » : nom de fichier vide une fois nettoyé. Renommez le fichier (lettres, chiffres).")
    return stem + ext


def check_content(name: str, raw: bytes, max_bytes: int) -> None:
    """The content matches the extension (magic bytes, then a structural check); French refusal otherwise."""
    size = len(raw)
    if size == 0:
        raise DocumentError(f"{name} : fichier vide (0 octet). Rien n'a été enregistré.")
    if size > max_bytes:
        raise DocumentError(f"{name} : fichier trop volumineux ({size / 1e6:.1f} Mo > {max_bytes / 1e6:.0f} Mo). "
                            "Découpez-le, ou relevez la limite avec ASSISTANT_MAX_FILE_MB.", status=413)
    ext = Path(name).suffix.lower()
    if ext == ".pdf":
        if not raw[:1024].lstrip().startswith(b"%PDF-"):
            raise DocumentError(f"{name} : ce fichier n'est pas un PDF (son contenu est d'un autre format). "
                                "Réexportez-le en PDF ou donnez-lui sa vraie extension.", status=415)
        from pypdf import PdfReader

        try:
            reader = PdfReader(io.BytesIO(raw))
            if not reader.is_encrypted:
                len(reader.pages)
        except Exception as exc:  # noqa: BLE001 - pypdf raises many types on broken files
            raise DocumentError(f"{name} : PDF illisible ou endommagé ({exc.__class__.__name__}). "
                                "Réexportez-le, puis déposez-le à nouveau. Rien n'a été enregistré.") from None
    elif ext == ".docx":
        if not raw.startswith(b"PK\x03\x04"):
            hint = " (c'est un ancien .doc : réenregistrez-le au format .docx)" if raw.startswith(b"\xd0\xcf\x11\xe0") else ""
            raise DocumentError(f"{name} : ce fichier n'est pas un document Word .docx{hint}.", status=415)
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                if "word/document.xml" not in archive.namelist():
                    raise DocumentError(f"{name} : archive ZIP qui n'est pas un document Word (.docx).", status=415)
            from docx import Document as DocxDocument

            DocxDocument(io.BytesIO(raw))
        except DocumentError:
            raise
        except Exception as exc:  # noqa: BLE001 - zip and xml errors
            raise DocumentError(f"{name} : document Word illisible ou endommagé ({exc.__class__.__name__}). "
                                "Réenregistrez-le depuis Word ou LibreOffice. Rien n'a été enregistré.") from None
    else:
        head = raw[:8192]
        utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
        if raw.startswith(BINARY_MAGIC) or (b"\x00" in head and not utf16):
            raise DocumentError(f"{name} : ce n'est pas un fichier texte (contenu binaire sous l'extension {ext}).",
                                status=415)


def _form_values(meta: dict[str, Any]) -> dict[str, Any]:
    """Validate metadata given by staff into sidecar values (French errors naming the field)."""
    out: dict[str, Any] = {}
    unknown = sorted(set(meta) - set(SIDECAR_KEYS))
    if unknown:
        raise DocumentError(f"Champ(s) inconnu(s) : {', '.join(unknown)}. Champs possibles : {', '.join(SIDECAR_KEYS)}.")
    for key in SIDECAR_KEYS:
        value = meta.get(key)
        if value in (None, "", []):
            continue
        if key in ("echelle", "themes"):
            items = value if isinstance(value, list) else re.split(r"[,;]", str(value))
            items = [str(v).strip() for v in items if str(v).strip()]
            if key == "echelle":
                bad = [v for v in items if v not in ECHELLES]
                if bad:
                    raise DocumentError(f"Échelle inconnue : {', '.join(bad)}. Valeurs possibles : {', '.join(ECHELLES)}.")
            if any(len(v) > 80 for v in items) or len(items) > 20:
                raise DocumentError(f"Champ « {key} » trop long : 20 valeurs de 80 caractères au plus.")
            if items:
                out[key] = items
            continue
        if not isinstance(value, str | int | float):
            raise DocumentError(f"Champ « {key} » : un texte est attendu.")
        text = str(value).strip()
        if len(text) > 300:
            raise DocumentError(f"Champ « {key} » trop long (300 caractères au plus).")
        if key == "type" and text not in DOC_TYPES:
            raise DocumentError(f"Type inconnu « {text} ». Valeurs possibles : {', '.join(DOC_TYPES)}.")
        out[key] = text
    return out


class Documents:
    """The corpus folder and the manifest of the index, seen by staff."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.corpus_dir.resolve()
        self._pages: dict[tuple[str, int], int | None] = {}

    # --- paths ------------------------------------------------------------------------------------
    def path_of(self, source: str) -> Path:
        """The corpus file named by ``source`` (relative path); ``DocumentError`` 404 when it is not a
        document of the corpus (outside the folder, hidden, a README or sidecar, missing)."""
        rel = Path(str(source or ""))
        target = (self.root / rel).resolve()
        if (rel.is_absolute() or ".." in rel.parts or not target.is_relative_to(self.root) or not target.is_file()
                or not is_candidate(target, self.root) or target.suffix.lower() not in SUPPORTED):
            raise DocumentError(f"Document introuvable dans le corpus : « {source} ».", status=404)
        return target

    def folder_of(self, folder: str | None) -> Path:
        given = (folder or DEFAULT_FOLDER).strip()
        parts = [p for p in re.split(r"[\\/]", given) if p]
        if given.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", given) or ".." in parts:
            raise DocumentError(f"Dossier invalide « {folder} » : il sort du corpus ; choisissez un dossier du corpus.")
        clean = []
        for part in parts:
            slug = re.sub(r"[^a-z0-9_-]+", "-", unicodedata.normalize("NFKD", part).encode("ascii", "ignore")
                          .decode().lower()).strip("-_.")
            if not slug or part in (".", ".."):
                raise DocumentError(f"Dossier invalide « {folder} » : choisissez un dossier du corpus.")
            clean.append(slug)
        target = self.root.joinpath(*clean) if clean else self.root
        if not target.resolve().is_relative_to(self.root):
            raise DocumentError(f"Dossier invalide « {folder} » : il sort du corpus.")
        return target

    def folders(self) -> list[str]:
        """The corpus's sub-folders (where an upload can go)."""
        names = {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                 if p.is_dir() and is_candidate(p, self.root)}
        return sorted(names | {DEFAULT_FOLDER})

    # --- listing ----------------------------------------------------------------------------------
    def _manifest_rows(self) -> tuple[dict[str, tuple[Any, ...]], dict[str, list[dict[str, Any]]]]:
        from assistant.store.state import existing_manifest

        with existing_manifest(self.settings) as manifest:
            if manifest is None:
                return {}, {}
            files = {r.path: (r.path, r.hash, r.size, r.mtime_ns, r.status, r.error, r.n_chunks)
                     for r in manifest.files().values()}
            chunks: dict[str, list[dict[str, Any]]] = {}
            for source, meta in manifest.db.execute("SELECT path, metadata FROM chunks ORDER BY path, ordinal"):
                chunks.setdefault(source, []).append(json.loads(meta))
        return files, chunks

    def _pdf_pages(self, path: Path) -> int | None:
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._pages:
            try:
                from pypdf import PdfReader

                self._pages[key] = len(PdfReader(str(path)).pages)
            except Exception:  # noqa: BLE001 - a broken PDF is reported by the ingest
                self._pages[key] = None
        return self._pages[key]

    def list(self) -> list[DocumentInfo]:
        """Every document of the corpus with its indexing status: ``indexed``, ``failed`` (with the
        French reason) or ``pending`` (new or changed since the last ingest)."""
        files, chunks = self._manifest_rows()
        out = []
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or not is_candidate(path, self.root) or path.suffix.lower() not in SUPPORTED:
                continue
            rel = path.relative_to(self.root).as_posix()
            out.append(self._info(path, rel, files.get(rel), chunks.get(rel, [])))
        return out

    def _info(self, path: Path, rel: str, record: tuple[Any, ...] | None, chunks: list[dict[str, Any]]) -> DocumentInfo:
        size, mtime_ns = file_state(path)
        fmt = path.suffix.lower().lstrip(".")
        sidecar, _ = read_sidecar(path, rel)
        front = fmt in ("md", "markdown", "txt") and bool(FRONT_MATTER.match(path.read_text("utf-8", errors="replace")[:20000]))
        meta = chunks[0] if chunks else {}
        info = DocumentInfo(
            source=rel, format=fmt, size=path.stat().st_size,
            doc_type=str(meta.get("doc_type") or sidecar.get("type") or guess_doc_type(Path(rel))),
            title=str(meta.get("title") or sidecar.get("titre") or path.stem.replace("-", " ").capitalize()),
            echelle=list(meta.get("echelle") or sidecar.get("echelle") or []),
            departement=meta.get("departement") or sidecar.get("departement"),
            themes=list(meta.get("themes") or sidecar.get("themes") or []),
            illustrative=bool(meta.get("illustrative")), passages=len(chunks),
            ocr_pages=sorted({int(c["page"]) for c in chunks if c.get("ocr") and c.get("page")}),
            metadata_source="sidecar" if sidecar else "front_matter" if front else "document",
            editable=not front,
        )
        if fmt == "pdf":
            info.pages = self._pdf_pages(path)
        if record is None or (record[2], record[3]) != (size, mtime_ns):
            info.status = "pending"
            info.reason = "en attente d'indexation" if record is None else "modifié, en attente d'indexation"
        elif record[4] == "failed":
            info.status, info.reason = "failed", record[5]
        else:
            info.status = "indexed"
        return info

    def passages(self, source: str, limit: int = 200) -> list[dict[str, Any]]:
        """The passages a document gave, in reading order: page, section, OCR mark, text."""
        self.path_of(source)
        from assistant.store.state import existing_manifest

        with existing_manifest(self.settings) as manifest:
            if manifest is None:
                return []
            rows = manifest.db.execute("SELECT text, metadata FROM chunks WHERE path=? ORDER BY ordinal",
                                       (source,)).fetchall()
        out = []
        for text, meta_json in rows:
            meta = json.loads(meta_json)
            out.append({"page": meta.get("page"), "section": meta.get("section"), "ocr": bool(meta.get("ocr")),
                        "text": text})
        out.sort(key=lambda p: (p["page"] or 0))
        return out[:limit]

    # --- changes ----------------------------------------------------------------------------------
    def save_upload(self, name: str, raw: bytes, folder: str | None = None, replace: bool = False) -> str:
        """Check and store one uploaded file; returns its source. Nothing is written when refused."""
        clean = safe_name(name)
        max_bytes = int(self.settings.max_file_mb * 1024 * 1024)
        check_content(clean, raw, max_bytes)
        directory = self.folder_of(folder)
        target = directory / clean
        rel = target.relative_to(self.root).as_posix()
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise DocumentError(f"{rel} : emplacement réservé, choisissez un autre nom.", status=409)
        if target.exists() and not replace:
            raise DocumentError(f"{rel} existe déjà dans le corpus : cochez « Remplacer les fichiers existants » "
                                "pour le remplacer, ou renommez le fichier.", status=409)
        staging = self.root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}{target.suffix}"
        tmp.write_bytes(raw)
        directory.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)  # atomic: the ingest never reads half a file
        return rel

    def delete(self, source: str) -> str:
        """Remove a document and its sidecar; its passages go at the next ingest."""
        target = self.path_of(source)
        rel = target.relative_to(self.root).as_posix()
        sidecar_path(target).unlink(missing_ok=True)
        target.unlink()
        return rel

    def metadata(self, source: str) -> dict[str, Any]:
        target = self.path_of(source)
        rel = target.relative_to(self.root).as_posix()
        return read_sidecar(target, rel)[0]

    def set_metadata(self, source: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Write the sidecar ``<file>.meta.yaml`` (the given fields replace the previous ones; an
        empty field is removed). A Markdown or text file with a front matter block is refused:
        its metadata live in that block."""
        target = self.path_of(source)
        rel = target.relative_to(self.root).as_posix()
        if not isinstance(meta, dict):
            raise DocumentError("Métadonnées invalides : envoyez un objet {\"echelle\": [\"commune\"], …}.")
        if target.suffix.lower() in (".md", ".markdown", ".txt") and FRONT_MATTER.match(
                target.read_text("utf-8", errors="replace")[:20000]):
            raise DocumentError(f"{rel} a son bloc de métadonnées en tête (entre « --- ») : modifiez-le dans "
                                "le fichier lui-même.", status=409)
        values = _form_values(meta)
        side = sidecar_path(target)
        if not values:
            side.unlink(missing_ok=True)
            return {}
        tmp = side.with_name(side.name + ".tmp")
        tmp.write_text("# Métadonnées de " + target.name + " (format : corpus/README.md)\n"
                       + yaml.safe_dump(values, allow_unicode=True, sort_keys=False), encoding="utf-8")
        os.replace(tmp, side)
        return values


class IngestJob:
    """The incremental ingest that follows staff changes, one at a time in a background thread.
    A request while one runs is queued (one more run after it), so no change is forgotten."""

    def __init__(self, reindex: Callable[..., Any]) -> None:
        self.reindex = reindex
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._state: dict[str, Any] = {"running": False, "done": 0, "total": 0, "current": None,
                                       "message": "Aucune indexation lancée depuis le démarrage.", "report": None,
                                       "error": None, "finished": None}

    def request(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._state.update(running=True, done=0, total=0, current=None, error=None,
                               message="Indexation en attente de démarrage…")
            self._thread = threading.Thread(target=self._run, name="ingest-documents", daemon=True)
            self._thread.start()

    def _progress(self, done: int, total: int, source: str) -> None:
        with self._lock:
            self._state.update(done=done, total=total, current=source,
                               message=f"Indexation en cours : {done} / {total} fichier(s) ({source}).")

    def _run(self) -> None:
        while True:
            try:
                with self._lock:
                    self._state["message"] = "Indexation en cours…"
                report = self.reindex(wait=True, on_progress=self._progress)
                files = next(line for line in report.summary().splitlines() if line.startswith("Fichiers :"))
                with self._lock:
                    self._state.update(report=report.as_dict(), message=f"Indexation terminée. {files}",
                                       finished=time.time())
            except IngestBusy as exc:
                with self._lock:
                    self._state.update(error=str(exc), message=str(exc))
            except Exception as exc:  # noqa: BLE001 - shown in the tab; the served index is unchanged
                with self._lock:
                    self._state.update(error=f"L'indexation a échoué ({exc.__class__.__name__} : {exc}). "
                                             "L'assistant continue de répondre avec l'index précédent.",
                                       message="Échec de l'indexation.")
            with self._lock:
                if not self._again:
                    self._state["running"] = False
                    return
                self._again = False

    def running(self) -> bool:
        with self._lock:
            return bool(self._state["running"])

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until no ingest runs (tests, scripts); True when it finished in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return False


def as_dicts(infos: list[DocumentInfo]) -> list[dict[str, Any]]:
    return [asdict(i) for i in infos]
