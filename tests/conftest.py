"""Shared fixtures: settings on temporary folders with the fake embedder, and file builders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from assistant.retrieve import Index  # noqa: E402
from assistant.settings import Settings, load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture
def settings_for(tmp_path: Path):
    """Factory: settings on tmp folders, fake embedder unless told otherwise."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "corpus_dir": tmp_path / "corpus", "index_dir": tmp_path / "index",
            "embedding_model": "fake", "chroma_collection": "test_corpus",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


def write_md(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def build_index(root: Path, files: dict[str, str], **overrides: object) -> tuple[Settings, Index]:
    """Write ``files`` (path in the corpus -> text) under ``root/corpus`` and ingest them into
    ``root/index`` with the fake embedder (named so); every file must load. Returns (settings, index)."""
    from assistant.ingest import ingest
    from assistant.retrieve import open_index

    corpus = root / "corpus"
    for rel, text in files.items():
        write_md(corpus / rel, text)
    values: dict[str, object] = {"corpus_dir": corpus, "index_dir": root / "index", "embedding_model": "fake"}
    values.update(overrides)
    settings = load_settings(**values)
    report = ingest(corpus, settings.index_dir, settings, progress=False)
    assert report.usable and not report.failed
    return settings, open_index(settings)


def make_pdf(path: Path, pages: list[str], title: str | None = None, keywords: str | None = None,
             password: str | None = None) -> Path:
    """A real PDF with one text page per item (fpdf2), optionally encrypted (pypdf)."""
    from fpdf import FPDF

    pdf = FPDF()
    if FONT.exists():
        pdf.add_font("DejaVu", "", str(FONT))
        pdf.set_font("DejaVu", size=11)
    else:
        pdf.set_font("Helvetica", size=11)
    if title:
        pdf.set_title(title)
    if keywords:
        pdf.set_keywords(keywords)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
        else:  # a "scanned" page: drawing only, no text layer
            pdf.rect(20, 20, 100, 150, style="F")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    if password:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter()
        for page in PdfReader(str(path)).pages:
            writer.add_page(page)
        writer.encrypt(user_password=password, owner_password=password + "-owner")
        with path.open("wb") as fh:
            writer.write(fh)
    return path


def make_docx(path: Path, meta: dict[str, str] | None, body: list[tuple[str, str]]) -> Path:
    """A real .docx: optional metadata table first, then (style, text) paragraphs; style "table" = rows."""
    from docx import Document

    doc = Document()
    if meta:
        table = doc.add_table(rows=1, cols=2)
        table.rows[0].cells[0].text, table.rows[0].cells[1].text = "champ", "valeur"
        for key, value in meta.items():
            row = table.add_row()
            row.cells[0].text, row.cells[1].text = key, value
    for style, text in body:
        if style == "table":
            rows = [r.split("|") for r in text.split("\n")]
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            for i, row in enumerate(rows):
                for j, cell in enumerate(row):
                    table.rows[i].cells[j].text = cell.strip()
        else:
            doc.add_paragraph(text, style=style)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    return path


@contextmanager
def serve_subprocess(settings: Settings, cwd: Path, port: int, **env: str) -> Iterator[str]:
    """A real ``assistant serve`` process on 127.0.0.1:``port`` over ``settings``' corpus and index
    (fake embedder), started in ``cwd`` with extra ``ASSISTANT_*`` variables; yields its base URL
    once ``/health`` answers, and stops it afterwards."""
    import httpx

    full_env = {**os.environ, "ASSISTANT_CORPUS_DIR": str(settings.corpus_dir),
                "ASSISTANT_INDEX_DIR": str(settings.index_dir), "ASSISTANT_EMBEDDING_MODEL": "fake",
                "ASSISTANT_CHROMA_COLLECTION": settings.chroma_collection,
                "GRADIO_ANALYTICS_ENABLED": "False", "ANONYMIZED_TELEMETRY": "False", **env}
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)], cwd=cwd,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail("le serveur s'est arrêté : " + (proc.stdout.read() if proc.stdout else ""))
            time.sleep(0.1)
        else:
            pytest.fail("le serveur n'a pas répondu à /health en 30 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(what: str) -> None:
    """Skip when a real server is not installed, except in CI (``CI=true``), where it fails: a test
    that needs PostgreSQL or nginx must never pass by being skipped there."""
    message = f"{what} absent : lancez bash scripts/setup.sh --dev (paquets Debian postgresql et nginx)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class PostgresServer:
    """A real PostgreSQL (Debian's binaries) in a temporary folder on 127.0.0.1:``port``, run as the
    ``postgres`` user when the tests run as root (initdb refuses root)."""

    def __init__(self) -> None:
        import glob
        import shutil
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            missing("PostgreSQL (initdb)")
        self.bin = Path(bins[-1]).parent
        # directly in /tmp: the postgres user must reach it (the web app may have pointed tempfile at
        # a private folder of its own)
        self.root = Path(tempfile.mkdtemp(prefix="assistant-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.getuid() == 0:
            if shutil.which("runuser") is None:
                missing("runuser")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run([*self.as_user, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.start()

    def pg_ctl(self, *args: str, check: bool = True) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                        "-l", str(self.root / "log"), *args], check=check,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import uuid

        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        import shutil

        self.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole session (each test takes ``postgres.new_database()``)."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()
