// Live updates for the rainbow dashboard: server-sent events from /events.
// Everything user-provided is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  if (!page || page === "signin") return;

  const STATES = ["depend", "assigned", "held", "leased", "accepted", "submitted", "running", "completed", "failed", "cancelled", "unknown"];
  const COLORS = {
    assigned: "#8e8e8e", held: "#c7b299", leased: "#b08d00", accepted: "#6a5acd", submitted: "#1f77b4", running: "#2ca02c",
    completed: "#17becf", failed: "#d62728", cancelled: "#7f3f00", unknown: "#e377c2",
  };
  const SVG = "http://www.w3.org/2000/svg";
  const history = [];  // [{time, totals}] for the chart of jobs by state
  const HISTORY = 150;

  const live = document.getElementById("live");
  const jobId = body.dataset.job;
  const params = new URLSearchParams();
  if (jobId) params.set("job", jobId);
  if (page === "overview") params.set("view", "counts");
  if (body.dataset.since) params.set("since", body.dataset.since);  // the stream starts where the page was read
  const source = new EventSource("/events?" + params.toString());
  source.onopen = function () { if (live) live.classList.add("on"); };
  source.onerror = function () { if (live) live.classList.remove("on"); };
  source.addEventListener("job", function (message) { onJob(JSON.parse(message.data)); });
  source.addEventListener("states", function (message) { onStates(JSON.parse(message.data)); });
  source.addEventListener("counts", function (message) { onCounts(JSON.parse(message.data)); });

  // -- jobs ----------------------------------------------------------------
  let refreshTimer = null;

  function setState(cell, state) {
    cell.textContent = state;
    cell.className = "state " + state;
  }

  // The job table: the newest state of every job that changed; new jobs refresh the first page.
  function onStates(states) {
    for (const [id, state] of Object.entries(states)) {
      const row = document.querySelector('tr[data-job="' + Number(id) + '"]');
      if (row) {
        setState(row.querySelector("[data-state]"), state);
        // A workflow's step moved: draw the DAG again (a released step now has its cluster).
        if (page === "workflow") scheduleRefresh();
      } else if (body.dataset.firstPage === "yes") {
        scheduleRefresh();
      }
    }
  }

  function onJob(event) {
    if (page === "job" && String(event.job) === jobId) {
      const timeline = document.getElementById("timeline");
      const shown = Array.from(timeline.querySelectorAll("tr[data-seq]"), function (tr) { return Number(tr.dataset.seq); });
      if (shown.length && event.seq <= Math.max(...shown)) return;  // already on the page when it was read
      setState(document.getElementById("job-state"), event.state);
      const tr = document.createElement("tr");
      tr.dataset.seq = String(event.seq);
      for (const [text, cls] of [[when(event.time), ""], [event.state, "state " + event.state], [event.message, ""]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      timeline.appendChild(tr);
      if (["completed", "failed", "cancelled"].includes(event.state)) {
        const form = document.querySelector("form.cancel");
        if (form) form.remove();
      }
      if (event.state === "accepted" || event.state === "submitted" || event.state === "running") {
        refreshFacts();
      }
    }
  }

  // New jobs on the first page: fetch the rows again (the server filters and orders them).
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      const url = new URL(window.location.href);
      url.searchParams.set("fragment", "1");
      fetch(url, { credentials: "same-origin" }).then(function (response) {
        if (!response.ok) return;
        return response.text().then(function (html) {
          const template = document.createElement("template");
          template.innerHTML = html;  // rendered by the server with every value escaped
          document.getElementById("job-rows").replaceChildren(template.content);
        });
      });
    }, 300);
  }

  // The local id and exit code arrive with reports: read them from the job page again.
  function refreshFacts() {
    fetch(window.location.pathname, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) return;
      return response.text().then(function (html) {
        const doc = new DOMParser().parseFromString(html, "text/html");
        for (const id of ["local-id", "exit-code"]) {
          const fresh = doc.getElementById(id);
          if (fresh) document.getElementById(id).textContent = fresh.textContent;
        }
      });
    });
  }

  function when(seconds) {
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // -- charts --------------------------------------------------------------
  function onCounts(data) {
    for (const state of STATES) {
      const cell = document.querySelector('[data-total="' + state + '"]');
      if (cell) cell.textContent = String(data.totals[state] || 0);
    }
    for (const [name, states] of Object.entries(data.clusters || {})) {
      const row = document.querySelector('#clusters tr[data-cluster="' + CSS.escape(name) + '"] td.counts');
      if (row) row.replaceChildren(...countLinks(name, states));
    }
    history.push({ time: data.time, totals: data.totals });
    if (history.length > HISTORY) history.shift();
    drawStates();
    drawLoad(data.load);
  }

  function countLinks(cluster, states) {
    const links = [];
    for (const state of STATES) {
      if (!states[state]) continue;
      const a = document.createElement("a");
      a.className = "state " + state;
      a.href = "/jobs?" + new URLSearchParams({ cluster: cluster, state: state }).toString();
      a.textContent = state + " " + states[state];
      links.push(a, document.createTextNode(" "));
    }
    return links;
  }

  function svgElement(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function drawStates() {
    const svg = document.getElementById("chart-states");
    if (!svg) return;
    const width = 600, height = 200, left = 40, bottom = 20;
    let top = 1;
    for (const point of history) for (const state of STATES) top = Math.max(top, point.totals[state] || 0);
    const nodes = [svgElement("text", { x: 2, y: 12, class: "axis" }, String(top)),
                   svgElement("text", { x: 2, y: height - bottom, class: "axis" }, "0"),
                   svgElement("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" })];
    const step = (width - left) / Math.max(HISTORY - 1, 1);
    const legend = document.getElementById("legend-states");
    const shown = [];
    for (const state of STATES) {
      if (!history.some(function (p) { return p.totals[state]; })) continue;
      shown.push(state);
      const points = history.map(function (p, i) {
        const y = height - bottom - (p.totals[state] || 0) / top * (height - bottom - 10);
        return (left + i * step).toFixed(1) + "," + y.toFixed(1);
      });
      nodes.push(svgElement("polyline", { points: points.join(" "), fill: "none", stroke: COLORS[state], "stroke-width": 2,
                                          "data-series": state }));
    }
    svg.replaceChildren(...nodes);
    if (legend) {
      legend.replaceChildren(...shown.map(function (state) {
        const span = document.createElement("span");
        span.className = "state " + state;
        span.textContent = state;
        return span;
      }));
    }
  }

  function drawLoad(load) {
    const svg = document.getElementById("chart-load");
    if (!svg || !load) return;
    const names = Object.keys(load).sort();
    const width = 600, label = 120, barHeight = 16, gap = 6;
    svg.setAttribute("viewBox", "0 0 " + width + " " + Math.max(40, names.length * (barHeight + gap) + 10));
    let top = 1;
    for (const name of names) top = Math.max(top, load[name].waiting + load[name].running);
    const nodes = [];
    names.forEach(function (name, i) {
      const y = 5 + i * (barHeight + gap);
      const waiting = load[name].waiting / top * (width - label - 60);
      const running = load[name].running / top * (width - label - 60);
      nodes.push(svgElement("text", { x: 0, y: y + 12, class: "axis" }, name));
      nodes.push(svgElement("rect", { x: label, y: y, width: waiting.toFixed(1), height: barHeight, fill: COLORS.assigned,
                                      "data-cluster": name, "data-kind": "waiting" }));
      nodes.push(svgElement("rect", { x: (label + waiting).toFixed(1), y: y, width: running.toFixed(1), height: barHeight,
                                      fill: COLORS.running, "data-cluster": name, "data-kind": "running" }));
      nodes.push(svgElement("text", { x: (label + waiting + running + 4).toFixed(1), y: y + 12, class: "axis" },
                            load[name].waiting + " · " + load[name].running));
    });
    svg.replaceChildren(...nodes);
  }
})();
