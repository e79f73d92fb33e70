"""Build or update the index incrementally: corpus files -> Documents -> Chunks -> vectors + BM25.

Usage::

    report = ingest(Path("corpus"), Path("index"), settings)
    print(report.summary())

Incremental: a file whose size and mtime are unchanged is not read; one whose content hash is
unchanged is not re-embedded. Only added or changed files are embedded; chunks of removed files are
deleted. A change of embedding model or chunking rebuilds everything (announced in the summary).

Crash safety (SIGKILL at any moment): vectors are written to Chroma BEFORE the SQLite manifest
commits the file, and old vectors are deleted AFTER. The manifest (one transaction per group of
files) is the source of truth; retrieval ignores vectors it does not list, and a run that finds
the ``in_progress`` mark of a killed run first deletes those orphans, then redoes what was left.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.chunking import chunk_document
from assistant.errors import LoadError
from assistant.glossary import load_glossary
from assistant.loaders import SUPPORTED, is_candidate, load_file, sidecar_path
from assistant.settings import Settings
from assistant.store.lexical import ANALYSER_VERSION, analyse
from assistant.store.lock import IngestBusy
from assistant.store.manifest import SCHEMA_VERSION, FileRecord, Manifest
from assistant.store.state import open_state
from assistant.types import Chunk

GROUP_CHUNKS = 128
# Bump when loaders or chunking change what a file turns into: the next ingest then rebuilds all.
PIPELINE_VERSION = "6"  # 5: PDF sections across pages, transcripts named by their question; 6: no cut after « L. »


@dataclass
class IngestReport:
    """What one ``ingest`` run did. ``usable`` is True when the index holds at least one chunk."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    rebuilt: str | None = None
    recovered: int = 0
    calibrated: bool = False  # refusal thresholds (re)computed by this run (assistant.refusal)

    @property
    def usable(self) -> bool:
        return self.chunks_total > 0

    def summary(self) -> str:
        """French, human-readable summary (what the CLI prints)."""
        lines = []
        if self.rebuilt:
            lines.append(f"Reconstruction complète de l'index : {self.rebuilt}")
        if self.recovered:
            lines.append(f"Reprise après une interruption : {self.recovered} vecteur(s) réparé(s) ou supprimé(s).")
        lines.append(
            f"Fichiers : {len(self.added)} ajouté(s), {len(self.changed)} modifié(s), "
            f"{len(self.removed)} supprimé(s), {len(self.unchanged)} inchangé(s), "
            f"{len(self.failed)} en échec, {len(self.skipped)} ignoré(s)."
        )
        lines.append(
            f"Passages : {self.chunks_total} dans l'index, {self.chunks_embedded} calculé(s) ; "
            f"durée : {self.seconds:.1f} s."
        )
        if self.calibrated:
            lines.append("Seuils de refus étalonnés sur ce corpus (voir : assistant calibration).")
        if self.failed:
            lines.append("Fichiers en échec (les autres sont indexés) :")
            lines.extend(f"  - {reason}" if reason.startswith(path) else f"  - {path} : {reason}"
                         for path, reason in self.failed)
        if self.skipped:
            lines.append("Fichiers ignorés :")
            lines.extend(f"  - {path} : {reason}" for path, reason in self.skipped)
        if self.warnings:
            lines.append("Avertissements :")
            lines.extend(f"  - {w}" for w in self.warnings)
        if not self.usable:
            lines.append("Aucun passage indexé : l'index n'est pas utilisable. Ajoutez des fichiers au corpus.")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added, "changed": self.changed, "removed": self.removed,
            "unchanged": len(self.unchanged), "failed": [{"source": p, "reason": r} for p, r in self.failed],
            "skipped": [{"source": p, "reason": r} for p, r in self.skipped], "warnings": self.warnings,
            "chunks": self.chunks_total, "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3), "rebuilt": self.rebuilt, "recovered": self.recovered,
            "calibrated": self.calibrated,
        }


