"""Build the gold question sets ``evals/gold/dev.yaml`` and ``evals/gold/test.yaml``.

Sources: ``evals/parts/*.yaml`` (edited by the staff, format in ``scripts/corpus_src/GOLD_FORMAT.md``
and ``evals/README.md``). The files in ``evals/gold/`` are generated: never edit them by hand.

Steps:

1. read every part file (sorted by name) and validate each entry: required fields, allowed kinds
   and statuses, unique ids, gold sources that exist in ``corpus/``, key facts that really occur
   as whole words in the loaded text of the gold sources (case, accents and spaces ignored, as the
   metrics match them), key facts specific to their sources (a fact found in more than
   ``MAX_FACT_FILES`` corpus files is rejected unless listed in the entry's ``common_facts``),
   filters that match the metadata of the gold sources, ``history`` for ``suivi``, ``filters`` for
   ``filtre``; a ``deux_documents`` question has two sources and a fact found in each of them and
   not in the other;
2. split deterministically, per kind: the entries of one kind are sorted by
   ``int(sha1(id).hexdigest(), 16)`` (ties by id), then alternate: ranks 0, 2, 4… go to ``test``,
   ranks 1, 3, 5… go to ``dev``. Every kind has at least two entries, so both sets contain every
   kind; adding a question only moves entries of its own kind;
3. write both files (entries in part-file order, every field kept, plus ``split``) and refresh the
   counts table of ``evals/README.md`` (between the ``comptes`` markers).

Usage::

    .venv/bin/python scripts/build_gold.py            # validate, write evals/gold/*.yaml + README table
    .venv/bin/python scripts/build_gold.py --check    # validate and say whether the outputs are up to date

Exit code 1 with French messages when an entry is invalid (nothing is written then).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import LoadError
from assistant.evals.metrics import fact_pattern, norm
from assistant.loaders import is_candidate, load_file

ROOT = Path(__file__).resolve().parent.parent
PARTS_DIR = ROOT / "evals" / "parts"
GOLD_DIR = ROOT / "evals" / "gold"
README = ROOT / "evals" / "README.md"
CORPUS_DIR = ROOT / "corpus"

KINDS = ("definition", "procedure", "cadre_legal", "experience", "court", "faute", "sigle",
         "paraphrase", "deux_documents", "hors_champ", "lacune", "injection", "suivi", "filtre")
STATUSES = ("answered", "no_answer")
REQUIRED = ("id", "question", "kind", "gold_sources", "key_facts", "expected_status")
OPTIONAL = ("history", "filters", "common_facts")
MAX_FACT_FILES = 5  # a key fact found in more corpus files than this says nothing about the answer
FILTER_KEYS = ("doc_type", "echelle", "departement", "theme")
SPLITS = ("dev", "test")
COUNTS_START = "<!-- debut comptes (généré par scripts/build_gold.py) -->"
COUNTS_END = "<!-- fin comptes -->"
HEADER = (
    "# Fichier généré par scripts/build_gold.py à partir de evals/parts/*.yaml : ne pas modifier.\n"
    "# Pour changer une question, éditez evals/parts/ puis relancez :\n"
    "#   .venv/bin/python scripts/build_gold.py\n"
)


class GoldError(Exception):
    """Invalid part files; ``problems`` lists one French message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class SourceInfo:
    """Loaded gold source: normalised text and first-document metadata."""

    text: str
    metadata: dict[str, Any]


def hash_key(entry_id: str) -> int:
    """The split key of an id: ``int(sha1(id).hexdigest(), 16)``."""
    return int(hashlib.sha1(entry_id.encode("utf-8")).hexdigest(), 16)


