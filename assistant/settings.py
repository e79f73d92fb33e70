"""One validated settings object, read from ``ASSISTANT_*`` environment variables and ``.env``.

Usage::

    from assistant.settings import get_settings
    settings = get_settings()            # raises SettingsError with a French message on a bad value
    settings.index_dir, settings.embedding_model

Every value has a default that works offline on the sample corpus.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from assistant.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pqna-assistant" / "models"


class Settings(BaseSettings):
    """All settings of the assistant. Environment variable = ``ASSISTANT_`` + field name in capitals."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_file=".env", extra="ignore")

    corpus_dir: Path = Field(PROJECT_ROOT / "corpus", description="dossier du corpus")
    index_dir: Path = Field(PROJECT_ROOT / "index", description="dossier de l'index")
    models_dir: Path = Field(default_factory=_default_models_dir, description="modèles convertis")

    # Embeddings: a built-in name (see assistant.embedders.BUILTIN_MODELS), a local path, or "fake"
    embedding_model: str = "multilingual-e5-small-q4"
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    # how the model runs: ONNX Runtime fp32 (default), ONNX int8 (faster, approximate) or sentence-transformers on torch
    embedding_runtime: Literal["onnx", "onnx-int8", "torch"] = "onnx"
    torch_threads: int = Field(0, ge=0, le=256, description="0 = choix automatique")

    # Chunking, in tiktoken (cl100k_base) tokens
    chunk_tokens: int = Field(220, ge=32, le=2000)
    chunk_overlap_tokens: int = Field(30, ge=0, le=500)
    chunk_min_tokens: int = Field(40, ge=0, le=1000)

    # Ingestion limits
    max_file_mb: float = Field(25.0, gt=0, le=2000)
    # OCR of PDF pages without a text layer (Tesseract); ASSISTANT_OCR=0 turns it off
    ocr: bool = True
    ocr_lang: str = Field("fra", pattern=r"^[a-z_]{3,8}(\+[a-z_]{3,8})*$", description="langues Tesseract")

    # Vector store: empty URL = embedded Chroma in index_dir; else a Chroma server
    chroma_url: str = ""
    chroma_collection: str = Field("pqna_corpus", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]$")
    # State (manifest, lexical terms, answers, feedback, eval jobs, ingest lock): empty = SQLite files in
    # index_dir; postgresql://… = shared by every replica (assistant/store/state.py)
    database_url: str = Field("", description="vide = SQLite dans index_dir ; postgresql://… = partagé")
    db_retry_s: float = Field(10.0, ge=0, le=600, description="reconnexion à PostgreSQL, au plus (secondes)")
    refresh_s: float = Field(2.0, ge=0, le=3600, description="suivi des nouvelles indexations ; 0 = jamais")

    # Language model (used by later stages; "none" = built-in composer)
    llm: Literal["none", "openai", "ollama", "fake"] = "none"
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = ""
    llm_timeout_s: float = Field(30.0, gt=0, le=600)

    # Web app (assistant serve / python app.py)
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    # origins allowed to embed the widget (CSP frame-ancestors) and to call /api/ask (CORS);
    # comma-separated in the environment: "https://www.pqn-a.fr,https://pqn-a.fr"
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    staff_password: str = Field("", description="vide = espace équipe désactivé")
    rate_limit_per_minute: int = Field(20, ge=0, le=100000, description="par client ; 0 = sans limite")
    max_question_chars: int = Field(500, ge=10, le=20000)
    feedback_db: Path | None = Field(None, description="vide = index_dir/feedback.sqlite")
    # bounded requests and proxies (SECURITY.md)
    max_body_kb: int = Field(64, ge=1, le=100000, description="corps JSON de /api/* et /staff/*")
    max_upload_mb: float = Field(25.0, gt=0, le=2000, description="dépôt de fichier par l'interface")
    max_history_turns: int = Field(20, ge=0, le=1000, description="questions d'historique acceptées")
    body_timeout_s: float = Field(15.0, gt=0, le=600, description="délai pour recevoir le corps d'une requête")
    keep_alive_s: int = Field(5, ge=1, le=600, description="connexion inactive fermée après")
    max_connections: int = Field(100, ge=1, le=100000, description="connexions simultanées (au-delà : 503)")
    forwarded_allow_ips: str = Field("", description="proxys de confiance pour X-Forwarded-For ; vide = aucun")
    web_temp_dir: Path | None = Field(None, description="fichiers temporaires de l'interface ; vide = dossier privé")
    retention_days: int = Field(365, ge=0, le=36500,
                                description="questions servies (et leurs avis) effacées après N jours ; 0 = gardées")

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", ",").split(",") if v]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            origin = origin.strip().rstrip("/")
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?", origin):
                raise ValueError(f"origine invalide « {origin} » : écrivez https://exemple.fr (schéma, hôte, port éventuel)")
            out.append(origin)
        return out

    @property
    def feedback_path(self) -> Path:
        """Where feedback and answered questions are stored (SQLite)."""
        return self.feedback_db or self.index_dir / "feedback.sqlite"

    @field_validator("chroma_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("doit commencer par http:// ou https:// (ou rester vide pour Chroma embarqué)")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("doit commencer par postgresql:// (ou rester vide pour SQLite embarqué)")
        return value

    @model_validator(mode="after")
    def _check_chunks(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                "ASSISTANT_CHUNK_OVERLAP_TOKENS doit être plus petit que ASSISTANT_CHUNK_TOKENS"
            )
        if self.llm == "openai" and not (self.llm_base_url and self.llm_model):
            raise ValueError("ASSISTANT_LLM=openai demande ASSISTANT_LLM_BASE_URL et ASSISTANT_LLM_MODEL")
        if self.llm == "ollama" and not self.llm_model:
            raise ValueError("ASSISTANT_LLM=ollama demande ASSISTANT_LLM_MODEL")
        return self


def load_settings(**overrides: object) -> Settings:
    """Build and validate the settings; a bad value becomes a SettingsError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            name = f"ASSISTANT_{loc.upper()}" if loc else "réglages"
            given = err.get("input")
            shown = f" (valeur reçue : {given!r})" if loc and not isinstance(given, dict) else ""
            lines.append(f"- {name}{shown} : {err['msg']}")
        raise SettingsError("Réglage invalide :\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
