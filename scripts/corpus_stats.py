"""Write ``corpus/STATS.md``: a generated, French overview of what the corpus contains.

Counts the files the ingester reads (``assistant.loaders.is_candidate``: README.md and STATS.md are
skipped) by document type, format, département, échelle and illustrative status, and the number of
passages (chunks) per type produced by ``chunk_document`` with its default settings.

The output is deterministic (no date, sorted tables) so that ``tests/test_corpus.py`` can check that
the committed file is up to date by regenerating it with ``write_stats``.

Usage::

    .venv/bin/python scripts/corpus_stats.py                     # corpus/ -> corpus/STATS.md
    .venv/bin/python scripts/corpus_stats.py --corpus corpus --out /tmp/STATS.md
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from assistant.chunking import chunk_document
from assistant.errors import LoadError
from assistant.loaders import is_candidate, load_file
from assistant.types import DOC_TYPES, ECHELLES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "corpus"

DEPARTEMENTS = (
    "Charente", "Charente-Maritime", "Corrèze", "Creuse", "Dordogne", "Gironde", "Landes",
    "Lot-et-Garonne", "Pyrénées-Atlantiques", "Deux-Sèvres", "Vienne", "Haute-Vienne",
)
TYPE_LABELS = {
    "fiche_outil": "Fiches outils",
    "fiche_experience": "Fiches expériences",
    "entretien": "Entretiens",
    "rapport": "Rapports",
    "autre": "Autres (glossaire…)",
}
ECHELLE_LABELS = {
    "quartier": "Quartier",
    "commune": "Commune",
    "intercommunalite": "Intercommunalité",
    "pays_petr": "Pays / PETR",
    "departement": "Département",
    "region": "Région",
}


@dataclass
class FileStats:
    """What one corpus file contributes to the statistics."""

    source: str
    suffix: str
    doc_type: str
    illustrative: bool
    departement: str | None
    echelles: list[str]
    units: int
    chunks: int


@dataclass
class CorpusStats:
    """Per-file statistics plus files that could not be read."""

    files: list[FileStats] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect(corpus_dir: Path) -> CorpusStats:
    """Load and chunk every candidate file of ``corpus_dir`` (sorted, so the result is stable)."""
    stats = CorpusStats()
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
        if not is_candidate(path, corpus_dir):
            continue
        try:
            result = load_file(path, corpus_dir)
        except LoadError as exc:
            stats.errors.append(str(exc))
            continue
        stats.warnings.extend(result.warnings)
        if not result.documents:
            continue
        meta = result.documents[0].metadata
        departement = meta.get("departement")
        stats.files.append(FileStats(
            source=str(meta["source"]),
            suffix=path.suffix.lower(),
            doc_type=str(meta["doc_type"]),
            illustrative=bool(meta["illustrative"]),
            departement=str(departement) if departement else None,
            echelles=[str(e) for e in meta.get("echelle", [])],
            units=len(result.documents),
            chunks=sum(len(chunk_document(doc)) for doc in result.documents),
        ))
    return stats


def _chunk_defaults() -> str:
    params = inspect.signature(chunk_document).parameters
    return (f"max_tokens={params['max_tokens'].default}, "
            f"overlap_tokens={params['overlap_tokens'].default}")


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return lines


def render_stats(corpus_dir: Path) -> str:
    """The full Markdown text of STATS.md for ``corpus_dir``."""
    stats = collect(corpus_dir)
    files = stats.files
    total_chunks = sum(f.chunks for f in files)
    out: list[str] = [
        "# Statistiques du corpus",
        "",
        "> Fichier généré automatiquement par `scripts/corpus_stats.py` : ne pas le modifier à la main.",
        "> Pour le mettre à jour après un ajout de document : `.venv/bin/python scripts/corpus_stats.py`.",
        "",
        f"Fichiers pris en compte par l'assistant : **{len(files)}** "
        "(les fichiers README.md et STATS.md ne sont pas indexés).",
        "",
    ]

    out += ["## Fichiers par type de document", ""]
    types = [t for t in DOC_TYPES if any(f.doc_type == t for f in files)]
    types += sorted({f.doc_type for f in files} - set(types))
    rows: list[tuple[object, ...]] = []
    for doc_type in types:
        group = [f for f in files if f.doc_type == doc_type]
        rows.append((TYPE_LABELS.get(doc_type, doc_type), f"`{doc_type}`", len(group),
                     sum(f.units for f in group), sum(f.chunks for f in group)))
    rows.append(("**Total**", "", len(files), sum(f.units for f in files), total_chunks))
    out += _table(("Type", "Code", "Fichiers", "Unités lues", "Passages"), rows)
    out += [
        "",
        "- « Unités lues » : un document par fichier, sauf les PDF qui comptent une unité par page.",
        f"- « Passages » : nombre de passages avec les réglages par défaut du découpage "
        f"(`chunk_document`, {_chunk_defaults()}). L'indexation réelle peut en produire un peu plus "
        "si un passage dépasse la taille maximale acceptée par le modèle d'embeddings.",
        "",
    ]

    out += ["## Fichiers par format", ""]
    formats = Counter(f.suffix for f in files)
    out += _table(("Format", "Fichiers"), [(f"`{s}`", n) for s, n in sorted(formats.items())])
    out.append("")

    out += ["## Fichiers illustratifs (exemples fictifs) ou non", ""]
    rows = []
    for doc_type in types:
        group = [f for f in files if f.doc_type == doc_type]
        fictive = sum(f.illustrative for f in group)
        rows.append((TYPE_LABELS.get(doc_type, doc_type), fictive, len(group) - fictive))
    fictive_total = sum(f.illustrative for f in files)
    rows.append(("**Total**", fictive_total, len(files) - fictive_total))
    out += _table(("Type", "Illustratifs (fictifs)", "Non illustratifs"), rows)
    out += [
        "",
        "Un fichier est illustratif quand ses métadonnées portent `statut: exemple fictif` : "
        "l'assistant le signale alors comme exemple inventé quand il le cite.",
        "",
    ]

    out += ["## Fichiers par département", ""]
    by_dep = Counter(f.departement for f in files if f.departement)
    rows = [(dep, by_dep.get(dep, 0)) for dep in DEPARTEMENTS]
    rows += [(f"{dep} (hors liste)", n) for dep, n in sorted(by_dep.items()) if dep not in DEPARTEMENTS]
    rows.append(("Sans département", sum(1 for f in files if not f.departement)))
    out += _table(("Département", "Fichiers"), rows)
    out += ["", "Détail pour les fiches expériences :", ""]
    exp = [f for f in files if f.doc_type == "fiche_experience"]
    exp_dep = Counter(f.departement for f in exp if f.departement)
    rows = [(dep, exp_dep.get(dep, 0)) for dep in DEPARTEMENTS]
    rows.append(("Sans département", sum(1 for f in exp if not f.departement)))
    out += _table(("Département", "Fiches expériences"), rows)
    out.append("")

    out += ["## Fichiers par échelle territoriale", ""]
    rows = []
    for echelle in ECHELLES:
        rows.append((ECHELLE_LABELS[echelle], f"`{echelle}`",
                     sum(echelle in f.echelles for f in files),
                     sum(echelle in f.echelles for f in exp)))
    others = sorted({e for f in files for e in f.echelles} - set(ECHELLES))
    rows += [(e, f"`{e}`", sum(e in f.echelles for f in files), sum(e in f.echelles for f in exp))
             for e in others]
    rows.append(("Sans échelle", "", sum(1 for f in files if not f.echelles),
                 sum(1 for f in exp if not f.echelles)))
    out += _table(("Échelle", "Code", "Tous fichiers", "dont fiches expériences"), rows)
    out += [
        "",
        "Un fichier valable à plusieurs échelles est compté dans chacune : la somme de la colonne "
        "peut dépasser le nombre de fichiers.",
        "",
    ]

    if stats.errors or stats.warnings:
        out += ["## Fichiers à vérifier", ""]
        out += [f"- Non lu : {e}" for e in stats.errors]
        out += [f"- Avertissement : {w}" for w in stats.warnings]
        out.append("")
    return "\n".join(out)


def write_stats(corpus_dir: Path, out_path: Path) -> str:
    """Render the statistics of ``corpus_dir`` into ``out_path`` (UTF-8); returns the text."""
    text = render_stats(corpus_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Écrit corpus/STATS.md (statistiques du corpus).")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="dossier du corpus")
    parser.add_argument("--out", type=Path, default=None, help="fichier à écrire (défaut : <corpus>/STATS.md)")
    args = parser.parse_args(argv)
    corpus_dir: Path = args.corpus.resolve()
    if not corpus_dir.is_dir():
        print(f"Dossier du corpus introuvable : {corpus_dir}", file=sys.stderr)
        return 1
    out_path: Path = args.out or corpus_dir / "STATS.md"
    write_stats(corpus_dir, out_path)
    print(f"Statistiques écrites dans {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