def load_parts(parts_dir: Path = PARTS_DIR) -> list[dict[str, Any]]:
    """All entries of ``parts_dir/*.yaml`` in file-name order, then file order."""
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    files = sorted(parts_dir.glob("*.yaml"))
    if not files:
        raise GoldError([f"aucun fichier .yaml dans {parts_dir}"])
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{path.name} : YAML invalide ({exc})")
            continue
        if data is None:
            continue
        if not isinstance(data, list):
            problems.append(f"{path.name} : le fichier doit être une liste d'entrées (« - id: … »)")
            continue
        for number, entry in enumerate(data, start=1):
            if not isinstance(entry, dict):
                problems.append(f"{path.name}, entrée n° {number} : ce n'est pas un bloc « clé: valeur »")
                continue
            entries.append(dict(entry))
    if problems:
        raise GoldError(problems)
    return entries


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _load_source(source: str, corpus_dir: Path, cache: dict[str, SourceInfo | str]) -> SourceInfo | str:
    """Loaded source, or a French problem message (cached)."""
    if source not in cache:
        path = corpus_dir / source
        if not path.is_file():
            cache[source] = f"source introuvable dans corpus/ : {source}"
        elif not is_candidate(path, corpus_dir):
            cache[source] = f"source non indexée par l'assistant : {source}"
        else:
            try:
                result = load_file(path, corpus_dir)
                text = "\n".join(doc.text for doc in result.documents)
                cache[source] = SourceInfo(norm(text), dict(result.documents[0].metadata))
            except LoadError as exc:
                cache[source] = f"source illisible : {exc}"
    return cache[source]


def filter_matches(key: str, value: str, metadata: dict[str, Any]) -> bool:
    """Does a document with ``metadata`` pass the filter ``key: value``?"""
    if key == "doc_type":
        return metadata.get("doc_type") == value
    if key == "echelle":
        return value in (metadata.get("echelle") or [])
    if key == "departement":
        return metadata.get("departement") == value
    if key == "theme":
        return value in (metadata.get("themes") or [])
    return False


def corpus_texts(corpus_dir: Path, cache: dict[str, SourceInfo | str]) -> dict[str, str]:
    """Normalised text of every file the assistant indexes (for the specificity of key facts)."""
    out: dict[str, str] = {}
    for path in sorted(corpus_dir.rglob("*")):
        if path.is_file() and is_candidate(path, corpus_dir):
            info = _load_source(path.relative_to(corpus_dir).as_posix(), corpus_dir, cache)
            if isinstance(info, SourceInfo):
                out[path.relative_to(corpus_dir).as_posix()] = info.text
    return out


def files_with(fact: str, texts: dict[str, str]) -> list[str]:
    """The corpus files that contain ``fact`` as whole words."""
    pattern = fact_pattern(fact)
    return [source for source, text in texts.items() if pattern.search(text)]


