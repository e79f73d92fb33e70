"""``assistant eval``: run, report, compare, gate, and the README table (called by ``assistant.cli``).

Usage::

    .venv/bin/assistant eval --set evals/gold/test.yaml                 # one run + gate vs baseline
    .venv/bin/assistant eval --compare evals/reports/A evals/reports/B  # deltas (+ compare.html)
    .venv/bin/assistant eval --configs bm25,dense,hybrid --readme       # side by side, README table

Exit codes: 0 fine; 1 the gate failed; 2 a setting, index or set error (French message).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError
from assistant.evals.gate import compare_table, find_previous, fmt, gate, load_report, markdown_table
from assistant.evals.goldsets import load_set
from assistant.evals.report import write_compare, write_report
from assistant.evals.runner import CONFIGS, run_eval

DEFAULT_SET = Path("evals/gold/test.yaml")
DEFAULT_BASELINE = Path("evals/baseline/report.json")
REPORTS_DIR = Path("evals/reports")
README = Path("README.md")
TABLE_START, TABLE_END = "<!-- debut tableau eval -->", "<!-- fin tableau eval -->"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", type=Path, default=DEFAULT_SET, help="jeu de questions (YAML, JSONL ou CSV)")
    p.add_argument("--index", help="dossier de l'index (défaut : ASSISTANT_INDEX_DIR)")
    p.add_argument("--corpus", type=Path,
                   help="évaluer un autre corpus : il est indexé d'abord (incrémental) dans --index ou, par "
                        "défaut, dans evals/reports/index-<nom du dossier>/")
    p.add_argument("--config", default="hybrid", choices=list(CONFIGS), help="configuration (défaut : hybrid)")
    p.add_argument("--configs", help="plusieurs configurations côte à côte, ex. bm25,dense,hybrid[,llm]")
    p.add_argument("--out", type=Path, help="dossier du rapport (défaut : evals/reports/<date>-<config>/)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                   help="comparer deux rapports (dossiers ou report.json)")
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="rapport de référence pour la porte")
    p.add_argument("--no-gate", action="store_true", help="ne pas appliquer la porte de non-régression")
    p.add_argument("--readme", action="store_true",
                   help="avec --configs : remplacer le tableau du README entre ses marqueurs")
    p.add_argument("--quiet", action="store_true", help="sans barre de progression")


def _compare(a_path: Path, b_path: Path) -> int:
    a, b = load_report(a_path), load_report(b_path)
    print(compare_table(a, b))
    out = (b_path if b_path.is_dir() else b_path.parent) / "compare.html"
    print(f"Page de comparaison : {write_compare(a, b, out)}")
    return 0


def replace_readme_table(readme: Path, table: str) -> None:
    """Put ``table`` between the README's markers (French error when they are missing)."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), re.S)
    if not pattern.search(text):
        raise AssistantError(f"{readme} : marqueurs {TABLE_START} … {TABLE_END} introuvables.")
    readme.write_text(pattern.sub(lambda _: f"{TABLE_START}\n{table}\n{TABLE_END}", text), encoding="utf-8")


def _one(args: argparse.Namespace, index: Any, entries: list[dict[str, Any]], config: str,
         out: Path | None) -> dict[str, Any]:
    report = run_eval(entries, index, config=config, set_path=args.set, progress=not args.quiet)
    out = out or REPORTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{config}"
    baseline = load_report(args.baseline) if args.baseline.is_file() else None
    previous = find_previous(REPORTS_DIR, report, exclude=out)
    if report["meta"]["mode"] != "lexical":
        from assistant.refusal import ensure_calibration

        report["meta"]["refusal_calibration"] = ensure_calibration(index).as_dict()
    page = write_report(report, out, previous=previous, baseline=baseline)
    o = report["overall"]
    print(f"{report['meta']['config_label']} : hit@1 {fmt(o['hit@1'])} · hit@3 {fmt(o['hit@3'])} · "
          f"faits dans la réponse {fmt(o['answer_coverage'])} · faits cités {fmt(o['cited_facts'])} · "
          f"rappel refus {fmt(o['refusal_recall'])} · faux refus {fmt(o['false_refusals'])} · incertaines {fmt(o.get('partial', 0))} · "
          f"latence p50 {fmt(o['latency_p50_ms'], 'latency')} ms")
    print(f"Rapport : {page}")
    return report


def _gate(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """Exit code of the gate: it fails (1) when it cannot be applied, never skips unless --no-gate."""
    if args.no_gate:
        print("Porte de non-régression : non appliquée (--no-gate demandé).")
        return 0
    baseline = load_report(args.baseline) if args.baseline.is_file() else None
    problems = gate(report, baseline, baseline_name=str(args.baseline))
    if problems:
        print("Porte de non-régression : ÉCHEC par rapport à " + str(args.baseline))
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"Porte de non-régression : réussie (référence {args.baseline}).")
    return 0


def _other_corpus(args: argparse.Namespace, settings: Any) -> Any:
    """Settings for ``--corpus DIR``: its own index (and Chroma collection), brought up to date."""
    from assistant.ingest import ingest
    from assistant.store.vector import slug

    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise AssistantError(f"Dossier du corpus introuvable : {corpus}. Vérifiez --corpus.")
    name = slug(corpus.resolve().name if corpus.name != "corpus" else corpus.resolve().parent.name) or "corpus"
    index_dir = Path(args.index) if args.index else REPORTS_DIR / f"index-{name}"
    collection = f"{settings.chroma_collection}_{name}"[:63].rstrip("_-.")
    settings = settings.model_copy(update={"corpus_dir": corpus, "index_dir": index_dir,
                                           "chroma_collection": collection})
    report = ingest(corpus, index_dir, settings, progress=not args.quiet)
    print(f"Corpus {corpus} indexé dans {index_dir} : {report.chunks_total} passages.")
    if not report.usable:
        raise AssistantError(f"Aucun passage indexé depuis {corpus} : ajoutez des fichiers lisibles.")
    return settings


def run(args: argparse.Namespace, settings: Any) -> int:
    """The ``eval`` subcommand."""
    if args.compare:
        return _compare(*args.compare)
    from assistant.retrieve import open_index

    entries = load_set(args.set)
    if getattr(args, "corpus", None):
        settings = _other_corpus(args, settings)
    index = open_index(settings, settings.index_dir)
    from assistant.refusal import describe, ensure_calibration

    print(describe(ensure_calibration(index)))
    configs = [c.strip() for c in (args.configs or args.config).split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise AssistantError(f"Configuration inconnue : {', '.join(unknown)} (choix : {', '.join(CONFIGS)}).")
    if len(configs) == 1:
        return _gate(args, _one(args, index, entries, configs[0], args.out))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    reports = [_one(args, index, entries, c, (args.out or REPORTS_DIR / stamp) / c) for c in configs]
    table = markdown_table(reports)
    print(f"\njeu : {args.set} ({len(entries)} questions) ; modèle : {settings.embedding_model}\n")
    print(table)
    if args.readme:
        replace_readme_table(README, table)
        print(f"Tableau remplacé dans {README}.")
    return max(_gate(args, r) for r in reports)
