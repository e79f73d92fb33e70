/* Launcher of the PQN-A assistant widget. One line on the host page:
   <script src="https://ASSISTANT/embed.js" data-label="Une question ?" defer></script>
   Optional data-* attributes (README, « Le widget ») :
     data-label        text of the launcher button
     data-title        title of the chat (and of the iframe)
     data-greeting     the chat's opening sentence
     data-color        primary colour, #rrggbb; ignored (console warning) below 4.5:1 contrast with white
     data-position     "right" (default) or "left"
     data-echelle, data-departement, data-type   initial filters (a partner site presets its département)
     data-preload      "false" to load the chat only on the first click (default: loaded in the
                       background once the page has loaded, so that the first open is instant)
   Adds a button that opens the compact chat (ASSISTANT/widget) in an iframe; Escape or the close
   button closes it and focus returns to the button. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__pqnaWidget) return;
  window.__pqnaWidget = true;
  var src = new URL(script.src, document.baseURI);
  var origin = src.origin;
  var widgetUrl = new URL("widget", src).href;
  var label = script.getAttribute("data-label") || "Une question sur le dialogue territorial ?";
  var title = script.getAttribute("data-title") || "Assistant du dialogue territorial (PQN-A)";
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var colour = script.getAttribute("data-color") || "";
  var primary = "#1e3a8a";
  if (colour) {
    if (contrastOk(colour)) primary = colour;
    else if (window.console) console.warn("Assistant PQN-A : data-color « " + colour + " » ignorée (format #rrggbb et contraste d'au moins 4,5:1 avec le blanc requis).");
  }
  var options = new URLSearchParams();
  [["data-title", "title"], ["data-greeting", "greeting"], ["data-echelle", "echelle"],
   ["data-departement", "departement"], ["data-type", "doc_type"]].forEach(function (pair) {
    var value = script.getAttribute(pair[0]);
    if (value) options.set(pair[1], value);
  });
  if (primary !== "#1e3a8a") options.set("color", primary);
  if (options.toString()) widgetUrl += "?" + options.toString();
  var preload = script.getAttribute("data-preload") !== "false";

  function contrastOk(hex) {
    if (!/^#[0-9a-fA-F]{6}$/.test(hex)) return false;
    var lum = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 1.05 / (0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] + 0.05) >= 4.5;
  }

  var css = ".pqna-launcher{position:fixed;bottom:20px;" + side + ":20px;z-index:2147483000;font:600 15px/1.2 system-ui,sans-serif;" +
    "background:" + primary + ";color:#fff;border:2px solid #fff;border-radius:24px;padding:12px 18px;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.3)}" +
    ".pqna-launcher:hover{filter:brightness(1.15)}" +
    ".pqna-launcher:focus-visible,.pqna-launcher[data-returned]:focus{outline:3px solid #b45309;outline-offset:3px}" +
    ".pqna-panel{position:fixed;bottom:80px;" + side + ":20px;z-index:2147483000;width:min(400px,calc(100vw - 40px));" +
    "height:min(600px,calc(100vh - 110px));background:#fff;border:1px solid #6b7280;border-radius:10px;overflow:hidden;box-shadow:0 4px 16px rgba(0,0,0,.3)}" +
    ".pqna-panel[hidden]{display:none}.pqna-panel iframe{width:100%;height:100%;border:0}";

  function build() {
    var style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "pqna-launcher";
    button.textContent = label;
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "pqna-panel");
    var panel = document.createElement("div");
    panel.id = "pqna-panel";
    panel.className = "pqna-panel";
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", title);
    panel.hidden = true;
    var iframe = null;

    var wanted = false;  // the panel was opened before the iframe finished loading
    function load() {
      if (iframe) return;
      iframe = document.createElement("iframe");
      iframe.title = title;
      iframe.src = widgetUrl;
      iframe.addEventListener("load", function () {
        if (wanted) iframe.contentWindow.postMessage({ type: "pqna-open" }, origin);
      });
      panel.appendChild(iframe);
    }
    function open() {
      load();
      wanted = true;
      panel.hidden = false;
      button.setAttribute("aria-expanded", "true");
      iframe.focus();
      if (iframe.contentWindow) iframe.contentWindow.postMessage({ type: "pqna-open" }, origin);
    }
    function close() {
      wanted = false;
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.setAttribute("data-returned", "");  // focus given back by script: keep it visible
      button.focus();
    }
    button.addEventListener("blur", function () { button.removeAttribute("data-returned"); });
    button.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !panel.hidden) close(); });
    window.addEventListener("message", function (e) {
      if (iframe && e.origin === origin && e.source === iframe.contentWindow && e.data && e.data.type === "pqna-close") close();
    });
    document.body.appendChild(button);
    document.body.appendChild(panel);
    if (preload) {
      var later = window.requestIdleCallback || function (f) { setTimeout(f, 200); };
      if (document.readyState === "complete") later(load);
      else window.addEventListener("load", function () { later(load); });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", build);
  else build();
})();
