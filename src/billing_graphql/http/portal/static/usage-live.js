// The billing portal's usage bars, kept live (graphql-transport-ws on /graphql, usageUpdated).
// Without JavaScript the page shows the values it was rendered with; with it, each accepted
// recordUsage moves the bars without a reload. The socket authenticates with the page's portal
// link ({"portalToken": ...}): it may read this organization's usage and nothing else, and the
// server closes it (4403) when the link ends. No reconnect after 4401/4403 (the link is over).
(function () {
  "use strict";
  var DOCUMENT = "subscription PortalUsage { usageUpdated { metric { code } used limit } }";
  var section = document.querySelector("[data-live-usage]");
  if (!section || !window.WebSocket) { return; }
  var token = section.getAttribute("data-live-usage");
  var language = document.documentElement.lang || "en";
  var numbers = new Intl.NumberFormat(language);
  var delay = 1000;

  function update(change) {
    var bar = section.querySelector('[data-metric="' + CSS.escape(change.metric.code) + '"]');
    if (!bar) { return; }
    var used = Number(change.used);
    var limit = change.limit === null ? null : Number(change.limit);
    var over = limit !== null && used > limit;
    // the sentence as the page rendered it, in its language (data-text), with the new numbers
    var text = bar.getAttribute("data-text").replace("%(used)s", numbers.format(used));
    if (limit !== null) { text = text.replace("%(limit)s", numbers.format(limit)); }
    bar.querySelector("[data-usage]").textContent = text + (over ? bar.getAttribute("data-over-text") : "");
    var meter = bar.querySelector('[role="progressbar"]');
    if (!meter || limit === null) { return; }
    var percent = limit <= 0 ? 100 : Math.min(100, Math.round(used * 100 / limit));
    meter.setAttribute("aria-valuenow", String(percent));
    meter.classList.toggle("over", over);
    var fill = meter.querySelector("span");
    if (fill) { fill.style.width = percent + "%"; }
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql";
    var socket = new WebSocket(url, "graphql-transport-ws");
    socket.onopen = function () {
      socket.send(JSON.stringify({type: "connection_init", payload: {portalToken: token}}));
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        delay = 1000;
        socket.send(JSON.stringify({id: "usage", type: "subscribe", payload: {query: DOCUMENT}}));
        section.setAttribute("data-live-state", "subscribed");
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({type: "pong"}));
      } else if (message.type === "next" && message.payload && message.payload.data) {
        update(message.payload.data.usageUpdated);
        section.setAttribute("data-live-updates", String(Number(section.getAttribute("data-live-updates") || 0) + 1));
      }
    };
    socket.onclose = function (event) {
      section.setAttribute("data-live-state", "closed " + event.code);
      if (event.code === 4401 || event.code === 4403) { return; }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  connect();
})();
