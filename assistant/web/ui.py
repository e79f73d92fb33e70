"""The Gradio chat UI (the only module that imports gradio): a thin adapter over ``Service.ask``.

Chat with streamed answers, sources panel (passage, file, section, page, link), experience cards,
filters, example questions, new conversation, thumbs up/down and comments, and the staff view
(feedback, « lacunes du corpus », CSV export, evaluations run in the background) behind the staff password.

Usage::

    mount_ui(app, service)        # mounts the UI at "/" of the FastAPI app (see server.create_app)
"""

from __future__ import annotations

import html
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from assistant.web.ratelimit import RATE_LIMIT_MESSAGE  # noqa: E402
from assistant.web.security import LOGIN_LOCKED, STAFF_REFUSED, password_ok  # noqa: E402
from assistant.web.service import QuestionError, Service  # noqa: E402

EXAMPLES = [
    "Comment lancer un conseil citoyen ?",
    "C'est quoi un PETR ?",
    "Comment associer les habitants à un PCAET ?",
    "Quel rôle pour un conseil de développement ?",
]
FICTIF = '<span class="fictif">exemple fictif</span>'
OCR_MARK = ('<span class="ocr" title="Texte lu sur une page scannée par reconnaissance de caractères : '
            'vérifiez-le dans le document">texte reconnu (OCR)</span>')
CSS = """
.fictif { background: #fff3cd; color: #5c4400; border: 1px solid #b38600; border-radius: 4px;
          padding: 0 .35em; font-size: .85em; font-weight: 600; white-space: nowrap; }
.ocr { background: #e0ecff; color: #1e3a8a; border: 1px solid #1d4ed8; border-radius: 4px;
       padding: 0 .35em; font-size: .85em; white-space: nowrap; }
.sources ol, .experiences ul { padding-left: 1.2em; }
.sources blockquote { border-left: 3px solid #6b7280; margin: .4em 0; padding-left: .6em; white-space: pre-wrap; }
.sources .meta, .experiences .meta { color: #374151; font-size: .9em; }
.experiences li { border: 1px solid #d1d5db; border-radius: 6px; padding: .5em; margin-bottom: .5em; list-style: none; }
a:focus-visible, button:focus-visible, summary:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
/* Gradio's orange primary button has white text at 2.8:1 (axe-core « color-contrast »): 10:1 here */
button.primary, button.primary:hover { background: #1e3a8a !important; color: #fff !important;
  border-color: #1e3a8a !important; }
/* the selected tab's orange label is below 4.5:1 too */
button[role="tab"][aria-selected="true"], button[role="tab"].selected { color: #1e3a8a !important; }
"""
EMPTY_SOURCES = '<div class="sources"><h2>Sources</h2><p>Les sources de la réponse apparaîtront ici.</p></div>'
EMPTY_EXPERIENCES = '<div class="experiences"><h2>Expériences d\'autres territoires</h2><p>—</p></div>'


def esc(text: Any) -> str:
    """Text shown as text: HTML in a question or a corpus passage is never interpreted."""
    return html.escape(str(text if text is not None else ""), quote=True)


def source_link(source: str, page: int | None) -> str:
    return "sources/" + quote(source) + (f"#page={page}" if page else "")


def sources_html(citations: list[Any]) -> str:
    """The sources panel: one collapsible entry per numbered citation."""
    if not citations:
        return '<div class="sources"><h2>Sources</h2><p>Aucune source citée pour cette réponse.</p></div>'
    items = []
    for i, c in enumerate(citations):
        where = [f"Fichier : <code>{esc(c.source)}</code>"]
        if c.section:
            where.append(f"Section : {esc(c.section)}")
        if c.page:
            where.append(f"Page : {c.page}")
        if getattr(c, "ocr", False):
            where.append(OCR_MARK)
        items.append(
            f'<li id="source-{c.n}"><details{" open" if i == 0 else ""}><summary>[{c.n}] {esc(c.title)}'
            f'{" " + FICTIF if c.illustrative else ""}</summary><p class="meta">{" · ".join(where)}</p>'
            f"<blockquote>{esc(c.text)}</blockquote>"
            f'<a href="{esc(source_link(c.source, c.page))}" target="_blank" rel="noopener">'
            f"Ouvrir le document [{c.n}]</a></details></li>")
    return f'<div class="sources"><h2>Sources</h2><ol>{"".join(items)}</ol></div>'


