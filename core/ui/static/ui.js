// homerun dashboard: the few behaviours htmx does not cover. Loaded as a file (the CSP
// allows no inline script); every untrusted string reaches the page as textContent only.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const TERMINAL = ["job.succeeded", "job.failed", "job.cancelled"];

  function taskNames() {
    const box = document.getElementById("graph");
    const names = {};
    if (box) for (const n of JSON.parse(box.dataset.graph).nodes) names[n.task_id] = n.id;
    return names;
  }

  // A live update replaces what it swaps (a jobs table body, a job's live part), and with
  // it the element the keyboard was on: remember that element (its nearest id, and its
  // href or tag) before the swap, and focus its new copy after.
  let refocus = null;
  document.addEventListener("htmx:beforeSwap", (ev) => {
    const el = document.activeElement;
    refocus = null;
    if (!el || el === document.body || !ev.detail.target.contains(el)) return;
    const host = el.closest("[id]");
    if (host) refocus = { id: host.id, href: el.getAttribute("href"), tag: el.tagName };
  });

  function restoreFocus() {
    if (refocus === null) return;
    const { id, href, tag } = refocus;
    refocus = null;
    const host = document.getElementById(id);
    if (!host) return;
    const same = (e) => (href === null || e.getAttribute("href") === href) && e.tagName === tag;
    const found = same(host) ? host : Array.from(host.querySelectorAll(tag)).find(same);
    if (found) found.focus();
  }

  // A task opened from the graph: its panel below the graph (the link's own page without
  // htmx), and the keyboard's focus moved there.
  function openTask(ev, href) {
    const panel = document.getElementById("task-panel");
    if (!panel || typeof htmx === "undefined") return;
    ev.preventDefault();
    htmx.ajax("GET", href, { target: "#task-panel", swap: "innerHTML" }).then(() => {
      panel.setAttribute("tabindex", "-1");
      panel.focus();
    });
  }

  // The task graph, laid out by dagre, drawn as SVG elements (no markup strings).
  function drawGraph() {
    const box = document.getElementById("graph");
    if (!box || !box.dataset.graph || typeof dagre === "undefined") return;
    const graph = JSON.parse(box.dataset.graph);
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 20, ranksep: 40, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of graph.nodes) {
      g.setNode(n.id, { width: 130, height: 44, status: n.status, href: n.href });
    }
    for (const [from, to] of graph.edges) g.setEdge(from, to);
    dagre.layout(g);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", g.graph().width);
    svg.setAttribute("height", g.graph().height);
    svg.setAttribute("viewBox", "0 0 " + g.graph().width + " " + g.graph().height);
    for (const e of g.edges()) {
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", g.edge(e).points.map((p) => p.x + "," + p.y).join(" "));
      line.setAttribute("class", "edge");
      svg.appendChild(line);
    }
    // Each task a link (focusable, Enter follows it): its name and its status as text, so
    // the colour is never the only sign of the status.
    for (const id of g.nodes()) {
      const n = g.node(id);
      const link = document.createElementNS(SVG, "a");
      link.setAttribute("href", n.href);
      link.setAttribute("class", "node-link");
      link.setAttribute("data-task", id);
      link.setAttribute("aria-label", "task " + id + ": " + n.status);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", n.x - n.width / 2);
      rect.setAttribute("y", n.y - n.height / 2);
      rect.setAttribute("width", n.width);
      rect.setAttribute("height", n.height);
      rect.setAttribute("rx", 6);
      rect.setAttribute("class", "node s-" + n.status);
      const name = document.createElementNS(SVG, "text");
      name.setAttribute("x", n.x);
      name.setAttribute("y", n.y - 3);
      name.setAttribute("class", "node-label");
      name.textContent = id.length > 18 ? id.slice(0, 17) + "\u2026" : id;
      const status = document.createElementNS(SVG, "text");
      status.setAttribute("x", n.x);
      status.setAttribute("y", n.y + 13);
      status.setAttribute("class", "node-status");
      status.textContent = n.status;
      link.append(rect, name, status);
      link.addEventListener("click", (ev) => openTask(ev, n.href));
      svg.appendChild(link);
    }
    box.replaceChildren(svg);
  }

  // Live log lines from the job's event stream (the stream htmx-ext-sse opened).
  const seen = new WeakSet();
  document.addEventListener("htmx:sseOpen", (ev) => {
    const source = ev.detail.source;
    const logs = document.getElementById("logs");
    if (!logs || seen.has(source)) return;
    seen.add(source);
    const ids = new Set();
    source.addEventListener("task.log", (msg) => {
      if (msg.lastEventId && ids.has(msg.lastEventId)) return;
      ids.add(msg.lastEventId);
      const line = JSON.parse(msg.data);
      const row = document.createElement("div");
      row.className = "log-line log-" + line.stream;
      const who = document.createElement("span");
      who.className = "log-task";
      who.textContent = (taskNames()[line.task_id] || line.task_id) + " ";
      const text = document.createElement("span");
      text.textContent = line.line;
      row.append(who, text);
      logs.appendChild(row);
    });
    for (const kind of TERMINAL) source.addEventListener(kind, () => source.close());
  });

  // JSON.stringify(value, null, 2), recording where each field (its path) starts and ends.
  function layOut(value) {
    const spans = {};
    let text = "";
    function walk(v, path, pad) {
      const start = text.length;
      if (Array.isArray(v) && v.length) {
        text += "[\n";
        v.forEach((x, i) => {
          text += pad + "  ";
          walk(x, path.concat([String(i)]), pad + "  ");
          text += i < v.length - 1 ? ",\n" : "\n";
        });
        text += pad + "]";
      } else if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
        const keys = Object.keys(v);
        text += "{\n";
        keys.forEach((k, i) => {
          const keyStart = text.length + pad.length + 2;
          text += pad + "  " + JSON.stringify(k) + ": ";
          walk(v[k], path.concat([k]), pad + "  ");
          spans[path.concat([k]).join("\u0000")] = [keyStart, text.length];
          text += i < keys.length - 1 ? ",\n" : "\n";
        });
        text += pad + "}";
      } else {
        text += JSON.stringify(v);
      }
      if (!(path.join("\u0000") in spans)) spans[path.join("\u0000")] = [start, text.length];
    }
    walk(value, [], "");
    return { text: text, spans: spans };
  }

  // The span of the field an error's loc names (["body", "tasks", 0, ...]), or of its
  // nearest enclosing field the body has (a missing field is reported at its parent).
  function fieldSpan(spans, loc) {
    if (!loc.length || loc[0] !== "body") return null;
    const path = loc.slice(1).map(String);
    for (let n = path.length; n > 0; n--) {
      const key = path.slice(0, n).join("\u0000");
      if (key in spans) return spans[key];
    }
    return null;
  }

  function selectSpan(box, span) {
    box.focus();
    box.setSelectionRange(span[0], span[1]);
  }

  // Submit: the JSON body to POST /ui/submit; the API's errors shown at the field.
  function wireSubmit() {
    const form = document.querySelector("form[data-submit]");
    if (!form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const errors = document.getElementById("errors");
      errors.replaceChildren();
      form.elements.body.removeAttribute("aria-invalid");
      const resp = await fetch("/ui/submit", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: form.elements.body.value,
        credentials: "same-origin",
      });
      const answer = await resp.json();
      if (resp.ok) {
        window.location.assign("/ui/jobs/" + answer.id);
        return;
      }
      const err = answer.error || { message: "HTTP " + resp.status, details: [] };
      const head = document.createElement("p");
      head.textContent = err.message;
      errors.appendChild(head);
      // The body laid out again (same JSON) so each field's place in the editor is known.
      const box = form.elements.body;
      let spans = null;
      try {
        const laid = layOut(JSON.parse(box.value));
        box.value = laid.text;
        spans = laid.spans;
      } catch (e) {
        spans = null; // not JSON: the API's message says where it stopped parsing
      }
      let first = null;
      for (const d of err.details || []) {
        const item = document.createElement("p");
        item.className = "detail";
        item.dataset.loc = d.loc.join(".");
        const span = spans && fieldSpan(spans, d.loc);
        if (span) {
          const line = box.value.slice(0, span[0]).split("\n").length;
          item.dataset.line = String(line);
          const at = document.createElement("button");
          at.type = "button";
          at.className = "at-field";
          at.textContent = "line " + line;
          at.addEventListener("click", () => selectSpan(box, span));
          item.append(at, " ");
          first = first || span;
        }
        item.append(d.loc.join(".") + ": " + d.msg);
        errors.appendChild(item);
      }
      if (first) {
        box.setAttribute("aria-invalid", "true");
        selectSpan(box, first);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawGraph();
    wireSubmit();
  });
  document.addEventListener("htmx:afterSwap", () => {
    drawGraph();
    restoreFocus();
  });
})();
