// One run's page: its events replayed from the start, then live (Server-Sent Events).
"use strict";
const section = document.getElementById("run");
const runId = section.dataset.run;
const count = {turns: 0, queries: 0, pages: 0, sources: 0};
const sources = new Map();  // source id -> {title, url}: a click names the result it opens

function bump(name) {
  count[name] += 1;
  document.getElementById(name).textContent = count[name];
}

function item(listId, text, url) {
  const li = document.createElement("li");
  if (url && /^https?:\/\//.test(url)) {
    const a = document.createElement("a");
    a.href = url;
    a.rel = "noreferrer";
    a.textContent = text;
    li.appendChild(a);
  } else {
    li.textContent = url ? text + " (" + url + ")" : text;
  }
  document.getElementById(listId).appendChild(li);
}

function setStatus(status) {
  const badge = document.getElementById("status");
  badge.textContent = status;
  badge.className = "status " + status;
  section.dataset.status = status;
  document.getElementById("cancel").hidden = !(status === "running" || status === "queued");
  document.getElementById("resume").hidden = status !== "interrupted";
}

function showReport() {
  const frame = document.getElementById("report");
  frame.src = "/runs/" + encodeURIComponent(runId) + "/report?format=html";
  frame.hidden = false;
  document.getElementById("report-pending").hidden = true;
  document.getElementById("downloads").hidden = false;
}

// the report's counts, from its `finished` event: citation marks, distinct sources cited
function showCounts(citations, sourcesCited) {
  document.getElementById("citations").textContent = citations;
  document.getElementById("sources-cited").textContent = sourcesCited;
}

function reset() {
  for (const name of Object.keys(count)) {
    count[name] = 0;
    document.getElementById(name).textContent = "0";
  }
  showCounts("–", "–");
  sources.clear();
  for (const id of ["query-list", "page-list", "source-list"]) {
    document.getElementById(id).replaceChildren();
  }
}

function follow() {
  reset();
  const events = new EventSource("/runs/" + encodeURIComponent(runId) + "/events");
  const on = (kind, handle) =>
    events.addEventListener(kind, (e) => handle(JSON.parse(e.data)));
  on("run_started", () => setStatus("running"));
  on("turn_started", () => bump("turns"));
  on("tool_called", (d) => {
    if (d.name === "search") {
      bump("queries");
      item("query-list", d.arguments.query);
    } else if (d.name === "open") {
      bump("pages");
      item("page-list", d.arguments.url, d.arguments.url);
    } else if (d.name === "click") {
      bump("pages");
      const source = sources.get(d.arguments.link_id);
      if (source) item("page-list", source.title, source.url);
      else item("page-list", "result " + d.arguments.link_id);
    }
  });
  on("source_added", (d) => {
    sources.set(d.source_id, d);
    bump("sources");
    item("source-list", d.title, d.url);
  });
  on("finished", (d) => showCounts(d.citations, d.sources_cited));
  on("run_error", (d) => { document.getElementById("error").textContent = d.message; });
  on("end", (d) => {
    events.close();
    setStatus(d.status);
    if (d.status === "finished") showReport();
  });
}

async function act(method, path) {
  const reply = await fetch("/runs/" + encodeURIComponent(runId) + path, {method});
  const body = await reply.json();
  if (!reply.ok) {
    document.getElementById("error").textContent = body.error;
    return;
  }
  document.getElementById("error").textContent = "";
  setStatus(body.status);
  if (path === "/resume") follow();
}

document.getElementById("cancel").addEventListener("click", () => act("DELETE", ""));
document.getElementById("resume").addEventListener("click", () => act("POST", "/resume"));
follow();
