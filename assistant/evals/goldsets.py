"""Read a question set: the gold YAML format (``evals/README.md``), JSON Lines, or a CSV file with the
columns ``question,expected_status,gold_sources,key_facts`` (lists separated by ``;``; optional
``id``, ``kind``, ``history``, ``filters`` as ``clé=valeur;clé=valeur``).

Usage::

    entries = load_set(Path("evals/gold/test.yaml"))
    set_digest(Path("evals/gold/test.yaml"))   # identifies the set in a report (baseline check)
    gaps_to_yaml([{"question": "…", "count": 3}], Path("evals/parts/lacunes.yaml"))
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import AssistantError

STATUSES = ("answered", "no_answer")


class GoldSetError(AssistantError):
    """A question set that cannot be read; the message names the file and the entry."""


def set_digest(path: Path) -> str:
    """SHA-1 of the file's bytes (two reports compare only when made on the same set)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(";") if v.strip()]


def _filters(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v not in (None, "")}
    out: dict[str, str] = {}
    for item in _split(value):
        key, _, val = item.partition("=")
        if key.strip() and val.strip():
            out[key.strip()] = val.strip()
    return out


def normalise(raw: dict[str, Any], n: int, name: str) -> dict[str, Any]:
    """One entry with every field the runner reads; a French error names what is wrong."""
    question = str(raw.get("question") or "").strip()
    if not question:
        raise GoldSetError(f"{name}, entrée {n} : la question est vide.")
    status = str(raw.get("expected_status") or "").strip()
    if status not in STATUSES:
        raise GoldSetError(f"{name}, entrée {n} : expected_status doit valoir answered ou no_answer "
                           f"(reçu « {status} »).")
    return {"id": str(raw.get("id") or f"q-{n:03d}"), "question": question,
            "kind": str(raw.get("kind") or "autre"), "expected_status": status,
            "gold_sources": _split(raw.get("gold_sources")), "key_facts": _split(raw.get("key_facts")),
            "history": _split(raw.get("history")), "filters": _filters(raw.get("filters"))}


def parse_set(text: str, name: str) -> list[dict[str, Any]]:
    """Entries from a file's text; the format follows the file name's extension."""
    suffix = Path(name).suffix.lower()
    try:
        if suffix == ".csv":
            rows: list[Any] = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
        elif suffix in (".jsonl", ".json"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()] if suffix == ".jsonl" \
                else json.loads(text)
        elif suffix in (".yaml", ".yml"):
            rows = yaml.safe_load(text) or []
        else:
            raise GoldSetError(f"{name} : format inconnu (attendu .yaml, .jsonl ou .csv).")
    except (ValueError, yaml.YAMLError, csv.Error) as exc:
        raise GoldSetError(f"{name} : fichier illisible ({exc}).") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise GoldSetError(f"{name} : il faut une liste de questions.")
    if not rows:
        raise GoldSetError(f"{name} : aucune question.")
    return [normalise(r, n, name) for n, r in enumerate(rows, start=1)]


def load_set(path: Path) -> list[dict[str, Any]]:
    """Entries of a set file (see the module docstring)."""
    if not path.is_file():
        raise GoldSetError(f"Jeu de questions introuvable : {path}")
    return parse_set(path.read_text(encoding="utf-8"), str(path))


def gaps_to_yaml(gaps: list[dict[str, Any]], path: Path) -> int:
    """Append « lacunes du corpus » questions to a YAML parts file, ``expected_status`` left for staff
    to fill (``a_completer``); questions already in the file are skipped. Returns how many were added."""
    existing = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else []
    existing = existing or []
    seen = {str(e.get("question", "")).strip().lower() for e in existing}
    numbers = [int(str(e.get("id", "")).rsplit("-", 1)[-1]) for e in existing
               if str(e.get("id", "")).rsplit("-", 1)[-1].isdigit()]
    added = []
    for gap in gaps:
        question = str(gap.get("question", "")).strip()
        if not question or question.lower() in seen:
            continue
        seen.add(question.lower())
        numbers.append(max(numbers, default=0) + 1)
        added.append({"id": f"lac-{numbers[-1]:03d}", "question": question, "kind": "a_completer",
                      "gold_sources": [], "key_facts": [], "expected_status": "a_completer",
                      "note": f"posée {gap.get('count', 1)} fois, restée sans réponse"})
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "" if path.exists() else (
            "# Lacunes du corpus (questions restées sans réponse dans l'application), à compléter par l'équipe :\n"
            "# expected_status (answered | no_answer), kind, gold_sources, key_facts. Voir evals/README.md.\n")
        body = yaml.safe_dump(added, allow_unicode=True, sort_keys=False, width=120)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(header + body)
    return len(added)
