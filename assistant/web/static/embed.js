/* Launcher of the PQN-A assistant widget. One line on the host page:
   <script src="https://ASSISTANT/embed.js" data-label="Une question ?" defer></script>
   Optional: data-title (iframe title), data-position="left". Adds a button that opens the compact
   chat (ASSISTANT/widget) in an iframe; Escape or the close button closes it and focus returns to
   the button. */
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

  var css = ".pqna-launcher{position:fixed;bottom:20px;" + side + ":20px;z-index:2147483000;font:600 15px/1.2 system-ui,sans-serif;" +
    "background:#1e3a8a;color:#fff;border:2px solid #fff;border-radius:24px;padding:12px 18px;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.3)}" +
    ".pqna-launcher:hover{background:#1e40af}" +
    ".pqna-launcher:focus-visible{outline:3px solid #b45309;outline-offset:3px}" +
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

    function open() {
      if (!iframe) {
        iframe = document.createElement("iframe");
        iframe.title = title;
        iframe.src = widgetUrl;
        iframe.addEventListener("load", function () {
          iframe.contentWindow.postMessage({ type: "pqna-open" }, origin);
        });
        panel.appendChild(iframe);
      }
      panel.hidden = false;
      button.setAttribute("aria-expanded", "true");
      iframe.focus();
      if (iframe.contentWindow) iframe.contentWindow.postMessage({ type: "pqna-open" }, origin);
    }
    function close() {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
    button.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !panel.hidden) close(); });
    window.addEventListener("message", function (e) {
      if (iframe && e.origin === origin && e.source === iframe.contentWindow && e.data && e.data.type === "pqna-close") close();
    });
    document.body.appendChild(button);
    document.body.appendChild(panel);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", build);
  else build();
})();