def fingerprint(settings: Settings) -> dict[str, str]:
    """What built the index. Any difference with the stored one triggers a full rebuild."""
    return {
        "schema": SCHEMA_VERSION,
        "pipeline": PIPELINE_VERSION,
        "analyser": ANALYSER_VERSION,
        "embedding_model": settings.embedding_model,
        "embedding_runtime": settings.embedding_runtime if settings.embedding_model != "fake" else "-",
        "chunk_tokens": str(settings.chunk_tokens),
        "chunk_overlap_tokens": str(settings.chunk_overlap_tokens),
        "vector_store": settings.chroma_url or "embedded",
        "collection": settings.chroma_collection,
    }


def _describe_change(old: dict[str, str], new: dict[str, str]) -> str:
    labels = {"embedding_model": "modèle d'embedding", "embedding_runtime": "exécution du modèle", "chunk_tokens": "taille des passages",
              "chunk_overlap_tokens": "chevauchement", "vector_store": "stockage des vecteurs",
              "schema": "format de l'index", "pipeline": "lecture et découpage des fichiers", "analyser": "analyse lexicale", "collection": "collection"}
    parts = [f"{labels.get(k, k)} {old.get(k, '?')} → {new[k]}" for k in new if old.get(k) != new[k]]
    return "changement de " + ", ".join(parts) + "."