def experiences_html(experiences: list[dict[str, Any]]) -> str:
    """Experience cards (« exemple fictif » when illustrative)."""
    if not experiences:
        return EMPTY_EXPERIENCES
    cards = "".join(
        f'<li><strong>{esc(e.get("title"))}</strong>{" " + FICTIF if e.get("illustrative") else ""}'
        f'<p class="meta">{esc(e.get("territory") or "")}</p><p>{esc(e.get("why"))}</p>'
        f'<a href="{esc(source_link(str(e.get("source")), None))}" target="_blank" rel="noopener">Lire la fiche</a></li>'
        for e in experiences)
    return f'<div class="experiences"><h2>Expériences d\'autres territoires</h2><ul>{cards}</ul></div>'


def chat_text(result: Any) -> str:
    """The answer as shown in the chat (escaped), with a short list of its numbered sources."""
    text = esc(result.answer).replace("&#x27;", "'").replace("&quot;", '"')
    if result.citations and "Pour aller plus loin" not in text:
        lines = [f"[{c.n}] {esc(c.title)}{' — *exemple fictif*' if c.illustrative else ''}" for c in result.citations]
        text += "\n\n**Sources** (détail dans le panneau Sources) :\n" + "\n".join(f"- {line}" for line in lines)
    return text


def text_messages(chat: Any) -> list[dict[str, str]]:
    """The conversation as the client sent it, reduced to its text messages: a file or component
    part (``{"path": "/etc/passwd"}``) is dropped, never sent back as a downloadable file."""
    out: list[dict[str, str]] = []
    for message in chat if isinstance(chat, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            parts = [p.get("text") if isinstance(p, dict) and p.get("type") == "text" else p for p in content]
            content = "\n".join(p for p in parts if isinstance(p, str))
        if isinstance(content, str) and content:
            out.append({"role": message["role"], "content": content})
    return out


def _client(request: gr.Request | None) -> str:
    return request.client.host if request is not None and request.client else "ui"


def build_ui(service: Service) -> gr.Blocks:
    """The Blocks of the chat and staff views."""
    choices = service.filter_choices()
    settings = service.settings

    def respond(message: str, chat: list[dict], history: list[str], ids: dict, doc_type: str | None,
                echelle: str | None, departement: str | None, theme: str | None,
                request: gr.Request) -> Iterator[tuple]:
        message = (message or "").strip()
        chat = text_messages(chat)  # a file part sent by a client is never echoed (SECURITY.md)
        if not message:
            yield gr.update(), chat, history, ids, gr.update(), gr.update()
            return
        chat = [*chat, {"role": "user", "content": esc(message)}]
        filters = {"doc_type": doc_type, "echelle": echelle, "departement": departement, "theme": theme}
        try:
            service.check(message, history, filters)
            if not service.limiter.allow(_client(request)):
                raise QuestionError(RATE_LIMIT_MESSAGE)
        except QuestionError as exc:
            yield "", [*chat, {"role": "assistant", "content": esc(str(exc))}], history, ids, gr.update(), gr.update()
            return
        yield "", [*chat, {"role": "assistant", "content": "*Recherche dans les documents…*"}], history, ids, \
            gr.update(), gr.update()
        tokens: queue.Queue = queue.Queue()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"], box["id"] = service.ask(message, history, filters, channel="ui", on_token=tokens.put)
            except Exception as exc:  # noqa: BLE001 - shown to the user in French, logged by the server
                box["error"] = exc
            tokens.put(None)

        threading.Thread(target=work, daemon=True).start()
        partial = ""
        while (token := tokens.get()) is not None:  # LLM tokens, when a language model is configured
            partial += token
            yield "", [*chat, {"role": "assistant", "content": esc(partial)}], history, ids, gr.update(), gr.update()
        if "error" in box:
            text = "Désolé, une erreur est survenue pendant la réponse. Réessayez dans un instant."
            yield "", [*chat, {"role": "assistant", "content": text}], history, ids, gr.update(), gr.update()
            return
        result = box["result"]
        final = chat_text(result)
        if not partial:  # built-in composer: stream the text out progressively
            words = final.split(" ")
            step = max(4, len(words) // 12)
            for end in range(step, len(words), step):
                yield "", [*chat, {"role": "assistant", "content": " ".join(words[:end])}], history, ids, \
                    gr.update(), gr.update()
                time.sleep(0.02)
        chat = [*chat, {"role": "assistant", "content": final}]
        ids = {**ids, str(len(chat) - 1): box["id"]}
        history = [*history, result.standalone_question][-5:]
        yield "", chat, history, ids, sources_html(result.citations), experiences_html(result.experiences)

    def on_like(ids: dict, data: gr.LikeData, request: gr.Request) -> str:
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        answer_id = ids.get(str(index))
        if data.liked not in (True, False) or not answer_id or not service.feedback_limiter.allow(_client(request)):
            return "Avis non enregistré."
        rating = "up" if data.liked is True else "down"
        service.store.add_feedback(answer_id, rating=rating)
        return "Merci pour votre retour !" if rating == "up" else "Merci : votre retour nous aide à améliorer le corpus."

    def on_comment(comment: str, ids: dict, request: gr.Request) -> tuple[str, str]:
        if not ids:
            return comment, "Posez d'abord une question : le commentaire porte sur la dernière réponse."
        if not (comment or "").strip() or not service.feedback_limiter.allow(_client(request)):
            return comment, "Commentaire vide ou trop de retours : rien n'a été enregistré."
        last = ids[max(ids, key=int)]
        service.store.add_feedback(last, comment=comment)
        return "", "Merci, votre commentaire est enregistré."

    def new_conversation() -> tuple:
        return [], [], {}, "", EMPTY_SOURCES, EMPTY_EXPERIENCES, ""

    with gr.Blocks(title="Assistant du dialogue territorial — PQN-A", analytics_enabled=False) as demo:
        gr.Markdown("# Assistant du dialogue territorial\nRéponses tirées des documents du centre de ressources "
                    "Pays et Quartiers de Nouvelle-Aquitaine, avec leurs sources numérotées. Les documents marqués "
                    "« exemple fictif » sont des illustrations, pas des expériences réelles.")
        history = gr.State([])
        ids = gr.State({})
        with gr.Tab("Discuter") as chat_tab:
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Conversation", height=480, sanitize_html=True, allow_tags=False,
                                         feedback_options=("Like", "Dislike"), buttons=["copy"],
                                         placeholder="Posez une question sur le dialogue territorial.",
                                         elem_id="conversation")
                    question = gr.Textbox(label="Votre question", lines=2, max_length=settings.max_question_chars,
                                          placeholder="Ex. : Comment lancer un conseil citoyen ?", elem_id="question")
                    with gr.Row():
                        send = gr.Button("Envoyer", variant="primary", elem_id="send")
                        new = gr.Button("Nouvelle conversation", elem_id="new-conversation")
                    gr.Examples(EXAMPLES, inputs=question, label="Exemples de questions")
                    with gr.Accordion("Filtres", open=False):
                        doc_type = gr.Dropdown(choices["doc_type"], label="Type de document", value=None)
                        echelle = gr.Dropdown(choices["echelle"], label="Échelle", value=None, elem_id="filter-echelle")
                        # the choices follow the corpus (refreshed when the tab is shown); a value that
                        # has just left it must not break the question (it then finds nothing)
                        departement = gr.Dropdown(choices["departement"], label="Département", value=None,
                                                  elem_id="filter-departement", allow_custom_value=True)
                        theme = gr.Dropdown(choices["theme"], label="Thème", value=None, allow_custom_value=True)
                    with gr.Accordion("Un commentaire sur la dernière réponse ? (facultatif)", open=False):
                        comment = gr.Textbox(label="Commentaire", lines=2, max_length=2000)
                        send_comment = gr.Button("Envoyer le commentaire")
                    feedback_status = gr.Markdown(elem_id="feedback-status")
                with gr.Column(scale=2):
                    sources = gr.HTML(EMPTY_SOURCES, elem_id="sources", js_on_load=None)
                    experiences = gr.HTML(EMPTY_EXPERIENCES, elem_id="experiences", js_on_load=None)
        inputs = [question, chatbot, history, ids, doc_type, echelle, departement, theme]
        outputs = [question, chatbot, history, ids, sources, experiences]
        send.click(respond, inputs, outputs, api_visibility="private")
        question.submit(respond, inputs, outputs, api_visibility="private")
        for reset in (new.click, chatbot.clear):  # the button, and the chat's own « Effacer » icon
            reset(new_conversation, None, [chatbot, history, ids, question, sources, experiences, feedback_status],
                  api_visibility="private")
        chatbot.like(on_like, [ids], feedback_status, api_visibility="private")
        send_comment.click(on_comment, [comment, ids], [comment, feedback_status], api_visibility="private")
        with gr.Tab("Espace équipe"):
            _staff_view(service)

        def refresh_filters(*current: str | None) -> tuple:
            fresh = service.filter_choices()  # the corpus may have changed (Documents tab)
            keys = ("doc_type", "echelle", "departement", "theme")
            return tuple(gr.update(choices=fresh[key], value=value if value in {v for _, v in fresh[key]} else None)
                         for key, value in zip(keys, current, strict=True))

        filters = [doc_type, echelle, departement, theme]
        chat_tab.select(refresh_filters, filters, filters, api_visibility="private")
    return demo


def _staff_view(service: Service) -> None:
    if not service.settings.staff_password:
        gr.Markdown("Espace équipe désactivé : définissez `ASSISTANT_STAFF_PASSWORD` pour l'ouvrir.")
        return
    password = gr.Textbox(label="Mot de passe de l'équipe", type="password")
    login = gr.Button("Ouvrir l'espace équipe")
    message = gr.Markdown()
    token = gr.State("")  # the staff session, checked on the server by every staff handler
    with gr.Column(visible=False) as panel, gr.Tabs():
        with gr.Tab("Avis et évaluations"):
            summary = gr.Markdown()
            feedback = gr.Dataframe(headers=["Date", "Avis", "Commentaire", "Canal", "Question", "Statut", "Réponse"],
                                    label="Avis sur les réponses", interactive=False, wrap=True)
            gaps = gr.Dataframe(headers=["Question", "Nombre de fois", "Dernière fois"],
                                label="Lacunes du corpus (questions restées sans réponse)", interactive=False, wrap=True)
            gr.Markdown("[Exporter les avis en CSV](staff/feedback.csv) · [Statistiques d'usage (graphiques, "
                        "export CSV)](staff/analytics) (le navigateur demande le mot de passe ; nom d'utilisateur libre).")
            refresh = gr.Button("Actualiser")
            _eval_view(service, token)
        with gr.Tab("Documents") as documents_tab:
            refresh_documents = _documents_view(service, token)
        documents_tab.select(*refresh_documents, api_visibility="private")

    def tables() -> tuple:
        counts = service.store.counts()
        rows = [[r["ts"], {"up": "👍 utile", "down": "👎 pas utile"}.get(r["rating"] or "", "—"), r["comment"] or "",
                 r["channel"], r["question"], r["status"], r["answer"][:300]] for r in service.store.feedback_rows()]
        lacunes = [[g["question"], g["count"], g["last"]] for g in service.store.gaps()]
        text = (f"{counts['answers']} réponses servies · {counts['up']} avis positifs · {counts['down']} avis négatifs "
                f"· {len(lacunes)} lacunes du corpus")
        return text, rows, lacunes

    def open_staff(given: str, request: gr.Request) -> tuple:
        client = _client(request)
        if service.login_throttle.locked(client):
            return LOGIN_LOCKED, gr.update(visible=False), "", [], [], "", ""
        if not password_ok(given, service.settings.staff_password):
            service.login_throttle.failed(client)
            return "Mot de passe incorrect.", gr.update(visible=False), "", [], [], "", ""
        return ("", gr.update(visible=True), *tables(), service.staff_sessions.open(), "")

    def refresh_staff(session: str) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, gr.update(visible=False), "", [], []
        return ("", gr.update(visible=True), *tables())

    outputs = [message, panel, summary, feedback, gaps]
    for trigger in (login.click, password.submit):
        trigger(open_staff, [password], [*outputs, token, password], api_visibility="private").then(*refresh_documents)
    refresh.click(refresh_staff, [token], outputs, api_visibility="private")


def downloadable(path: str | Path) -> str:
    """A copy of a report in the UI's private folder: the only place Gradio serves files from."""
    source = Path(path)
    target = Path(tempfile.gettempdir()) / "telechargements" / secrets.token_hex(8) / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return str(target)


DOCUMENT_HEADERS = ["Fichier", "Statut", "Titre", "Type", "Format", "Pages", "Passages", "OCR (pages)", "Échelle",
                    "Département", "Thèmes", "Fictif", "Raison"]
STATUS_LABELS = {"indexed": "indexé", "pending": "en attente", "failed": "en échec"}


def document_rows(documents: list[dict[str, Any]]) -> list[list[Any]]:
    return [[d["source"], STATUS_LABELS.get(d["status"], d["status"]), d["title"], d["doc_type"], d["format"],
             d["pages"] or "", d["passages"], ", ".join(map(str, d["ocr_pages"])), ", ".join(d["echelle"]),
             d["departement"] or "", ", ".join(d["themes"]), "exemple fictif" if d["illustrative"] else "",
             d["reason"] or ""] for d in documents]


def ingest_text(state: dict[str, Any]) -> str:
    text = esc(state.get("error") or state.get("message") or "")
    return text


def passages_html(passages: list[dict[str, Any]]) -> str:
    if not passages:
        return "<p>Aucun passage indexé pour ce document (pas encore indexé, ou en échec).</p>"
    items = "".join(
        f'<li><p class="meta">{"Page " + str(p["page"]) + " · " if p["page"] else ""}{esc(p["section"] or "")}'
        f'{" " + OCR_MARK if p["ocr"] else ""}</p><blockquote>{esc(p["text"])}</blockquote></li>' for p in passages)
    return f'<div class="sources"><h3>Passages ({len(passages)})</h3><ol>{items}</ol></div>'


def _documents_view(service: Service, token: Any) -> tuple:
    """The « Documents » tab: list, upload, metadata (sidecar), passages preview, delete, and the
    background ingest's progress. Returns the (fn, inputs, outputs) that refresh it after login."""

    from assistant.documents import DocumentError
    from assistant.types import DOC_TYPES, ECHELLES

    docs = service.documents
    gr.Markdown("Déposez des fiches, rapports ou entretiens (Markdown, texte, PDF — même scanné —, Word ; "
                f"{service.settings.max_file_mb:g} Mo au plus par fichier). Chaque changement relance l'indexation "
                "en arrière-plan ; l'assistant continue de répondre avec l'index précédent jusqu'à la fin.")
    progress = gr.Markdown(elem_id="documents-progress")
    table = gr.Dataframe(headers=DOCUMENT_HEADERS, label="Documents du corpus", interactive=False, wrap=True,
                         elem_id="documents-table")
    with gr.Row():
        files = gr.File(label="Fichiers à déposer", file_count="multiple", type="filepath",
                        file_types=[".md", ".txt", ".pdf", ".docx"], elem_id="documents-upload")
        with gr.Column():
            folder = gr.Dropdown(docs.folders(), value="depots", label="Dossier du corpus", allow_custom_value=True)
            replace = gr.Checkbox(label="Remplacer les fichiers existants", value=False)
            send = gr.Button("Déposer et indexer", variant="primary", elem_id="documents-send")
    upload_message = gr.Markdown(elem_id="documents-upload-message")
    gr.Markdown("### Un document")
    choice = gr.Dropdown([], label="Document", elem_id="documents-choice")
    with gr.Row():
        m_type = gr.Dropdown(list(DOC_TYPES), label="Type", value=None)
        m_title = gr.Textbox(label="Titre")
        m_territory = gr.Textbox(label="Territoire")
    with gr.Row():
        m_departement = gr.Textbox(label="Département", elem_id="meta-departement")
        m_echelle = gr.Dropdown(list(ECHELLES), label="Échelle", multiselect=True, elem_id="meta-echelle")
        m_themes = gr.Textbox(label="Thèmes (séparés par des virgules)")
    with gr.Row():
        m_date = gr.Textbox(label="Date (AAAA-MM)")
        m_statut = gr.Textbox(label="Statut (« exemple fictif » pour un texte inventé)")
    with gr.Row():
        save = gr.Button("Enregistrer les métadonnées", elem_id="documents-save")
        confirm = gr.Checkbox(label="Je confirme la suppression", value=False)
        delete = gr.Button("Supprimer ce document", variant="stop", elem_id="documents-delete")
    meta_message = gr.Markdown(elem_id="documents-meta-message")
    preview = gr.HTML("", elem_id="documents-passages")
    timer = gr.Timer(1.0, active=False)
    fields = [m_type, m_title, m_territory, m_departement, m_echelle, m_themes, m_date, m_statut]

    def refresh(session: str, current: str | None = None) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, gr.update(), gr.update(), gr.Timer(active=False)
        state = service.documents_state()
        sources = [d["source"] for d in state["documents"]]
        value = current if current in sources else None
        return (ingest_text(state["ingest"]), document_rows(state["documents"]),
                gr.update(choices=sources, value=value), gr.Timer(active=bool(state["ingest"]["running"])))

    def do_upload(session: str, paths: list[str] | None, where: str | None, again: bool) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, None, gr.Timer(active=False)
        if not paths:
            return "Choisissez d'abord un ou plusieurs fichiers.", None, gr.Timer(active=False)
        items = [(Path(p).name, Path(p).read_bytes()) for p in paths]
        results = service.upload(items, folder=where or None, replace=bool(again))
        text = "\n".join(("- " if r["ok"] else "- **Refusé** : ") + esc(r["message"]) for r in results)
        return text, None, gr.Timer(active=True)

    def select(session: str, source: str | None) -> tuple:
        empty = (None, "", "", "", [], "", "", "")
        if not service.staff_sessions.valid(session) or not source:
            return (*empty, "", STAFF_REFUSED if not service.staff_sessions.valid(session) else "")
        try:
            info = next(d for d in docs.list() if d.source == source)
            side = docs.metadata(source)
            preview_html = passages_html(docs.passages(source))
        except (DocumentError, StopIteration):
            return (*empty, "", "Document introuvable : actualisez la liste.")
        note = ("" if info.editable else "Ce fichier a son bloc de métadonnées en tête (entre « --- ») : "
                "modifiez-le dans le fichier lui-même.")
        values = (side.get("type") or info.doc_type, side.get("titre") or info.title, side.get("territoire") or "",
                  side.get("departement") or info.departement or "", side.get("echelle") or info.echelle,
                  ", ".join(side.get("themes") or info.themes), str(side.get("date") or ""), str(side.get("statut") or ""))
        return (*values, preview_html, note)

    def save_meta(session: str, source: str | None, *values: Any) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, gr.Timer(active=False)
        if not source:
            return "Choisissez d'abord un document.", gr.Timer(active=False)
        keys = ("type", "titre", "territoire", "departement", "echelle", "themes", "date", "statut")
        try:
            service.set_document_metadata(source, dict(zip(keys, values, strict=True)))
        except DocumentError as exc:
            return "**Refusé** : " + esc(str(exc)), gr.Timer(active=False)
        return f"Métadonnées de {esc(source)} enregistrées ; indexation en cours.", gr.Timer(active=True)

    def do_delete(session: str, source: str | None, sure: bool) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, gr.Timer(active=False), False
        if not source or not sure:
            return "Choisissez un document et cochez « Je confirme la suppression ».", gr.Timer(active=False), False
        try:
            service.delete_document(source)
        except DocumentError as exc:
            return "**Refusé** : " + esc(str(exc)), gr.Timer(active=False), False
        return f"{esc(source)} supprimé ; ses passages sont retirés de l'index.", gr.Timer(active=True), False

    outputs = [progress, table, choice, timer]
    send.click(do_upload, [token, files, folder, replace], [upload_message, files, timer],
               api_visibility="private").then(refresh, [token, choice], outputs, api_visibility="private")
    timer.tick(refresh, [token, choice], outputs, api_visibility="private")
    choice.change(select, [token, choice], [*fields, preview, meta_message], api_visibility="private")
    save.click(save_meta, [token, choice, *fields], [meta_message, timer], api_visibility="private")
    delete.click(do_delete, [token, choice, confirm], [meta_message, timer, confirm],
                 api_visibility="private").then(refresh, [token, choice], outputs, api_visibility="private")
    return refresh, [token, choice], outputs


def eval_status_text(state: dict[str, Any] | None) -> str:
    """The staff tab's progress line for the last evaluation (French)."""
    if state is None:
        return "Aucune évaluation lancée depuis le démarrage du serveur."
    if state["error"]:
        return esc(state["error"])
    if state["running"]:
        return f"Évaluation en cours : {state['done']} / {state['total'] or '…'} questions ({esc(state['set'])})."
    return f"Évaluation terminée ({esc(state['set'])}) : {esc(state['summary'])}. Rapport ci-dessous."


def _eval_view(service: Service, token: gr.State) -> None:
    """Pick or upload a question set, run it in the background, download the report; lacunes -> gold."""
    with gr.Accordion("Évaluations (qualité des réponses)", open=False):
        gr.Markdown("Lancez un jeu de questions de référence (`evals/gold/`) ou déposez le vôtre : CSV avec les "
                    "colonnes `question,expected_status,gold_sources,key_facts` (listes séparées par `;`), ou YAML / "
                    "JSONL au format de `evals/README.md`. Le rapport compare aux chiffres de référence.")
        with gr.Row():
            chosen = gr.Dropdown(service.eval_sets(), label="Jeu de questions", value=None)
            upload = gr.File(label="… ou déposer un fichier", file_types=[".csv", ".yaml", ".yml", ".jsonl"],
                             type="filepath")
        run = gr.Button("Lancer l'évaluation", variant="primary")
        status = gr.Markdown(eval_status_text(service.eval_state()))
        files = gr.File(label="Rapport (HTML à ouvrir dans le navigateur, JSON)", file_count="multiple",
                        interactive=False)
        timer = gr.Timer(2.0, active=False)
        to_gold = gr.Button("Transformer les lacunes du corpus en questions de référence")
        gold_message = gr.Markdown()
        gold_file = gr.File(label="Questions à compléter", interactive=False)

    def start(name: str | None, path: str | None, session: str) -> tuple:
        from pathlib import Path

        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, gr.Timer(active=False), None
        try:
            service.start_eval(name, Path(path) if path else None)
        except QuestionError as exc:
            return esc(str(exc)), gr.Timer(active=False), None
        return eval_status_text(service.eval_state()), gr.Timer(active=True), None

    def poll(session: str) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, gr.Timer(active=False), None
        state = service.eval_state()
        running = bool(state and state["running"])
        reports = [downloadable(state["html"]), downloadable(state["json"])] if state and state["html"] else None
        return eval_status_text(state), gr.Timer(active=running), reports

    def export_gaps(session: str) -> tuple:
        if not service.staff_sessions.valid(session):
            return STAFF_REFUSED, None
        added, path = service.gaps_to_gold()
        text = (f"{added} question(s) ajoutée(s) à `{esc(path)}` : complétez `expected_status`, `kind`, "
                "`gold_sources` et `key_facts`, puis régénérez les jeux (`scripts/build_gold.py`).")
        return text, downloadable(path) if path.exists() else None

    run.click(start, [chosen, upload, token], [status, timer, files], api_visibility="private")
    timer.tick(poll, [token], [status, timer, files], api_visibility="private")
    to_gold.click(export_gaps, [token], [gold_message, gold_file], api_visibility="private")


def private_temp_dir(settings: Any) -> Path:
    """The folder of the UI's uploads and temporary files: ``ASSISTANT_WEB_TEMP_DIR`` or a new
    private folder (mode 700). Gradio may serve files from it and from nowhere else."""
    if settings.web_temp_dir:
        path = Path(settings.web_temp_dir).resolve()
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="assistant-web-")).resolve()
    path.chmod(0o700)
    return path


