/* Compact chat of the PQN-A widget: streams api/ask/stream (same origin), renders everything as
   text (never innerHTML), numbered citations open the passage and the source (PDF at its page),
   compact filters, follow-up questions, conversation kept for the tab (sessionStorage), thumbs
   up/down + comment. Options from embed.js arrive in the URL (title, greeting, color, filters). */
(function () {
  "use strict";
  var root = document.querySelector(".widget");
  var maxChars = parseInt(root.getAttribute("data-max-chars"), 10) || 500;
  var log = document.getElementById("log");
  var form = document.getElementById("ask");
  var q = document.getElementById("q");
  var send = document.getElementById("send");
  var examples = document.getElementById("examples");
  var status = document.getElementById("status");
  var history = [];
  var count = 0;
  var embedded = window.parent !== window;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fictif() { return el("span", { "class": "fictif" }, "exemple fictif"); }

  function sourceHref(source, page) {
    return "sources/" + source.split("/").map(encodeURIComponent).join("/") + (page ? "#page=" + page : "");
  }

  /* Inline text: **bold**, *italic* and [n] citation markers; everything else stays text. */
  function inline(parent, text, answerNo) {
    var re = /\*\*([^*]+)\*\*|\*([^*]+)\*|\[(\d+)\]/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1]) parent.appendChild(el("strong", {}, m[1]));
      else if (m[2]) parent.appendChild(el("em", {}, m[2]));
      else {
        var n = m[3];
        var b = el("button", { type: "button", "class": "cite", "data-target": "src-" + answerNo + "-" + n,
                               "aria-label": "Voir la source " + n }, "[" + n + "]");
        parent.appendChild(b);
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  /* Minimal Markdown: paragraphs and "- " lists. */
  function renderText(text, answerNo) {
    var box = el("div", { "class": "text" }), list = null;
    text.split("\n").forEach(function (line) {
      var item = /^\s*[-*]\s+(.*)$/.exec(line);
      if (item) {
        if (!list) { list = el("ul"); box.appendChild(list); }
        var li = el("li"); inline(li, item[1], answerNo); list.appendChild(li);
      } else if (line.trim()) {
        list = null;
        var p = el("p"); inline(p, line.replace(/^#+\s*/, ""), answerNo); box.appendChild(p);
      } else { list = null; }
    });
    return box;
  }

  function renderSources(citations, answerNo) {
    var box = el("div", { "class": "sources" });
    box.appendChild(el("h2", {}, "Sources"));
    var ol = el("ol");
    citations.forEach(function (c) {
      var li = el("li", { id: "src-" + answerNo + "-" + c.n });
      var det = el("details");
      var sum = el("summary", {}, "[" + c.n + "] " + c.title + " ");
      if (c.illustrative) sum.appendChild(fictif());
      det.appendChild(sum);
      var where = "Fichier : " + c.source + (c.section ? " · Section : " + c.section : "") + (c.page ? " · Page : " + c.page : "") +
        (c.ocr ? " · texte reconnu (OCR)" : "");
      det.appendChild(el("p", { "class": "meta" }, where));
      det.appendChild(el("blockquote", {}, c.text));
      det.appendChild(el("a", { href: sourceHref(c.source, c.page), target: "_blank", rel: "noopener" },
                         "Ouvrir le document [" + c.n + "]"));
      li.appendChild(det); ol.appendChild(li);
    });
    box.appendChild(ol);
    return box;
  }

  function renderExperiences(experiences) {
    var box = el("div", { "class": "experiences" });
    box.appendChild(el("h2", {}, "Expériences d'autres territoires"));
    var ul = el("ul");
    experiences.forEach(function (e) {
      var li = el("li"); li.appendChild(el("strong", {}, e.title + " "));
      if (e.illustrative) li.appendChild(fictif());
      li.appendChild(el("p", { "class": "meta" }, (e.territory ? e.territory + " — " : "") + e.why));
      ul.appendChild(li);
    });
    box.appendChild(ul);
    return box;
  }

  function postFeedback(answerId, payload, done) {
    payload.answer_id = answerId;
    fetch("api/feedback", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) })
      .then(function (r) { return r.json().then(function (d) { done(r.ok ? "Merci pour votre retour !" : d.detail); }); })
      .catch(function () { done("Votre retour n'a pas pu être envoyé."); });
  }

  function renderFeedback(answerId) {
    var box = el("div", { "class": "feedback", role: "group", "aria-label": "Votre avis sur cette réponse" });
    box.appendChild(el("span", {}, "Cette réponse vous a-t-elle aidé ?"));
    var up = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Oui, réponse utile" }, "Oui");
    var down = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Non, réponse pas utile" }, "Non");
    var label = el("label", { "for": "comment-" + answerId }, "Un commentaire ? (facultatif)");
    var comment = el("textarea", { id: "comment-" + answerId, rows: "2", maxlength: "2000" });
    var sendComment = el("button", { type: "button" }, "Envoyer le commentaire");
    var said = el("span", { "class": "said", role: "status" });
    [label, comment, sendComment].forEach(function (n) { n.hidden = true; });
    function rate(value, button, other) {
      button.setAttribute("aria-pressed", "true"); other.setAttribute("aria-pressed", "false");
      postFeedback(answerId, { rating: value }, function (msg) { said.textContent = msg; });
      [label, comment, sendComment].forEach(function (n) { n.hidden = false; });
    }
    up.addEventListener("click", function () { rate("up", up, down); });
    down.addEventListener("click", function () { rate("down", down, up); });
    sendComment.addEventListener("click", function () {
      if (!comment.value.trim()) { said.textContent = "Le commentaire est vide."; return; }
      postFeedback(answerId, { comment: comment.value }, function (msg) { said.textContent = msg; comment.value = ""; });
    });
    [up, down, said, label, comment, sendComment].forEach(function (n) { box.appendChild(n); });
    return box;
  }

  function renderAnswer(data, answerId) {
    count += 1;
    var art = el("article", { "class": "msg assistant", "aria-label": "Réponse " + count });
    if (data.standalone_question && data.standalone_question !== data.question) {
      art.appendChild(el("p", { "class": "meta" }, "Question comprise : " + data.standalone_question));
    }
    if (data.status === "partial") {
      art.appendChild(el("p", { "class": "uncertain", role: "note" }, "Réponse incertaine : passages les plus proches, à vérifier"));
    }
    art.appendChild(renderText(data.answer, count));
    if (data.citations && data.citations.length) art.appendChild(renderSources(data.citations, count));
    if (data.experiences && data.experiences.length) art.appendChild(renderExperiences(data.experiences));
    if (data.follow_ups && data.follow_ups.length) art.appendChild(renderFollowUps(data.follow_ups));
    if (answerId) art.appendChild(renderFeedback(answerId));
    return art;
  }

  /* Options given by embed.js (data-* attributes of the host page's script) in the iframe's URL. */
  var params = new URLSearchParams(window.location.search);
  var STORE = "pqna-conversation";
  var filterBoxes = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
  var filtersOn = document.getElementById("filters-on");
  var title = params.get("title");
  if (title) { document.querySelector("h1").textContent = title.slice(0, 80); document.title = title.slice(0, 80); }
  var greeting = params.get("greeting");
  if (greeting) document.querySelector(".intro").textContent = greeting.slice(0, 300);
  var colour = params.get("color");
  if (colour && contrastOk(colour)) root.style.setProperty("--primary", colour);
  filterBoxes.forEach(function (box) {
    var preset = params.get(box.getAttribute("data-filter"));
    if (preset && Array.prototype.some.call(box.options, function (o) { return o.value === preset; })) box.value = preset;
    box.addEventListener("change", showFilters);
  });
  showFilters();

  /* WCAG contrast of white text on the colour: at least 4.5:1, else the default colour is kept. */
  function contrastOk(hex) {
    if (!/^#[0-9a-fA-F]{6}$/.test(hex)) return false;
    var lum = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var l = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    return 1.05 / (l + 0.05) >= 4.5;
  }

  function currentFilters() {
    var out = {};
    filterBoxes.forEach(function (box) { if (box.value) out[box.getAttribute("data-filter")] = box.value; });
    return out;
  }

  function showFilters() {
    var n = Object.keys(currentFilters()).length;
    filtersOn.textContent = n ? "(" + n + " actif" + (n > 1 ? "s" : "") + ")" : "";
  }

  /* The conversation is kept for the browser tab (sessionStorage): reloaded, it is shown again. */
  var turns = [];
  function save() {
    try { sessionStorage.setItem(STORE, JSON.stringify({ history: history, turns: turns.slice(-10) })); } catch (e) { /* private mode */ }
  }
  function restore() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (e) { saved = null; }
    if (!saved || !saved.turns || !saved.turns.length) return;
    history = saved.history || [];
    turns = saved.turns;
    turns.forEach(function (t) {
      log.appendChild(el("p", { "class": "msg user" }, t.question));
      log.appendChild(renderAnswer(t.data, t.answerId));
    });
    examples.hidden = true;
    log.scrollTop = log.scrollHeight;
  }

  function renderFollowUps(items) {
    var box = el("div", { "class": "follow-ups", role: "group", "aria-label": "Pour continuer" });
    box.appendChild(el("p", { "class": "meta" }, "Pour continuer :"));
    items.forEach(function (text) {
      var b = el("button", { type: "button", "class": "follow-up" }, text);
      b.addEventListener("click", function () { ask(text); });
      box.appendChild(b);
    });
    return box;
  }

  /* Read the server-sent events of api/ask/stream: « token » pieces, then the « answer » object. */
  function readStream(response, onToken, onAnswer) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "", final = null;
    function handle(block) {
      var name = "message", data = "";
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
      });
      if (!data) return;
      var value = JSON.parse(data);
      if (name === "token") onToken(value.text);
      else if (name === "answer") { final = value; onAnswer(value); }
      else if (name === "error") throw new Error(value.detail);
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          if (!final) throw new Error("La réponse a été interrompue : réessayez.");
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        parts.forEach(handle);
        return pump();
      });
    }
    return pump();
  }

  function ask(text) {
    text = text.trim();
    if (!text) { status.textContent = "Écrivez d'abord votre question."; q.focus(); return; }
    if (text.length > maxChars) {
      status.textContent = "Votre question est trop longue (" + text.length + " caractères ; " + maxChars + " au maximum).";
      return;
    }
    log.appendChild(el("p", { "class": "msg user" }, text));
    examples.hidden = true;  // more room for the conversation
    q.value = ""; send.disabled = true; status.textContent = "Recherche dans les documents…";
    var live = el("article", { "class": "msg assistant streaming", "aria-busy": "true", "aria-label": "Réponse en cours" });
    var liveText = el("p", { "class": "live" });
    live.appendChild(liveText);
    var received = "";
    fetch("api/ask/stream", { method: "POST", headers: { "Content-Type": "application/json" },
                              body: JSON.stringify({ question: text, history: history.slice(-3), filters: currentFilters(),
                                                     channel: "widget" }) })
      .then(function (r) {
        if (!r.ok) return r.json().then(function (d) { throw new Error(d.detail || "Erreur " + r.status); });
        log.appendChild(live);
        return readStream(r, function (piece) {
          received += piece;
          liveText.textContent = received;
          status.textContent = "Réponse en cours…";
          log.scrollTop = log.scrollHeight;
        }, function (data) {
          history.push(data.standalone_question);
          var art = renderAnswer(data, data.answer_id);
          log.replaceChild(art, live);
          turns.push({ question: text, data: data, answerId: data.answer_id });
          save();
          log.scrollTop = art.offsetTop - log.offsetTop - 40;  // show the question and the answer's start
          status.textContent = "";
        });
      })
      .catch(function (err) {
        if (live.parentNode) log.removeChild(live);
        log.appendChild(el("p", { "class": "msg error" }, err.message || "Le service ne répond pas : réessayez plus tard."));
        log.scrollTop = log.scrollHeight;
        status.textContent = "";
      })
      .then(function () { send.disabled = false; });
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); ask(q.value); });
  q.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); ask(q.value); }
  });
  log.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("button.cite") : null;
    if (!b) return;
    var item = document.getElementById(b.getAttribute("data-target"));
    if (!item) return;
    var det = item.querySelector("details");
    det.open = true;
    det.querySelector("summary").focus();
    item.scrollIntoView({ block: "nearest" });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".example"), function (b) {
    b.addEventListener("click", function () { ask(b.textContent); });
  });
  document.getElementById("new").addEventListener("click", function () {
    history = []; turns = []; count = 0; log.textContent = ""; examples.hidden = false;
    try { sessionStorage.removeItem(STORE); } catch (err) { /* private mode */ }
    status.textContent = "Nouvelle conversation."; q.focus();
  });
  var close = document.getElementById("close");
  function closeMe() { window.parent.postMessage({ type: "pqna-close" }, "*"); }
  if (embedded) {
    close.hidden = false;
    close.addEventListener("click", closeMe);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") closeMe(); });
  }
  window.addEventListener("message", function (e) {
    if (e.source === window.parent && e.data && e.data.type === "pqna-open") q.focus();
  });
  restore();
})();