def validate(entries: list[dict[str, Any]], corpus_dir: Path = CORPUS_DIR) -> list[str]:
    """French problem messages (empty list when every entry is valid)."""
    problems: list[str] = []
    seen: Counter[str] = Counter()
    cache: dict[str, SourceInfo | str] = {}
    texts = corpus_texts(corpus_dir, cache)
    for number, entry in enumerate(entries, start=1):
        entry_id = entry.get("id")
        where = f"« {entry_id} »" if isinstance(entry_id, str) and entry_id else f"entrée n° {number}"
        if not isinstance(entry_id, str) or not entry_id.strip():
            problems.append(f"{where} : champ « id » manquant ou vide")
        else:
            seen[entry_id] += 1
        missing = [f for f in REQUIRED if f not in entry]
        if missing:
            problems.append(f"{where} : champ(s) obligatoire(s) manquant(s) : {', '.join(missing)}")
            continue
        unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            problems.append(f"{where} : champ(s) inconnu(s) : {', '.join(unknown)} "
                            f"(autorisés : {', '.join(REQUIRED + OPTIONAL)})")
        if not isinstance(entry["question"], str) or not entry["question"].strip():
            problems.append(f"{where} : « question » doit être un texte non vide")
        kind = entry["kind"]
        if kind not in KINDS:
            problems.append(f"{where} : kind « {kind} » inconnu (valeurs : {', '.join(KINDS)})")
        status = entry["expected_status"]
        if status not in STATUSES:
            problems.append(f"{where} : expected_status « {status} » inconnu (answered ou no_answer)")
        sources, facts = entry["gold_sources"], entry["key_facts"]
        if not _str_list(sources):
            problems.append(f"{where} : « gold_sources » doit être une liste de chemins")
            sources = []
        if not _str_list(facts):
            problems.append(f"{where} : « key_facts » doit être une liste de textes")
            facts = []
        if status == "no_answer" and (sources or facts):
            problems.append(f"{where} : une question no_answer doit avoir gold_sources: [] et key_facts: []")
        if status == "answered" and not 1 <= len(sources) <= 2:
            problems.append(f"{where} : une question answered a 1 ou 2 gold_sources")
        if status == "answered" and not 1 <= len(facts) <= 3:
            problems.append(f"{where} : une question answered a 1 à 3 key_facts")
        history = entry.get("history")
        if history is not None and (not _str_list(history) or not history):
            problems.append(f"{where} : « history » doit être une liste non vide de questions")
        if kind == "suivi" and not history:
            problems.append(f"{where} : une question de suivi doit avoir un « history »")
        filters = entry.get("filters")
        if filters is not None:
            if not isinstance(filters, dict) or not filters:
                problems.append(f"{where} : « filters » doit être un bloc {{clé: valeur}} non vide")
                filters = None
            else:
                bad = sorted(set(filters) - set(FILTER_KEYS))
                if bad:
                    problems.append(f"{where} : clé(s) de filtre inconnue(s) : {', '.join(map(str, bad))} "
                                    f"(autorisées : {', '.join(FILTER_KEYS)})")
        if kind == "filtre" and not filters:
            problems.append(f"{where} : une question filtre doit avoir des « filters »")
        loaded: list[SourceInfo] = []
        for source in sources:
            info = _load_source(source, corpus_dir, cache)
            if isinstance(info, str):
                problems.append(f"{where} : {info}")
            else:
                loaded.append(info)
        if len(loaded) != len(sources) or not loaded:
            continue
        text = "\n".join(info.text for info in loaded)
        common = entry.get("common_facts") or []
        if not _str_list(common) and common:
            problems.append(f"{where} : « common_facts » doit être une liste de key_facts")
            common = []
        for fact in common:
            if fact not in facts:
                problems.append(f"{where} : common_facts « {fact} » n'est pas un des key_facts")
        for fact in facts:
            if not fact_pattern(fact).search(text):
                problems.append(f"{where} : key_fact « {fact} » absent (en mots entiers) du texte de "
                                f"{', '.join(sources)}")
                continue
            found = files_with(fact, texts)
            if len(found) > MAX_FACT_FILES and fact not in common:
                problems.append(f"{where} : key_fact « {fact} » trop courant ({len(found)} fichiers du corpus, "
                                f"plus de {MAX_FACT_FILES}) : il ne dit pas si la réponse est juste ; choisissez un "
                                "fait propre à la source, ou ajoutez-le à « common_facts » si la question le demande")
        if kind == "deux_documents":
            if len(loaded) != 2:
                problems.append(f"{where} : une question deux_documents a exactement 2 gold_sources")
            else:
                for i, source in enumerate(sources):
                    own, other = loaded[i].text, loaded[1 - i].text
                    if not any(fact_pattern(f).search(own) and not fact_pattern(f).search(other) for f in facts):
                        problems.append(f"{where} : aucun key_fact propre à {source} (une question deux_documents "
                                        "demande un fait de chacune des deux sources)")
        for key, value in (filters or {}).items():
            for source, info in zip(sources, loaded, strict=True):
                if key in FILTER_KEYS and not filter_matches(key, str(value), info.metadata):
                    problems.append(f"{where} : la source {source} ne passe pas le filtre {key}: {value}")
    problems += [f"« {i} » : id en double ({n} fois)" for i, n in seen.items() if n > 1]
    kinds = Counter(e.get("kind") for e in entries)
    problems += [f"kind « {k} » : {n} entrée(s), il en faut au moins 2 (une pour dev, une pour test)"
                 for k, n in kinds.items() if k in KINDS and n < 2]
    return problems


