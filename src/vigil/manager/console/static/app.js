// vigil console: a dependency-free single page over the admin API.
// Event data comes from endpoints that may be compromised: it is only ever inserted as text
// (h() below sets textContent and attributes, never innerHTML).
"use strict";

const state = { csrf: null, user: null, endpoints: [], detections: new Map(), socket: null, liveCount: 0 };

// ---------------------------------------------------------------------------------------------
// DOM and API helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "className") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// replaceChildren() would turn a null child into the text "null": drop absent children first.
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function view(...children) {
  const root = document.getElementById("view");
  fill(root, ...children);
  document.getElementById("main").focus({ preventScroll: true });
}

class ApiError extends Error {
  constructor(message, data) { super(message); this.data = data; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) { showLogin(); throw new ApiError("session expired: log in again"); }
  let payload = null;
  try { payload = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok || (payload && payload.error)) {
    throw new ApiError((payload && payload.error) || `HTTP ${response.status}`, payload && payload.data);
  }
  return payload ? payload.data : null;
}

function critBadge(c) {
  const level = c >= 8 ? "high" : c >= 5 ? "med" : "low";
  return h("span", { className: `crit crit-${level}`, title: `criticality ${c}` }, c);
}

function fmtTime(value) {
  if (!value) return "";
  const d = new Date(value);
  return isNaN(d) ? String(value) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function eventOf(doc) { return (doc && doc.Event) || {}; }
function detectionOf(doc) { return eventOf(doc).Detection || {}; }
function eventTime(doc) { return ((eventOf(doc).System || {}).TimeCreated || {}).SystemTime || ""; }
function eventHash(doc) { return ((eventOf(doc).EdrData || {}).Event || {}).Hash || ""; }
function endpointOf(doc) { return ((eventOf(doc).EdrData || {}).Endpoint) || {}; }

function b64decode(text) {
  try {
    const bytes = Uint8Array.from(atob(text || ""), (ch) => ch.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch (_) { return text || ""; }
}

function errorBox(err) { return h("p", { className: "error", role: "alert" }, String(err.message || err)); }

function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = ""; // browsers that keep it on Escape must not reuse an earlier "ok"
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// ---------------------------------------------------------------------------------------------
// Session

function showLogin() {
  state.csrf = null;
  document.getElementById("topbar").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("view").replaceChildren();
  document.getElementById("login-key").focus();
}

async function startSession(data) {
  state.csrf = data.csrf;
  state.user = data.user;
  document.getElementById("login").hidden = true;
  document.getElementById("topbar").hidden = false;
  document.getElementById("who").textContent = data.user.identifier || "";
  connectStream();
  await route();
}

async function boot() {
  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = document.getElementById("login-key").value;
    const out = document.getElementById("login-error");
    out.textContent = "";
    const response = await fetch("/ui/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key }),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { out.textContent = data.error || `login failed (HTTP ${response.status})`; return; }
    document.getElementById("login-key").value = "";
    await startSession(data);
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": state.csrf || "" } });
    if (state.socket) state.socket.close();
    showLogin();
  });
  window.addEventListener("hashchange", () => { if (state.csrf) route(); });
  const response = await fetch("/ui/session", { credentials: "same-origin" });
  const session = response.ok ? await response.json() : {};
  if (session.user) await startSession(session);
  else showLogin();
}

// ---------------------------------------------------------------------------------------------
// Live stream of detections

function connectStream() {
  if (state.socket) state.socket.close();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/stream/detections`;
  const socket = new WebSocket(url);
  state.socket = socket;
  const live = document.getElementById("live");
  socket.onopen = () => { live.textContent = "● live"; };
  socket.onclose = () => {
    live.textContent = "○ offline";
    if (state.csrf && state.socket === socket) setTimeout(connectStream, 3000);
  };
  socket.onmessage = (message) => {
    let doc;
    try { doc = JSON.parse(message.data); } catch (_) { return; }
    state.liveCount += 1;
    rememberDetection(doc);
    document.dispatchEvent(new CustomEvent("vigil:detection", { detail: doc }));
  };
}

function rememberDetection(doc) {
  const hash = eventHash(doc);
  if (hash) state.detections.set(hash, doc);
}

// ---------------------------------------------------------------------------------------------
// Router

const routes = [
  [/^#\/fleet$/, fleetView],
  [/^#\/alerts$/, alertsView],
  [/^#\/alert\/([0-9a-f-]+)\/([0-9a-f]+)$/, alertView],
  [/^#\/endpoint\/([0-9a-f-]+)$/, endpointView],
  [/^#\/rules$/, rulesView],
  [/^#\/iocs$/, iocsView],
];

async function route() {
  const hash = location.hash || "#/fleet";
  for (const link of document.querySelectorAll("nav a")) {
    if (hash.startsWith(`#/${link.dataset.nav}`)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, render] of routes) {
    const match = hash.match(pattern);
    if (match) {
      try { await render(...match.slice(1)); } catch (err) { view(h("h1", {}, "Error"), errorBox(err)); }
      return;
    }
  }
  location.hash = "#/fleet";
}

async function loadEndpoints() {
  state.endpoints = (await api("GET", "/endpoints")) || [];
  return state.endpoints;
}

function endpointName(uuid) {
  const ep = state.endpoints.find((e) => e.uuid === uuid);
  return ep ? (ep.hostname || ep.uuid) : uuid;
}

// ---------------------------------------------------------------------------------------------
// Fleet overview

async function fleetView() {
  const [endpoints, reports] = await Promise.all([loadEndpoints(), api("GET", "/endpoints/reports")]);
  const rows = endpoints
    .map((ep) => ({ ep, report: (reports || {})[ep.uuid] || null }))
    .sort((a, b) => (b.ep.score || 0) - (a.ep.score || 0));
  const open = (uuid) => { location.hash = `#/endpoint/${uuid}`; };
  view(
    h("h1", {}, "Fleet overview"),
    h("p", { className: "muted" }, `${endpoints.length} endpoints, ranked by detection score`),
    h("table", {},
      h("caption", { className: "muted" }, "Endpoints ranked by detection score"),
      h("thead", {}, h("tr", {}, ["Score", "Hostname", "Status", "Last seen", "Criticality", "Alerts", "Top signatures"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map(({ ep, report }) => h("tr", {
        className: "clickable", tabindex: 0,
        onclick: () => open(ep.uuid), onkeydown: (e) => { if (e.key === "Enter") open(ep.uuid); },
      },
      h("td", {}, (ep.score || 0).toFixed(1)),
      h("td", {}, h("a", { href: `#/endpoint/${ep.uuid}` }, ep.hostname || ep.uuid)),
      h("td", {}, ep.status || ""),
      h("td", {}, fmtTime(ep["last-connection"])),
      h("td", {}, critBadge(ep.criticality || 0)),
      h("td", {}, report ? report["alert-count"] : 0),
      h("td", {}, report ? (report.signatures || []).slice(0, 4).map((s) => h("span", { className: "tag" }, s)) : ""),
      )))),
  );
}

// ---------------------------------------------------------------------------------------------
// Alerts

async function fetchDetections(uuids, last) {
  const lists = await Promise.all(uuids.map((uuid) =>
    api("GET", `/endpoints/${uuid}/detections?last=${encodeURIComponent(last)}&limit=1000&order=desc`).catch(() => [])));
  const all = lists.flat();
  all.forEach(rememberDetection);
  return all.sort((a, b) => eventTime(b).localeCompare(eventTime(a)));
}

function matchesFilters(doc, f) {
  const det = detectionOf(doc);
  if (f.endpoint && endpointOf(doc).UUID !== f.endpoint) return false;
  if ((det.Criticality || 0) < f.minCrit) return false;
  if (f.rule && !(det.Signature || []).some((s) => s.toLowerCase().includes(f.rule))) return false;
  if (f.technique && !(det.ATTACK || []).some((a) => (a.ID || "").toLowerCase().startsWith(f.technique))) return false;
  return true;
}

function alertRow(doc, isNew) {
  const det = detectionOf(doc);
  const ep = endpointOf(doc);
  const data = eventOf(doc).EventData || {};
  const target = `#/alert/${ep.UUID}/${eventHash(doc)}`;
  return h("tr", {
    className: isNew ? "clickable new" : "clickable", tabindex: 0,
    onclick: () => { location.hash = target; },
    onkeydown: (e) => { if (e.key === "Enter") location.hash = target; },
  },
  h("td", {}, fmtTime(eventTime(doc))),
  h("td", {}, critBadge(det.Criticality || 0)),
  h("td", {}, h("a", { href: target }, (det.Signature || []).join(", "))),
  h("td", {}, (det.ATTACK || []).map((a) => h("span", { className: "tag" }, a.ID))),
  h("td", {}, ep.Hostname || ep.UUID || ""),
  h("td", {}, data.Image || data.TargetFilename || data.QueryName || ""),
  );
}

async function alertsView() {
  const endpoints = await loadEndpoints();
  const f = { endpoint: "", minCrit: 0, rule: "", technique: "", last: "24h" };
  const tbody = h("tbody", {});
  const count = h("p", { className: "muted", role: "status" }, "");
  let docs = [];
  const render = () => {
    const shown = docs.filter((d) => matchesFilters(d, f));
    tbody.replaceChildren(...shown.map((d) => alertRow(d, false)));
    count.textContent = `${shown.length} of ${docs.length} detections in the last ${f.last}`;
  };
  const reload = async () => {
    const uuids = f.endpoint ? [f.endpoint] : endpoints.map((e) => e.uuid);
    docs = await fetchDetections(uuids, f.last);
    render();
  };
  const field = (id, labelText, control) => h("div", {}, h("label", { for: id }, labelText), control);
  const onLive = (ev) => {
    if (!document.body.contains(tbody)) { document.removeEventListener("vigil:detection", onLive); return; }
    docs.unshift(ev.detail);
    if (matchesFilters(ev.detail, f)) tbody.prepend(alertRow(ev.detail, true));
    count.textContent = `${docs.length} detections (live)`;
  };
  document.addEventListener("vigil:detection", onLive);
  view(
    h("h1", {}, "Alerts"),
    h("form", { className: "filters", onsubmit: (e) => { e.preventDefault(); reload(); } },
      field("f-last", "Time window", h("select", { id: "f-last", onchange: (e) => { f.last = e.target.value; reload(); } },
        ["1h", "24h", "168h", "720h"].map((v) => h("option", { value: v, selected: v === f.last }, v === "168h" ? "7 days" : v === "720h" ? "30 days" : v)))),
      field("f-endpoint", "Endpoint", h("select", { id: "f-endpoint", onchange: (e) => { f.endpoint = e.target.value; reload(); } },
        h("option", { value: "" }, "all endpoints"), endpoints.map((ep) => h("option", { value: ep.uuid }, ep.hostname || ep.uuid)))),
      field("f-rule", "Rule", h("input", { id: "f-rule", type: "search", placeholder: "rule name", oninput: (e) => { f.rule = e.target.value.toLowerCase(); render(); } })),
      field("f-crit", "Min. criticality", h("input", { id: "f-crit", type: "number", min: 0, max: 10, value: 0, oninput: (e) => { f.minCrit = Number(e.target.value) || 0; render(); } })),
      field("f-tech", "ATT&CK technique", h("input", { id: "f-tech", type: "search", placeholder: "T1059", oninput: (e) => { f.technique = e.target.value.toLowerCase(); render(); } })),
    ),
    count,
    h("table", {},
      h("caption", { className: "muted" }, "Detections, newest first; new ones appear live"),
      h("thead", {}, h("tr", {}, ["Time (UTC)", "Crit.", "Rules", "ATT&CK", "Endpoint", "Process / target"].map((t) => h("th", { scope: "col" }, t)))),
      tbody),
  );
  await reload();
}

// ---------------------------------------------------------------------------------------------
// Alert detail

function ancestryTree(data) {
  const chain = String(data.Ancestors || "").split("|").filter(Boolean);
  if (data.ParentImage && chain[chain.length - 1] !== data.ParentImage) chain.push(data.ParentImage);
  const current = data.Image || data.SourceImage || "";
  let node = h("li", { className: "current" }, `${current}  (pid ${data.ProcessId || "?"})`, data.CommandLine ? h("div", {}, h("code", {}, data.CommandLine)) : null);
  for (let i = chain.length - 1; i >= 0; i--) node = h("li", {}, chain[i], h("ul", {}, node));
  return h("ul", { className: "tree", "aria-label": "Process ancestry" }, node);
}

function kvTable(obj) {
  return h("dl", { className: "kv" }, Object.entries(obj || {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

async function findDetection(uuid, hash) {
  if (state.detections.has(hash)) return state.detections.get(hash);
  const docs = await fetchDetections([uuid], "720h");
  return docs.find((d) => eventHash(d) === hash) || null;
}

async function alertView(uuid, hash) {
  await loadEndpoints();
  const doc = await findDetection(uuid, hash);
  if (!doc) { view(h("h1", {}, "Alert not found"), h("p", {}, "It may be older than 30 days.")); return; }
  const det = detectionOf(doc);
  const data = eventOf(doc).EventData || {};
  const names = det.Signature || [];
  const rules = await api("GET", `/rules?name=${encodeURIComponent(`^(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})$`)}`).catch(() => []);
  const related = h("tbody", {});
  view(
    h("h1", {}, `Alert on ${endpointName(uuid)}`),
    h("div", { className: "grid" },
      h("section", { className: "card", "aria-labelledby": "a-rules" },
        h("h2", { id: "a-rules" }, "Matched rules"),
        h("p", {}, critBadge(det.Criticality || 0), " ", fmtTime(eventTime(doc))),
        h("ul", {}, names.map((name) => {
          const rule = (rules || []).find((r) => r.Name === name);
          const meta = (rule && rule.Meta) || {};
          return h("li", {}, h("strong", {}, name), meta.Description ? ` — ${meta.Description}` : "", rule ? ` (criticality ${meta.Criticality || 0})` : "");
        })),
        h("h2", {}, "ATT&CK techniques"),
        h("ul", {}, (det.ATTACK || []).concat(...(rules || []).map((r) => (r.Meta || {}).ATTACK || []))
          .filter((a, i, arr) => a && arr.findIndex((b) => b.ID === a.ID) === i)
          .map((a) => h("li", {}, h("span", { className: "tag" }, a.ID), ` ${a.Tactic || ""} ${a.Description || ""}`))),
        h("h2", {}, "Actions"),
        h("p", {}, (det.Actions || []).join(", ") || "none"),
      ),
      h("section", { className: "card", "aria-labelledby": "a-tree" },
        h("h2", { id: "a-tree" }, "Process tree"),
        ancestryTree(data)),
    ),
    h("section", { "aria-labelledby": "a-event" },
      h("h2", { id: "a-event" }, "Event"),
      kvTable(data),
      h("details", {}, h("summary", {}, "Raw JSON"), h("pre", {}, JSON.stringify(doc, null, 2)))),
    h("section", { "aria-labelledby": "a-related" },
      h("h2", { id: "a-related" }, "Related events (± 5 minutes)"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Time (UTC)", "EventID", "Image", "Details"].map((t) => h("th", { scope: "col" }, t)))), related)),
  );
  const t = eventTime(doc);
  if (t) {
    const events = await api("GET", `/endpoints/${uuid}/logs?pivot=${encodeURIComponent(t)}&delta=5m&limit=200`).catch(() => []);
    related.replaceChildren(...(events || []).map((e) => {
      const d = eventOf(e).EventData || {};
      const sameProcess = d.ProcessGuid && d.ProcessGuid === data.ProcessGuid;
      return h("tr", { className: sameProcess ? "new" : "" },
        h("td", {}, fmtTime(eventTime(e))), h("td", {}, (eventOf(e).System || {}).EventID),
        h("td", {}, d.Image || ""), h("td", {}, d.CommandLine || d.DestinationIp || d.TargetFilename || d.QueryName || ""));
    }));
  }
}

// ---------------------------------------------------------------------------------------------
// Endpoint detail

function timelineChart(docs) {
  const hours = 24, width = 720, height = 120, now = Date.now();
  const buckets = new Array(hours).fill(0);
  for (const d of docs) {
    const age = (now - new Date(eventTime(d)).getTime()) / 3600000;
    if (age >= 0 && age < hours) buckets[hours - 1 - Math.floor(age)] += 1;
  }
  const max = Math.max(1, ...buckets);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Detections per hour over the last 24 hours: ${buckets.join(", ")}`);
  buckets.forEach((n, i) => {
    const bar = document.createElementNS(ns, "rect");
    const bh = Math.round((n / max) * height);
    bar.setAttribute("class", "bar");
    bar.setAttribute("x", String(i * (width / hours) + 2));
    bar.setAttribute("y", String(height - bh));
    bar.setAttribute("width", String(width / hours - 4));
    bar.setAttribute("height", String(bh));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${n} detections, ${hours - i} h ago`;
    bar.append(title);
    svg.append(bar);
  });
  for (const [i, label] of [[0, "-24h"], [12, "-12h"], [23, "now"]]) {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", String(i * (width / hours) + 2));
    text.setAttribute("y", String(height + 15));
    text.textContent = label;
    svg.append(text);
  }
  return svg;
}

async function runCommand(uuid, commandLine, out) {
  out.replaceChildren(h("p", { className: "muted", role: "status" }, `running: ${commandLine}`));
  try {
    await api("POST", `/endpoints/${uuid}/command`, { "command-line": commandLine, timeout: 30e9 });
    const result = await api("GET", `/endpoints/${uuid}/command?wait=true`);
    const stdout = result.json !== null && result.json !== undefined ? JSON.stringify(result.json, null, 2) : b64decode(result.stdout);
    fill(out,
      result.error ? errorBox(new Error(result.error)) : h("p", { className: "muted", role: "status" }, `${commandLine}: done`),
      h("pre", { "aria-label": "command output" }, stdout || "(no output)"),
      result.stderr ? h("pre", { "aria-label": "command errors" }, b64decode(result.stderr)) : null,
    );
    return result;
  } catch (err) {
    out.replaceChildren(errorBox(err));
    return null;
  }
}

async function endpointView(uuid) {
  await loadEndpoints();
  const ep = await api("GET", `/endpoints/${uuid}`);
  const [detections, artifacts] = await Promise.all([
    fetchDetections([uuid], "24h"),
    api("GET", `/endpoints/${uuid}/artifacts`).catch(() => []),
  ]);
  const commandOut = h("div", { id: "command-output" });
  const processesOut = h("div", {});
  const input = h("input", { id: "command-line", type: "text", size: 60, placeholder: "e.g. ls /tmp   or   hash /usr/bin/ls" });
  const isolate = async (command) => {
    const text = command === "contain"
      ? `Isolate ${ep.hostname || uuid} from the network? Only loopback, established flows and the manager stay reachable.`
      : `Lift the network isolation of ${ep.hostname || uuid}?`;
    if (await confirmDialog(text)) await runCommand(uuid, command, commandOut);
  };
  const info = ep["system-info"] || {};
  view(
    h("h1", {}, `Endpoint ${ep.hostname || uuid}`),
    h("div", { className: "grid" },
      h("section", { className: "card", "aria-labelledby": "e-info" },
        h("h2", { id: "e-info" }, "System"),
        kvTable({
          uuid: ep.uuid, ip: ep.ip, status: ep.status, group: ep.group, criticality: ep.criticality,
          score: ep.score, "last seen": fmtTime(ep["last-connection"]), "last detection": fmtTime(ep["last-detection"]),
          os: ((info.os || {}).product || "") + " " + ((info.os || {}).build || ""),
          cpu: `${(info.cpu || {}).name || ""} ×${(info.cpu || {}).count || "?"}`,
          agent: (info.edr || {}).version || "",
        })),
      h("section", { className: "card", "aria-labelledby": "e-timeline" },
        h("h2", { id: "e-timeline" }, `Detections, last 24 hours (${detections.length})`),
        timelineChart(detections)),
    ),
    h("section", { "aria-labelledby": "e-command" },
      h("h2", { id: "e-command" }, "Response"),
      h("form", { className: "filters", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) runCommand(uuid, input.value.trim(), commandOut); } },
        h("div", {}, h("label", { for: "command-line" }, "Command"), input),
        h("button", { type: "submit" }, "Run"),
        h("button", { type: "button", className: "danger", onclick: () => isolate("contain") }, "Contain host…"),
        h("button", { type: "button", className: "secondary", onclick: () => isolate("uncontain") }, "Uncontain…"),
      ),
      commandOut),
    h("section", { "aria-labelledby": "e-artifacts" },
      h("h2", { id: "e-artifacts" }, "Artifacts"),
      (artifacts || []).length === 0 ? h("p", { className: "muted" }, "No artifacts.") :
        h("table", {}, h("thead", {}, h("tr", {}, ["Process", "Event", "File", "Size", "Time"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, (artifacts || []).flatMap((group) => (group.files || []).map((file) => h("tr", {},
            h("td", {}, group["process-guid"]), h("td", {}, h("code", {}, (group["event-hash"] || "").slice(0, 12))),
            h("td", {}, h("a", { href: `${group["base-url"]}${encodeURIComponent(file.name)}?raw=true&gunzip=true`, download: file.name.replace(/\.gz$/, "") }, file.name)),
            h("td", {}, file.size), h("td", {}, fmtTime(file.timestamp)))))))),
    h("section", { "aria-labelledby": "e-procs" },
      h("h2", { id: "e-procs" }, "Processes"),
      h("button", { type: "button", className: "secondary", onclick: async () => {
        const result = await runCommand(uuid, "processes", processesOut);
        if (result && Array.isArray(result.json)) {
          processesOut.replaceChildren(h("table", {},
            h("thead", {}, h("tr", {}, ["PID", "PPID", "User", "Image", "Command line"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, result.json.map((p) => h("tr", {}, h("td", {}, p.pid ?? p.ProcessId ?? ""), h("td", {}, p.ppid ?? ""),
              h("td", {}, p.user ?? ""), h("td", {}, p.image ?? p.Image ?? ""), h("td", {}, h("code", {}, p.command_line ?? p.CommandLine ?? "")))))));
        }
      } }, "List processes"),
      processesOut),
    h("section", { "aria-labelledby": "e-alerts" },
      h("h2", { id: "e-alerts" }, "Recent detections"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Time (UTC)", "Crit.", "Rules", "ATT&CK", "Endpoint", "Process / target"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, detections.slice(0, 50).map((d) => alertRow(d, false))))),
  );
}

// ---------------------------------------------------------------------------------------------
// Rules

function parseRuleText(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed);
  // A .gen file is a stream of JSON objects: split on balanced braces outside strings.
  const rules = [];
  let depth = 0, start = -1, inString = false, escaped = false;
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed[i];
    if (inString) { if (escaped) escaped = false; else if (c === "\\") escaped = true; else if (c === "\"") inString = false; continue; }
    if (c === "\"") inString = true;
    else if (c === "{") { if (depth++ === 0) start = i; }
    else if (c === "}" && --depth === 0) rules.push(JSON.parse(trimmed.slice(start, i + 1)));
  }
  if (depth !== 0) throw new Error("unbalanced braces: the rule text is incomplete");
  return rules;
}

function isGeneText(text) {
  const t = text.trim();
  return t.startsWith("{") || t.startsWith("[");
}

function ruleErrorText(e) {
  if (typeof e === "string") return e;
  if (e.document !== undefined) {  // Sigma: document, line, id/title, kind, message
    return [e.file !== "<request>" && e.file, e.document && `document ${e.document}`, e.line && `line ${e.line}`,
      (e.title || e.id) && `rule ${e.title || e.id}`, (e.kind ? `[${e.kind}] ` : "") + e.message].filter(Boolean).join(": ");
  }
  return [e.rule && `rule ${e.rule}`, e.line && `line ${e.line}`, e.statement && `statement ${e.statement}`, e.message].filter(Boolean).join(": ");
}

async function rulesView() {
  const [rules, sigma] = await Promise.all([
    api("GET", "/rules").then((r) => r || []),
    api("GET", "/rules/sigma").then((r) => r || []).catch(() => []),
  ]);
  const tbody = h("tbody", {});
  const sigmaBody = h("tbody", {});
  const render = (q) => {
    const query = q.toLowerCase();
    tbody.replaceChildren(...rules.filter((r) => !query || JSON.stringify(r).toLowerCase().includes(query)).map((r) => {
      const meta = r.Meta || {};
      return h("tr", {}, h("td", {}, r.Name), h("td", {}, critBadge(meta.Criticality || 0)),
        h("td", {}, Object.keys(meta.Events || {}).join(", ")),
        h("td", {}, (meta.ATTACK || []).map((a) => h("span", { className: "tag" }, a.ID))),
        h("td", {}, meta.Filter ? "filter" : "alert"));
    }));
    sigmaBody.replaceChildren(...sigma.filter((r) => !query || JSON.stringify(r).toLowerCase().includes(query)).map((r) =>
      h("tr", {}, h("td", {}, r.title), h("td", {}, critBadge(r.criticality || 0)),
        h("td", {}, Object.entries(r.logsource || {}).map(([k, v]) => `${k}: ${v}`).join(", ")),
        h("td", {}, (r.techniques || []).map((t) => h("span", { className: "tag" }, t))),
        h("td", {}, r.kind), h("td", {}, h("code", {}, r.id)))));
  };
  const result = h("div", { id: "upload-result", "aria-live": "polite" });
  const textarea = h("textarea", { id: "rule-text", spellcheck: "false", placeholder: "Paste Gene rules (a .gen file or a JSON array) or Sigma rules (YAML, documents separated by ---)" });
  const upload = async (ev) => {
    ev.preventDefault();
    result.replaceChildren();
    const gene = isGeneText(textarea.value);
    let parsed;
    if (gene) {
      try { parsed = parseRuleText(textarea.value); } catch (err) { result.replaceChildren(errorBox(new Error(`not valid rule JSON: ${err.message}`))); return; }
    }
    try {
      const stored = gene ? await api("POST", "/rules?update=true", parsed) : await api("POST", "/rules/sigma?update=true", textarea.value);
      result.replaceChildren(h("p", { role: "status" }, `${(stored || []).length} ${gene ? "Gene" : "Sigma"} rule(s) stored.`));
      setTimeout(rulesView, 800);
    } catch (err) {
      const errors = Array.isArray(err.data) ? err.data : [];
      fill(result,
        h("p", { className: "error", role: "alert" }, `Rejected: ${err.message}`),
        errors.length ? h("ul", { "aria-label": "rule errors" }, errors.map((e) => h("li", { className: "error" }, ruleErrorText(e)))) : null,
      );
    }
  };
  view(
    h("h1", {}, `Rules (${rules.length} Gene, ${sigma.length} Sigma)`),
    h("div", { className: "filters" }, h("div", {}, h("label", { for: "rule-search" }, "Search"), h("input", { id: "rule-search", type: "search", oninput: (e) => render(e.target.value) }))),
    h("h2", {}, "Gene rules"),
    h("table", { "aria-label": "Gene rules" }, h("thead", {}, h("tr", {}, ["Name", "Crit.", "Channels", "ATT&CK", "Kind"].map((t) => h("th", { scope: "col" }, t)))), tbody),
    h("h2", {}, "Sigma rules"),
    h("table", { "aria-label": "Sigma rules" }, h("thead", {}, h("tr", {}, ["Title", "Crit.", "Log source", "ATT&CK", "Kind", "Id"].map((t) => h("th", { scope: "col" }, t)))), sigmaBody),
    h("h2", {}, "Upload rules"),
    h("form", { onsubmit: upload },
      h("label", { for: "rule-text" }, "Rule text"), textarea,
      h("p", {}, h("label", { for: "rule-file" }, "or a file"), h("input", { id: "rule-file", type: "file", accept: ".gen,.gene,.json,.yml,.yaml", onchange: async (e) => { const f = e.target.files[0]; if (f) textarea.value = await f.text(); } })),
      h("button", { type: "submit" }, "Compile and store")),
    result,
  );
  render("");
}

// ---------------------------------------------------------------------------------------------
// IoCs

async function iocsView() {
  const iocs = (await api("GET", "/iocs")) || [];
  const out = h("div", { "aria-live": "polite" });
  const remove = async (ioc) => {
    if (!(await confirmDialog(`Delete IoC ${ioc.value}?`))) return;
    try { await api("DELETE", `/iocs?uuid=${encodeURIComponent(ioc.uuid)}`); await iocsView(); } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  const add = async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const ioc = {
      uuid: crypto.randomUUID(), guuid: crypto.randomUUID(), source: form.source.value || "console",
      value: form.value.value.trim(), type: form.type.value,
    };
    try { await api("POST", "/iocs", [ioc]); await iocsView(); } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  view(
    h("h1", {}, `IoCs (${iocs.length})`),
    h("form", { className: "filters", onsubmit: add },
      h("div", {}, h("label", { for: "ioc-value" }, "Value"), h("input", { id: "ioc-value", name: "value", required: true, size: 48 })),
      h("div", {}, h("label", { for: "ioc-type" }, "Type"), h("select", { id: "ioc-type", name: "type" },
        ["sha256", "sha1", "md5", "domain", "hostname", "ip-dst", "imphash"].map((t) => h("option", { value: t }, t)))),
      h("div", {}, h("label", { for: "ioc-source" }, "Source"), h("input", { id: "ioc-source", name: "source", value: "console" })),
      h("button", { type: "submit" }, "Add IoC")),
    out,
    h("table", {}, h("thead", {}, h("tr", {}, ["Value", "Type", "Source", "Group", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, iocs.map((ioc) => h("tr", {}, h("td", {}, h("code", {}, ioc.value)), h("td", {}, ioc.type), h("td", {}, ioc.source),
        h("td", {}, h("code", {}, ioc.guuid)), h("td", {}, h("button", { type: "button", className: "secondary", "aria-label": `Delete IoC ${ioc.value}`, onclick: () => remove(ioc) }, "Delete")))))),
  );
}

document.addEventListener("DOMContentLoaded", boot);
