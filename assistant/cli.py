"""Command line: ``assistant ingest | ask | models | serve | eval | calibration``. Domain errors become one French message here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from assistant.errors import AssistantError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _settings(args: argparse.Namespace) -> object:
    from assistant.settings import load_settings

    overrides = {}
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index", None):
        overrides["index_dir"] = Path(args.index)
    return load_settings(**overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    from assistant.ingest import ingest

    settings = _settings(args)
    def waiting(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = ingest(settings.corpus_dir, settings.index_dir, settings, progress=not args.quiet,
                    wait=not args.no_wait, on_wait=waiting)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print(report.summary())
    return 0 if report.usable else 1


def _print_answer(result: object) -> None:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.markup import escape

    console = Console()
    if result.standalone_question != result.question:
        console.print(f"[dim]Question comprise : {escape(result.standalone_question)}[/]")
    if result.status == "partial":
        console.print("[bold yellow]Réponse incertaine[/] [dim](passages les plus proches, à vérifier)[/]")
    console.print(Markdown(result.answer))
    # the built-in composer's answer ends with its sources (« Pour aller plus loin »); an LLM's may not
    if result.citations and "Pour aller plus loin" not in result.answer:
        console.print("[bold]Sources[/]")
        for c in result.citations:
            where = ", ".join(x for x in (c.section, f"p. {c.page}" if c.page else None) if x)
            mark = " [bold yellow](exemple fictif)[/]" if c.illustrative else ""
            console.print(f"[dim][{c.n}] {escape(c.source)}{' — ' + escape(where) if where else ''}[/]{mark}")
    if result.experiences:
        console.print("[bold]Expériences d'autres territoires[/]")
    for e in result.experiences:
        mark = " [bold yellow](exemple fictif)[/]" if e["illustrative"] else ""
        console.print(f"- {escape(str(e['title']))}{mark}\n  [dim]{escape(str(e['territory'] or ''))} — {escape(e['why'])} ({escape(e['source'])})[/]")


def parse_filters(items: list[str] | None) -> dict[str, str]:
    """``["echelle=intercommunalite", "departement=Creuse"]`` -> dict; unknown keys are an error."""
    from assistant.retrieve import FILTER_KEYS

    filters: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in FILTER_KEYS or not value.strip():
            raise AssistantError(
                f"Filtre invalide « {item} » : écrivez CLÉ=VALEUR avec une clé parmi {', '.join(FILTER_KEYS)} "
                "(ex. --filter echelle=intercommunalite)."
            )
        filters[key] = value.strip()
    return filters


def cmd_ask(args: argparse.Namespace) -> int:
    from assistant.answer import answer
    from assistant.retrieve import open_index

    settings = _settings(args)
    filters = parse_filters(args.filter)
    index = open_index(settings, settings.index_dir)
    session: list[str] = []

    def one(line: str, keep_history: bool) -> None:
        question, history, line_filters = line, session[-3:] if keep_history else [], dict(filters)
        if line.startswith("{"):  # JSON Lines input: {"question": ..., "history": [...], "filters": {...}}
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssistantError(f"Ligne JSON invalide sur l'entrée ({exc.msg}) : {line[:80]}") from None
            question = str(data.get("question", ""))
            history = [str(h) for h in data.get("history") or []]
            line_filters.update(data.get("filters") or {})
        result = answer(question, history=history, filters=line_filters, index=index)
        if keep_history:
            session.append(result.standalone_question)
        if args.json:
            print(json.dumps(dataclasses.asdict(result), ensure_ascii=False), flush=True)
        else:
            _print_answer(result)

    if args.question:
        one(" ".join(args.question), keep_history=False)
        return 0
    interactive = sys.stdin.isatty() and not args.json
    if interactive:
        print("Posez votre question (ligne vide ou Ctrl-D pour quitter).")
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not line:
            break
        if line.strip():
            one(line.strip(), keep_history=interactive)
        elif interactive:
            break
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from assistant.embedders import get_embedder

    settings = _settings(args)
    embedder = get_embedder(settings)
    print(f"Modèle prêt : {embedder.name} (dimension {embedder.dim}, séquence max {embedder.max_tokens} jetons).")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from assistant.web.server import serve

    serve(_settings(args), host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_calibration(args: argparse.Namespace) -> int:
    from assistant.refusal import describe, ensure_calibration
    from assistant.retrieve import open_index

    settings = _settings(args)
    index = open_index(settings, settings.index_dir)
    calibration = ensure_calibration(index, force=args.recompute)
    print(json.dumps(calibration.as_dict(), ensure_ascii=False) if args.json else describe(calibration))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from assistant.evals.command import run

    return run(args, _settings(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Assistant du dialogue territorial (PQN-A)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="construire ou mettre à jour l'index")
    p.add_argument("--corpus", help="dossier du corpus (défaut : réglage ASSISTANT_CORPUS_DIR)")
    p.add_argument("--index", help="dossier de l'index (défaut : ASSISTANT_INDEX_DIR)")
    p.add_argument("--json", action="store_true", help="résumé en JSON")
    p.add_argument("--quiet", action="store_true", help="sans barre de progression")
    p.add_argument("--no-wait", action="store_true",
                   help="si une indexation est déjà en cours sur cet index, s'arrêter (code 3) au lieu d'attendre")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("ask", help="poser une question (sans question : une par ligne sur l'entrée)")
    p.add_argument("question", nargs="*")
    p.add_argument("--index")
    p.add_argument("--json", action="store_true", help="un objet JSON par question (JSON Lines)")
    p.add_argument("--filter", action="append", metavar="CLÉ=VALEUR",
                   help="doc_type, echelle, departement ou theme (répétable)")
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser("models", help="préparer le modèle d'embedding (conversion hors ligne)")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("serve", help="lancer l'application web (interface, API, widget)")
    p.add_argument("--host", help="adresse d'écoute (défaut : ASSISTANT_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (défaut : ASSISTANT_PORT, 7860)")
    p.add_argument("--index", help="dossier de l'index (défaut : ASSISTANT_INDEX_DIR)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processus qui répondent en parallèle sur le même port (défaut : 1 ; voir README, déploiement)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("calibration", help="afficher (ou recalculer) les seuils de refus étalonnés sur l'index")
    p.add_argument("--index", help="dossier de l'index (défaut : ASSISTANT_INDEX_DIR)")
    p.add_argument("--recompute", action="store_true", help="recalculer maintenant, même si le corpus a peu changé")
    p.add_argument("--json", action="store_true", help="les seuils en JSON")
    p.set_defaults(func=cmd_calibration)
    from assistant.evals.command import add_arguments

    p = sub.add_parser("eval", help="évaluer l'assistant sur un jeu de questions (rapport, porte de non-régression)")
    add_arguments(p)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AssistantError as exc:
        from assistant.store.lock import IngestBusy

        print(f"Erreur : {exc}", file=sys.stderr)
        return 3 if isinstance(exc, IngestBusy) else 2
    except KeyboardInterrupt:
        print("Interrompu.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