def blocked_paths(settings: Any, temp: Path) -> list[str]:
    """Folders Gradio must never read a file from, whatever a client sends: the project, the
    corpus, the index, the models, the user's home and the system folders (SECURITY.md)."""
    from assistant.settings import PROJECT_ROOT

    candidates = [Path.cwd(), PROJECT_ROOT, settings.corpus_dir, settings.index_dir, settings.feedback_path.parent,
                  settings.models_dir, Path.home(), *map(Path, ("/etc", "/proc", "/sys", "/dev", "/root", "/home",
                                                             "/var", "/usr", "/boot", "/run", "/srv", "/opt"))]
    out: list[str] = []
    for path in candidates:
        resolved = Path(path).resolve()
        if temp.is_relative_to(resolved):
            continue  # an ancestor of the private folder (the folders inside it stay blocked)
        if str(resolved) not in out:
            out.append(str(resolved))
    return out


def mount_ui(app: FastAPI, service: Service) -> FastAPI:
    """Mount the Gradio UI at "/" (no analytics, no share link, no API page, no SSR/Node server),
    with Gradio's own file checks active: uploads and temporary files in a private folder, nothing
    served from elsewhere, uploads limited to ``ASSISTANT_MAX_UPLOAD_MB`` (SECURITY.md)."""
    settings = service.settings
    temp = private_temp_dir(settings)
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(temp / "examples")
    tempfile.tempdir = str(temp)  # Gradio also accepts files of the system temp folder: make it ours
    app.state.web_temp_dir = temp
    demo = build_ui(service)
    demo.queue(default_concurrency_limit=8)
    mounted = gr.mount_gradio_app(app, demo, path="/", footer_links=[], run_history=False, ssr_mode=False,
                                  mcp_server=False, css=CSS, show_error=False, allowed_paths=[],
                                  blocked_paths=blocked_paths(settings, temp),
                                  max_file_size=int(settings.max_upload_mb * 2**20),
                                  head='<meta name="description" content="Assistant du dialogue territorial (PQN-A)">')
    # gr.mount_gradio_app never marks the Blocks as launched, and Gradio skips its allowed-path
    # checks until it is: without this line any server file could be read (SECURITY.md)
    demo.has_launched = True
    return mounted