def assign_splits(entries: list[dict[str, Any]]) -> dict[str, str]:
    """id -> "dev" | "test": per kind, sorted by sha1 key, even ranks to test, odd ranks to dev."""
    splits: dict[str, str] = {}
    for kind in sorted({str(e["kind"]) for e in entries}):
        ids = sorted((str(e["id"]) for e in entries if e["kind"] == kind), key=lambda i: (hash_key(i), i))
        for rank, entry_id in enumerate(ids):
            splits[entry_id] = "test" if rank % 2 == 0 else "dev"
    return splits


def render_entries(entries: list[dict[str, Any]]) -> str:
    """YAML text of one generated file (header comment + list of entries)."""
    body = yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, default_flow_style=None,
                          width=1_000_000)
    return HEADER + body


def counts_table(entries: list[dict[str, Any]]) -> str:
    """Markdown table: entries per kind and per split."""
    counts = Counter((str(e["kind"]), str(e["split"])) for e in entries)
    lines = ["| kind | dev | test | total |", "|---|---:|---:|---:|"]
    for kind in KINDS:
        dev, test = counts[(kind, "dev")], counts[(kind, "test")]
        if dev or test:
            lines.append(f"| `{kind}` | {dev} | {test} | {dev + test} |")
    dev_total = sum(n for (_, s), n in counts.items() if s == "dev")
    test_total = sum(n for (_, s), n in counts.items() if s == "test")
    lines.append(f"| **total** | {dev_total} | {test_total} | {dev_total + test_total} |")
    answered = Counter(str(e["split"]) for e in entries if e["expected_status"] == "answered")
    lines.append(f"| dont `answered` | {answered['dev']} | {answered['test']} | "
                 f"{answered['dev'] + answered['test']} |")
    return "\n".join(lines)


def update_readme(readme_text: str, table: str) -> str:
    """``readme_text`` with the block between the count markers replaced by ``table``."""
    start, end = readme_text.find(COUNTS_START), readme_text.find(COUNTS_END)
    if start < 0 or end < start:
        return readme_text
    return readme_text[:start] + COUNTS_START + "\n" + table + "\n" + readme_text[end:]


def build(parts_dir: Path = PARTS_DIR, corpus_dir: Path = CORPUS_DIR) -> dict[str, str]:
    """Validate the parts and return {"dev": yaml text, "test": yaml text, "table": counts}.

    Raises ``GoldError`` when an entry is invalid.
    """
    entries = load_parts(parts_dir)
    problems = validate(entries, corpus_dir)
    if problems:
        raise GoldError(problems)
    splits = assign_splits(entries)
    tagged = [{**e, "split": splits[str(e["id"])]} for e in entries]
    out = {split: render_entries([e for e in tagged if e["split"] == split]) for split in SPLITS}
    out["table"] = counts_table(tagged)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Construit evals/gold/dev.yaml et test.yaml.")
    parser.add_argument("--parts", type=Path, default=PARTS_DIR, help="dossier des sources (evals/parts)")
    parser.add_argument("--out", type=Path, default=GOLD_DIR, help="dossier de sortie (evals/gold)")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="dossier du corpus")
    parser.add_argument("--readme", type=Path, default=README,
                        help="README dont le tableau des comptes est mis à jour (evals/README.md)")
    parser.add_argument("--check", action="store_true", help="ne rien écrire, dire si les fichiers sont à jour")
    args = parser.parse_args(argv)
    try:
        built = build(args.parts, args.corpus)
    except GoldError as exc:
        print(f"{len(exc.problems)} problème(s) dans {args.parts} :", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    targets = {args.out / f"{split}.yaml": built[split] for split in SPLITS}
    readme_path: Path = args.readme
    readme_old = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    readme_new = update_readme(readme_old, built["table"])
    if args.check:
        stale = [p for p, text in targets.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
        if readme_new != readme_old:
            stale.append(readme_path)
        for path in stale:
            print(f"À régénérer : {path}", file=sys.stderr)
        if not stale:
            print("Fichiers gold à jour.")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for path, text in targets.items():
        path.write_text(text, encoding="utf-8")
        print(f"Écrit : {path}")
    if readme_new != readme_old:
        readme_path.write_text(readme_new, encoding="utf-8")
        print(f"Tableau des comptes mis à jour dans {readme_path}")
    print(built["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