def sha256_bytes(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_state(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a corpus file and its sidecar metadata together: editing, adding or
    removing ``<name>.meta.yaml`` changes them, so the file is read again."""
    st = path.stat()
    side = sidecar_path(path)
    if not side.is_file():
        return st.st_size, st.st_mtime_ns
    sst = side.stat()
    return st.st_size + sst.st_size + 1, max(st.st_mtime_ns, sst.st_mtime_ns)


def file_digest(path: Path) -> str:
    """SHA-256 of the file; with a sidecar, the hash of both hashes (the file is re-read when either changes)."""
    digest = sha256_bytes(path)
    side = sidecar_path(path)
    if side.is_file():
        digest = hashlib.sha256(f"{digest}:{sha256_bytes(side)}".encode()).hexdigest()
    return digest


def loader_state(settings: Settings) -> str:
    """What decides how a file that failed may load now (OCR on, with which languages, Tesseract
    present): when it changes, failed files are tried again."""
    lang = ocr_lang(settings)
    if lang:
        from assistant.ocr import ocr_problem

        lang += "" if ocr_problem(lang) is None else ":absent"
    return json.dumps({"ocr": lang or ""})


def ocr_lang(settings: Settings) -> str | None:
    return settings.ocr_lang if settings.ocr else None


def scan(corpus_dir: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Candidate files (supported extensions) and skipped ones with the reason."""
    files, skipped = [], []
    for path in sorted(corpus_dir.rglob("*")):
        if not path.is_file() or not is_candidate(path, corpus_dir):
            continue
        if path.suffix.lower() in SUPPORTED:
            files.append(path)
        else:
            rel = path.relative_to(corpus_dir).as_posix()
            skipped.append((rel, f"extension « {path.suffix or '(aucune)'} » non prise en charge "
                                 "(formats : md, txt, pdf, docx)"))
    return files, skipped


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="fichier", desc="Indexation", disable=not enabled or total == 0,
                file=sys.stderr, dynamic_ncols=True)


def ingest(
    corpus_dir: Path,
    index_dir: Path,
    settings: Settings,
    progress: bool = True,
    embedder: Any = None,
    store: Any = None,
    wait: bool = True,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> IngestReport:
    """Bring ``index_dir`` up to date with ``corpus_dir``. See the module docstring.

    The state (manifest, lock) is the configured one (``assistant.store.state.open_state``: SQLite in
    ``index_dir``, or the shared PostgreSQL). The generation is published at the end, so replicas
    switch to it; a run killed midway publishes nothing and they keep serving the previous one.

    One ingest at a time per index (the state's ingest lock, across replicas with PostgreSQL): when another one runs, ``wait=False`` raises
    ``IngestBusy`` (French message naming its pid); otherwise ``on_wait`` gets that message and
    this run waits (up to ``timeout`` seconds), then reads the manifest the other one left.
    ``on_progress(done, total, source)`` is called after each file read."""
    start = time.perf_counter()
    report = IngestReport()
    if not corpus_dir.is_dir():
        from assistant.errors import AssistantError

        raise AssistantError(f"Dossier du corpus introuvable : {corpus_dir}. Vérifiez --corpus ou ASSISTANT_CORPUS_DIR.")
    index_dir.mkdir(parents=True, exist_ok=True)
    state = open_state(settings, index_dir)
    lock = state.ingest_lock()
    try:
        lock.acquire(wait=False)
    except IngestBusy as busy:
        if not wait:
            raise
        if on_wait is not None:
            on_wait(f"{busy.running} : attente de sa fin…")
        lock.acquire(wait=True, timeout=timeout)
    try:
        manifest = state.manifest()
        try:
            _run(corpus_dir, index_dir, settings, manifest, report, progress, embedder, store, on_progress)
            report.chunks_total = manifest.count_chunks()
            if report.usable:  # opening the index also builds (and, embedded, caches) the BM25
                report.calibrated = _calibrate(settings, index_dir, store, embedder)
            generation = manifest.publish()
        finally:
            manifest.close()
        state.notify_published(generation)
    finally:
        lock.release()
    report.seconds = time.perf_counter() - start
    return report


def _run(corpus_dir: Path, index_dir: Path, settings: Settings, manifest: Manifest, report: IngestReport,
         progress: bool, embedder: Any, store: Any,
         on_progress: Callable[[int, int, str], None] | None = None) -> None:
    current = fingerprint(settings)
    stored_raw = manifest.get("fingerprint")
    stored = json.loads(stored_raw) if stored_raw else None
    if stored is not None and stored != current:
        report.rebuilt = _describe_change(stored, current)
        manifest.start_rebuild(json.dumps(current))
    elif stored is None:
        manifest.set("fingerprint", json.dumps(current))

    records = manifest.files()
    paths, report.skipped = scan(corpus_dir)
    max_bytes = int(settings.max_file_mb * 1024 * 1024)
    loaders_now = loader_state(settings)
    retry_failed = manifest.get("loader_state") != loaders_now
    todo: list[tuple[Path, str, int, int, bool]] = []  # path, hash, size, mtime, is_new
    seen: set[str] = set()
    for path in paths:
        rel = path.relative_to(corpus_dir).as_posix()
        seen.add(rel)
        size, mtime_ns = file_state(path)
        record = records.get(rel)
        retry = retry_failed and record is not None and record.status == "failed"
        if record and not retry and record.size == size and record.mtime_ns == mtime_ns:
            _keep(report, record)
            continue
        digest = file_digest(path)
        if record and not retry and record.hash == digest:
            manifest.touch(rel, size, mtime_ns)
            _keep(report, record)
            continue
        todo.append((path, digest, size, mtime_ns, record is None))
    if retry_failed and not todo:
        manifest.set("loader_state", loaders_now)
    removed = sorted(set(records) - seen)
    crashed = manifest.get("in_progress") == "1"
    reset_pending = manifest.get("store_reset_pending") == "1"
    if not (todo or removed or crashed or reset_pending):
        return

    manifest.set("in_progress", "1")
    if store is None:
        from assistant.store.vector import open_vector_store

        store = open_vector_store(settings, index_dir)
    if reset_pending:
        store.reset()
        manifest.set("store_reset_pending", "0")
    elif crashed:
        report.recovered = recover_store(store, manifest)

    if todo:
        if embedder is None:
            from assistant.embedders import get_embedder

            embedder = get_embedder(settings)
        _process(todo, corpus_dir, settings, manifest, store, embedder, report, max_bytes, progress, on_progress)

    if removed:
        old_ids = sorted(i for rel in removed for i in manifest.chunk_ids(rel))
        manifest.remove_files(removed)
        store.delete(old_ids)
        report.removed = removed
    manifest.set("glossary", json.dumps(load_glossary(corpus_dir), ensure_ascii=False))
    manifest.set("loader_state", loaders_now)
    manifest.set("in_progress", "0")


def _calibrate(settings: Settings, index_dir: Path, store: Any, embedder: Any) -> bool:
    """Recompute the refusal thresholds when the corpus changed enough (assistant.refusal)."""
    from assistant import refusal
    from assistant.retrieve import open_index

    index = open_index(settings, index_dir)
    index._store, index._embedder = store, embedder  # the ones given to ingest (None: from the settings)
    try:
        if not refusal.is_stale(refusal.stored(index), index):
            return False
        refusal.ensure_calibration(index, force=True)
        return True
    finally:
        index.manifest.close()


def recover_store(store: Any, manifest: Manifest) -> int:
    """After a killed run: drop orphan vectors; if Chroma cannot read its segment any more (a known
    Chroma failure after an unclean stop), rebuild the collection from the manifest's vectors."""
    try:
        orphans = sorted(store.ids() - manifest.chunk_ids())
        store.delete(orphans)
        ids, metas, vectors = manifest.vectors()
        if len(ids):
            store.query(vectors[0], 1)  # raises when the HNSW segment is unreadable
        return len(orphans)
    except Exception:  # noqa: BLE001 - chromadb raises InternalError subclasses here
        store.reset()
        ids, metas, vectors = manifest.vectors()
        if ids:
            store.add(ids, vectors, metas)
        return len(ids)


def _keep(report: IngestReport, record: FileRecord) -> None:
    report.unchanged.append(record.path)
    if record.status == "failed":
        report.failed.append((record.path, record.error or "échec"))


def _process(todo: list[tuple[Path, str, int, int, bool]], corpus_dir: Path, settings: Settings,
             manifest: Manifest, store: Any, embedder: Any, report: IngestReport, max_bytes: int,
             progress: bool, on_progress: Callable[[int, int, str], None] | None = None) -> None:
    group: list[tuple[FileRecord, list[Chunk], list[list[str]], bool]] = []
    pending = 0
    bar = _progress(len(todo), progress)

    def flush() -> None:
        nonlocal pending
        chunks = [c for _, cs, _, _ in group for c in cs]
        blobs: list[bytes] = []
        if chunks:
            vectors = embedder.embed_batch([c.embed_text for c in chunks], kind="passage")
            store.add([c.id for c in chunks], vectors, [c.metadata for c in chunks])
            report.chunks_embedded += len(chunks)
            blobs = [v.astype("float32").tobytes() for v in vectors]
        stale = {rec.path: manifest.chunk_ids(rec.path) for rec, _, _, _ in group}
        rows, offset = [], 0
        for rec, cs, ts, _ in group:
            rows.append((rec, cs, ts, blobs[offset : offset + len(cs)]))
            offset += len(cs)
        manifest.commit_files(rows)
        new_ids = {c.id for c in chunks}
        store.delete(sorted(i for ids in stale.values() for i in ids if i not in new_ids))
        for rec, _, _, is_new in group:
            if rec.status == "ok":
                (report.added if is_new else report.changed).append(rec.path)
        group.clear()
        pending = 0

    for done, (path, digest, size, mtime_ns, is_new) in enumerate(todo, start=1):
        rel = path.relative_to(corpus_dir).as_posix()
        record = FileRecord(rel, digest, size, mtime_ns, "ok", None, 0)
        chunks: list[Chunk] = []
        try:
            result = load_file(path, corpus_dir, max_bytes=max_bytes, ocr_lang=ocr_lang(settings))
            report.warnings.extend(result.warnings)
            for doc in result.documents:
                chunks.extend(chunk_document(doc, settings.chunk_tokens, settings.chunk_overlap_tokens,
                                             fits=embedder.fits))
            if not chunks:
                raise LoadError(rel, "aucun texte à indexer après découpage.")
        except LoadError as exc:
            record.status, record.error, chunks = "failed", str(exc), []
            report.failed.append((rel, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one broken file must not stop the others
            message = f"{rel} : erreur inattendue à la lecture ({exc.__class__.__name__} : {exc})."
            record.status, record.error, chunks = "failed", message, []
            report.failed.append((rel, message))
        record.n_chunks = len(chunks)
        group.append((record, chunks, [analyse(c.embed_text) for c in chunks], is_new))
        pending += len(chunks)
        if pending >= GROUP_CHUNKS:
            flush()
        bar.update(1)
        if on_progress is not None:
            on_progress(done, len(todo), rel)
    if group:
        flush()
    bar.close()
