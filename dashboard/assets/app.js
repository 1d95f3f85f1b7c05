// The dashboard's page: live numbers from server-sent events, task pages on demand, actions
// behind a confirmation. Our own code, no libraries; every text from a server is set with
// textContent, never parsed as HTML.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const WINDOW_MS = 10 * 60 * 1000; // the charts' longest span: the last ten minutes
const MIN_SPAN_MS = 30 * 1000; // and the shortest, while the dashboard has seen less
const BARS = 60; // outcome bars per chart
const PAGE = 50; // task rows per page
const OUTCOMES = ["completed", "cancelled", "panicked", "timed_out", "dropped", "shed"];
const NUM = new Intl.NumberFormat("en");

const pools = new Map(); // server id -> { view, history, dom, tasks }
const tokens = new Map(); // server id -> the control token typed in this tab

// ----- small helpers -----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
const int = (n) => (n === null || n === undefined ? "–" : NUM.format(n));
function rate(r) {
  if (r === null || r === undefined) return "–";
  return r < 10 ? r.toFixed(1) : NUM.format(Math.round(r));
}
function secs(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// ----- the live stream -----

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    for (const s of data.servers) update(s, s.history || []);
    live.dataset.state = "live";
    live.textContent = "live";
  });
  source.addEventListener("tick", (e) => {
    const data = JSON.parse(e.data);
    for (const s of data.servers) update(s, null);
    live.dataset.state = "live";
    live.textContent = `live · ${new Date(data.t).toLocaleTimeString()}`;
  });
  source.onerror = () => {
    live.dataset.state = "down";
    live.textContent = "reconnecting…";
  };
}

function update(view, history) {
  let p = pools.get(view.id);
  if (!p) {
    p = { view, history: [], dom: build(view), tasks: { cursors: [null], loading: false } };
    pools.set(view.id, p);
    document.getElementById("servers").append(p.dom.root);
    loadTasks(p);
  }
  p.view = view;
  if (history) p.history = history.slice();
  else if (view.sample && (!p.history.length || p.history[p.history.length - 1].t < view.sample.t)) {
    p.history.push(view.sample);
  }
  const cutoff = Date.now() - WINDOW_MS - 1000;
  while (p.history.length && p.history[0].t < cutoff) p.history.shift();
  render(p);
  if (!history) loadTasks(p); // the current task page, fresh
}

// ----- one pool's section -----

function tile(label, cls) {
  const value = el("div", { class: "value", "data-field": label.toLowerCase() });
  const sub = el("div", { class: "sub" });
  return { root: el("div", { class: `tile ${cls || ""}` }, el("div", { class: "label", text: label }), value, sub), value, sub };
}

function build(view) {
  const id = view.id;
  const d = {};
  d.name = el("span", { class: "name" });
  d.kind = el("span", { class: "badge" });
  d.flags = el("span", { class: "flags" });
  d.endpoint = el("span", { class: "endpoint", text: view.endpoint });
  d.error = el("div", { class: "error", hidden: true, role: "alert" });
  d.tiles = {
    running: tile("Running", "primary"),
    queued: tile("Queued"),
    backlog: tile("Backlog"),
    limit: tile("Limit"),
    started: tile("Started"),
    ended: tile("Ended"),
    failed: tile("Failed"),
  };
  d.throughput = svgEl("svg", { class: "chart", viewBox: "0 0 600 120", preserveAspectRatio: "none", role: "img", "aria-label": "tasks started and ended per second, recent minutes" });
  d.throughputPeak = el("span", { class: "muted" });
  d.outcomes = svgEl("svg", { class: "chart", viewBox: "0 0 600 120", preserveAspectRatio: "none", role: "img", "aria-label": "task outcomes, recent minutes" });
  d.outcomesTotal = el("span", { class: "muted" });
  const legend = (names) => el("span", { class: "legend" }, ...names.map((n) => el("span", {}, el("i", { class: `c-${n}` }), n.replace("_", " "))));
  d.axes = [];
  const axis = () => {
    const left = el("span", { text: "10 min ago" });
    d.axes.push(left);
    return el("div", { class: "axis" }, left, el("span", { text: "now" }));
  };
  d.latency = el("div", { class: "latency panel", hidden: true });
  d.policy = el("p", { class: "policy", "data-field": "policy" });

  // Actions.
  d.limitInput = el("input", { type: "number", min: "1", placeholder: "∞", "aria-label": "new limit", "data-action": "limit-input" });
  d.lockButton = el("button", { type: "button", "data-action": "lock" });
  d.simple = el("span", { class: "group", hidden: true },
    el("input", { type: "number", min: "1", value: "1", "aria-label": "how many", "data-action": "count-input" }),
    el("button", { type: "button", "data-action": "start", text: "Start", onclick: () => startStop(id, "start") }),
    el("button", { type: "button", "data-action": "stop", text: "Stop", onclick: () => startStop(id, "stop") }));
  const actions = el("div", { class: "actions" },
    el("span", { class: "group" }, d.limitInput,
      el("button", { type: "button", "data-action": "set-limit", text: "Set limit", onclick: () => setLimit(id) })),
    d.lockButton,
    el("button", { type: "button", class: "danger", "data-action": "cancel-all", text: "Cancel all", onclick: () => act(id, { action: "cancel-all" }, "Cancel every task", "Every queued and running task of this pool is cancelled, and its groups forgotten.") }),
    d.simple);
  d.lockButton.addEventListener("click", () => {
    const locked = pools.get(id).view.stats?.locked;
    act(id, { action: locked ? "unlock" : "lock" }, locked ? "Unlock the pool" : "Lock the pool",
      locked ? "The pool accepts new work again." : "The pool refuses new work; accepted work carries on.");
  });

  // Groups.
  d.groupsBody = el("tbody");
  d.groupsNote = el("p", { class: "hint" });
  const groups = el("div", { class: "panel" }, el("h3", { text: "Groups" }),
    el("div", { class: "scroll" }, el("table", { "data-table": "groups" },
      el("thead", {}, el("tr", {}, el("th", { text: "Group" }), el("th", { class: "num", text: "Live tasks" }), el("th", { text: "Progress" }), el("th", {}))),
      d.groupsBody)), d.groupsNote);

  // Tasks.
  d.search = el("input", { type: "search", placeholder: "Filter by id, name or group", "aria-label": "filter tasks", "data-filter": "search" });
  d.stateSel = el("select", { "aria-label": "task state", "data-filter": "state" },
    ...["", "running", "queued", "ending"].map((s) => el("option", { value: s, text: s || "any state" })));
  d.groupSel = el("select", { "aria-label": "task group", "data-filter": "group" }, el("option", { value: "", text: "any group" }));
  let debounce;
  const refilter = () => { clearTimeout(debounce); debounce = setTimeout(() => { const p = pools.get(id); p.tasks.cursors = [null]; loadTasks(p); }, 250); };
  d.search.addEventListener("input", refilter);
  d.stateSel.addEventListener("change", refilter);
  d.groupSel.addEventListener("change", refilter);
  d.tasksBody = el("tbody");
  d.tasksInfo = el("span", { class: "info" });
  d.prev = el("button", { type: "button", class: "small", text: "‹ Prev", onclick: () => page(id, -1) });
  d.next = el("button", { type: "button", class: "small", text: "Next ›", onclick: () => page(id, 1) });
  d.first = el("button", { type: "button", class: "small", text: "First", onclick: () => page(id, 0) });
  const tasks = el("div", { class: "panel" }, el("h3", { text: "Tasks" }),
    el("div", { class: "toolbar" }, d.search, d.stateSel, d.groupSel),
    el("div", { class: "scroll" }, el("table", { "data-table": "tasks" },
      // Age: for pools that track durations (see taskAge); a dash otherwise.
      el("thead", {}, el("tr", {}, el("th", { class: "num", text: "Id" }), el("th", { text: "Name" }), el("th", { text: "Group" }), el("th", { text: "State" }), el("th", { class: "num", text: "Age" }), el("th", {}))),
      d.tasksBody)),
    el("div", { class: "pager" }, d.tasksInfo, d.first, d.prev, d.next));

  // The job queue's views, shown when the server has its commands (see renderQueue).
  d.queue = el("div", { class: "queue", hidden: true });

  d.root = el("section", { class: "pool", id: `pool-${id}`, "data-server": String(id) },
    el("div", { class: "pool-head" }, el("h2", {}, d.name, " ", d.kind), d.flags, d.endpoint),
    d.error,
    el("div", { class: "tiles" }, ...Object.values(d.tiles).map((t) => t.root)),
    d.policy,
    el("div", { class: "charts" },
      el("figure", {}, el("figcaption", {}, el("strong", { text: "Throughput, tasks/s" }), legend(["started", "ended"]), d.throughputPeak), d.throughput, axis()),
      el("figure", {}, el("figcaption", {}, el("strong", { text: "Outcomes" }), legend(OUTCOMES), d.outcomesTotal), d.outcomes, axis())),
    d.latency,
    actions,
    el("div", { class: "cols" }, groups, tasks),
    d.queue);
  return d;
}

function render(p) {
  const { view, dom: d } = p;
  const s = view.stats || {};
  const info = view.info || {};
  setText(d.name, info.pool || view.endpoint);
  setText(d.kind, info.kind === "simple" ? "SimpleTaskPool" : info.kind === "task" ? "TaskPool" : "?");
  d.flags.replaceChildren(
    ...(view.up ? [] : [el("span", { class: "badge down", text: "unreachable" })]),
    ...(s.closed ? [el("span", { class: "badge closed", text: "closed" })] : s.locked ? [el("span", { class: "badge locked", text: "locked" })] : []),
    ...(s.is_full ? [el("span", { class: "badge full", text: "full" })] : []));
  d.error.hidden = !view.error;
  if (view.error) setText(d.error, `${view.error.message} [${view.error.kind}]`);

  const limit = s.limit === null ? "∞" : int(s.limit);
  const sample = view.sample || {};
  const t = d.tiles;
  setText(t.running.value, int(s.running));
  setText(t.running.sub, s.limit === null ? "no limit" : `of ${limit} at once`);
  setText(t.queued.value, int(s.queued));
  setText(t.queued.sub, "waiting for a slot");
  setText(t.backlog.value, int(s.backlog));
  setText(t.backlog.sub, "items not pulled yet");
  setText(t.limit.value, limit);
  const adaptive = s.adaptive && typeof s.adaptive === "object" ? s.adaptive : null;
  setText(t.limit.sub, adaptive ? `adaptive, ${int(adaptive.min)}–${int(adaptive.max)}` : s.limit === null ? "unlimited" : "tasks at once");
  t.started.value.replaceChildren(rate(sample.started_per_s), el("span", { class: "unit", text: "/s" }));
  setText(t.started.sub, `${int(s.submitted)} ids issued`);
  t.ended.value.replaceChildren(rate(sample.ended_per_s), el("span", { class: "unit", text: "/s" }));
  setText(t.ended.sub, `${int(s.ended)} since flush`);
  const failed = (s.panicked || 0) + (s.timed_out || 0) + (s.dropped || 0) + (s.shed || 0);
  setText(t.failed.value, int(failed));
  t.failed.root.classList.toggle("bad", failed > 0);
  const parts = [[s.panicked, "panicked"], [s.timed_out, "timed out"], [s.dropped, "dropped"]].filter(([n]) => n > 0);
  const why = parts.length ? parts.map(([n, w]) => `${int(n)} ${w}`).join(" · ") : "none since flush";
  setText(t.failed.sub, why);
  t.failed.sub.title = why;

  d.lockButton.textContent = s.locked ? "Unlock" : "Lock";
  d.simple.hidden = info.kind !== "simple";
  drawThroughput(p);
  drawOutcomes(p);
  renderLatency(d.latency, s);
  renderPolicy(d.policy, s, adaptive);
  renderGroups(p);
  renderQueue(p);
}

// Queue-wait and run-time percentiles, for pools built with `track_durations(true)`: `stats`
// then carries `"queue_wait": {"count", "p50", "p90", "p99", "max"}` and `"run_time"` (seconds,
// since the last flush), as the library's PoolStats serializes them.
const PERCENTILE_FIELDS = [["queue_wait", "Queue wait"], ["run_time", "Run time"]];
const QUANTILES = ["p50", "p90", "p99", "max"];
function renderLatency(node, stats) {
  const rows = PERCENTILE_FIELDS.filter(([k]) => stats && stats[k] && typeof stats[k] === "object");
  node.hidden = rows.length === 0;
  if (!rows.length) return;
  node.replaceChildren(el("h3", { text: "Latency" }), el("div", { class: "scroll" }, el("table", { "data-table": "latency" },
    el("thead", {}, el("tr", {}, el("th", {}), ...QUANTILES.map((q) => el("th", { class: "num", text: q })), el("th", { class: "num", text: "tasks" }))),
    el("tbody", {}, ...rows.map(([k, label]) => el("tr", { "data-latency": k }, el("th", { text: label }),
      ...QUANTILES.map((q) => el("td", { class: "num", text: stats[k].count ? secs(stats[k][q]) : "–" })),
      el("td", { class: "num", text: int(stats[k].count) })))))));
}

// The pool's run-time policies, as `stats` carries them: the loose tasks' weight, the
// pool-wide rate limit while one is set (`"rate_limit": {"count", "period_ms", "burst"}`),
// and the adaptive limit while one drives the limit (`"adaptive": {"limiter", "min", "max",
// "limit", "samples", "overloads"}`); each absent otherwise. Changed with taskpool-ctl's
// `pool-settings`.
function renderPolicy(node, s, adaptive) {
  const parts = [];
  if (typeof s.loose_weight === "number") parts.push(`Loose tasks' weight ${int(s.loose_weight)}`);
  if (s.rate_limit && typeof s.rate_limit === "object") parts.push(`Rate limit ${quotaText(s.rate_limit)}`);
  parts.push(adaptive
    ? `Adaptive limit: ${adaptive.limiter}, bounds ${int(adaptive.min)}–${int(adaptive.max)}, now ${int(adaptive.limit)} (${int(adaptive.samples)} samples, ${int(adaptive.overloads)} overloads)`
    : "Adaptive limit: off");
  setText(node, parts.join(" · "));
}

// A rate quota as `groups` carries it (`{"count", "period_ms", "burst"}`), as taskpool-ctl's
// `--rate` takes it: "10/s, burst 2".
const PERIODS = { 1000: "s", 60000: "min", 3600000: "h", 86400000: "day" };
function quotaText(q) {
  const ms = q.period_ms;
  const per = PERIODS[ms] || (ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`);
  return `${int(q.count)}/${per}, burst ${int(q.burst)}`;
}

// A group's scheduling settings, under its name: priority, weight, concurrency cap, rate limit
// (changed with taskpool-ctl's `group-settings`); a dash from servers that do not send them.
function groupSettings(g) {
  if (typeof g.priority !== "number") return "–";
  const cap = typeof g.num_concurrent === "number" ? `≤ ${int(g.num_concurrent)} at once` : "pool's limit";
  const rate = g.rate_limit && typeof g.rate_limit === "object" ? `rate ${quotaText(g.rate_limit)}` : "no rate limit";
  return [`priority ${g.priority}`, `weight ${int(g.weight)}`, cap, rate].join(" · ");
}

// A group's percentiles in its row, e.g. "run p50 12 ms · p99 40 ms".
function groupLatency(g) {
  const r = g.run_time;
  if (!r || !r.count) return "";
  return `run p50 ${secs(r.p50)} · p99 ${secs(r.p99)}`;
}

// The charts' span: as far back as the dashboard has seen, from 30 s up to ten minutes.
function span(p, now) {
  const first = p.history.length ? p.history[0].t : now;
  return Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - first));
}
function ago(ms) {
  return ms >= 120000 ? `${Math.round(ms / 60000)} min ago` : `${Math.round(ms / 1000)} s ago`;
}

function drawThroughput(p) {
  const svg = p.dom.throughput;
  const now = Date.now();
  const width = span(p, now);
  const pts = p.history.filter((s) => s.started_per_s !== null && s.started_per_s !== undefined);
  const peak = Math.max(1, ...pts.map((s) => Math.max(s.started_per_s, s.ended_per_s)));
  const x = (t) => ((t - (now - width)) / width) * 600;
  for (const a of p.dom.axes) setText(a, ago(width));
  const y = (v) => 116 - (v / peak) * 108;
  const line = (key) => {
    // A gap (a flush, an unreachable server) breaks the line.
    let d = "";
    let pen = false;
    for (const s of p.history) {
      const v = s[key];
      if (v === null || v === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(s.t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    return d;
  };
  svg.replaceChildren(
    svgEl("line", { class: "grid", x1: 0, x2: 600, y1: 8, y2: 8 }),
    svgEl("line", { class: "grid", x1: 0, x2: 600, y1: 62, y2: 62 }),
    svgEl("line", { class: "grid", x1: 0, x2: 600, y1: 116, y2: 116 }),
    svgEl("path", { class: "started", d: line("started_per_s"), "vector-effect": "non-scaling-stroke" }),
    svgEl("path", { class: "ended", d: line("ended_per_s"), "vector-effect": "non-scaling-stroke" }));
  setText(p.dom.throughputPeak, `top of chart: ${rate(peak)}/s`);
}

function drawOutcomes(p) {
  const svg = p.dom.outcomes;
  const now = Date.now();
  const width = span(p, now);
  const start = now - width;
  const n = BARS;
  const bucketMs = width / n;
  // One count per outcome kind (`shed` made six: a fixed five gave NaN).
  const buckets = Array.from({ length: n }, () => OUTCOMES.map(() => 0));
  const totals = OUTCOMES.map(() => 0);
  for (const s of p.history) {
    if (!s.outcomes || s.t < start) continue;
    const b = Math.min(n - 1, Math.floor((s.t - start) / bucketMs));
    s.outcomes.forEach((v, i) => { buckets[b][i] += v; totals[i] += v; });
  }
  const peak = Math.max(1, ...buckets.map((b) => b.reduce((a, v) => a + v, 0)));
  const w = 600 / n;
  const bars = [svgEl("line", { class: "grid", x1: 0, x2: 600, y1: 116, y2: 116 })];
  buckets.forEach((b, i) => {
    let top = 116;
    b.forEach((v, k) => {
      if (!v) return;
      const h = (v / peak) * 108;
      top -= h;
      bars.push(svgEl("rect", { class: `c-${OUTCOMES[k]}`, x: (i * w + 0.5).toFixed(1), y: top.toFixed(1), width: (w - 1).toFixed(1), height: h.toFixed(1) }));
    });
  });
  svg.replaceChildren(...bars);
  const sum = totals.reduce((a, v) => a + v, 0);
  setText(p.dom.outcomesTotal, `${int(sum)} ended since ${ago(width)} · ${int(totals[0])} completed`);
}

function renderGroups(p) {
  const { view, dom: d } = p;
  const page = view.groups;
  const groups = (page && page.groups) || [];
  d.groupsBody.replaceChildren(...groups.map((g) => {
    // Progress where the server knows it (`done` of `total`); otherwise only live tasks.
    const known = typeof g.done === "number" && typeof g.total === "number" && g.total > 0;
    const progress = known
      ? el("span", {}, el("progress", { max: String(g.total), value: String(g.done) }), ` ${int(g.done)} of ${int(g.total)}`)
      : typeof g.done === "number"
        ? el("span", { title: "the input does not know its length" }, `${int(g.done)} done`)
        : el("span", { class: "muted", text: "–", title: "done of total shows here when the server reports it" });
    const latency = groupLatency(g);
    if (latency) progress.append(el("span", { class: "muted", "data-group-latency": "", text: ` · ${latency}` }));
    return el("tr", { "data-group": g.name },
      el("td", { class: "name", title: g.name }, el("span", { text: g.name }),
        el("div", { class: "settings", "data-group-settings": "", text: groupSettings(g) })),
      el("td", { class: "num", text: int(g.live) }),
      el("td", {}, progress),
      el("td", {}, el("button", { type: "button", class: "small danger", "data-action": "cancel-group", text: "Cancel",
        onclick: () => act(view.id, { action: "cancel-group", name: g.name }, `Cancel group ${g.name}`, `Every task of group “${g.name}” is cancelled, and the group forgotten.`) })));
  }));
  const total = page ? page.total : 0;
  setText(d.groupsNote, total === 0 ? "No groups." : total > groups.length ? `First ${groups.length} of ${int(total)} groups, by name.` : "");
  // The group filter offers the groups shown.
  const chosen = d.groupSel.value;
  const names = groups.map((g) => g.name);
  const have = [...d.groupSel.options].slice(1).map((o) => o.value);
  if (names.join("\n") !== have.join("\n")) {
    d.groupSel.replaceChildren(el("option", { value: "", text: "any group" }), ...names.map((n) => el("option", { value: n, text: n })));
    if (chosen && !names.includes(chosen)) d.groupSel.append(el("option", { value: chosen, text: chosen }));
    d.groupSel.value = chosen;
  }
}

// ----- the task table: one page at a time, from the server's `tasks` paging -----

async function loadTasks(p) {
  const t = p.tasks;
  if (t.loading) return;
  t.loading = true;
  const d = p.dom;
  const after = t.cursors[t.cursors.length - 1];
  const q = new URLSearchParams({ server: p.view.id, limit: PAGE });
  if (after !== null) q.set("after", after);
  if (d.search.value.trim()) q.set("search", d.search.value.trim());
  if (d.stateSel.value) q.set("state", d.stateSel.value);
  if (d.groupSel.value) q.set("group", d.groupSel.value);
  try {
    const res = await fetch(`/api/tasks?${q}`, { credentials: "same-origin" });
    const body = await res.json();
    if (body.error) throw new Error(`${body.error.message} [${body.error.kind}]`);
    showTasks(p, body.ok);
  } catch (e) {
    setText(d.tasksInfo, `Tasks unavailable: ${e.message}`);
  } finally {
    t.loading = false;
  }
}

// How long ago a task got its id: its queue wait and run time so far, for pools that track
// durations (`queue_wait_secs`, `run_time_secs`); else unknown.
function taskAge(task) {
  if (typeof task.age_secs === "number") return task.age_secs;
  if (typeof task.queue_wait_secs !== "number") return null;
  return task.queue_wait_secs + (typeof task.run_time_secs === "number" ? task.run_time_secs : 0);
}

function showTasks(p, page) {
  const d = p.dom;
  const id = p.view.id;
  d.tasksBody.replaceChildren(...page.tasks.map((task) => el("tr", { "data-task": String(task.id) },
    el("td", { class: "num", text: String(task.id) }),
    el("td", { class: "name", text: task.name, title: task.name }),
    el("td", { class: "name", text: task.group || "–" }),
    el("td", {}, el("span", { class: `state ${task.state}`, text: task.state })),
    el("td", { class: "num", text: secs(taskAge(task)) }),
    el("td", {}, el("button", { type: "button", class: "small danger", "data-action": "cancel-task", text: "Cancel",
      onclick: () => act(id, { action: "cancel", id: task.id }, `Cancel task ${task.id}`, `Task ${task.name} is cancelled.`) })))));
  p.tasks.next = page.next;
  const filtered = page.offset === null;
  if (filtered) {
    setText(d.tasksInfo, page.tasks.length
      ? `${page.tasks.length} matching task${page.tasks.length === 1 ? "" : "s"} of ${int(page.total)} live${page.next !== null ? "; Next looks further" : ""}`
      : page.next !== null ? `No match yet among the tasks looked at; Next looks further (${int(page.total)} live)` : `No matching tasks (${int(page.total)} live)`);
  } else if (page.tasks.length) {
    setText(d.tasksInfo, `Tasks ${int(page.offset + 1)}–${int(page.offset + page.tasks.length)} of ${int(page.total)}`);
  } else {
    setText(d.tasksInfo, page.total ? `No tasks on this page (${int(page.total)} live)` : "No live tasks");
  }
  d.next.disabled = page.next === null;
  d.prev.disabled = p.tasks.cursors.length <= 1;
  d.first.disabled = p.tasks.cursors.length <= 1;
}

function page(id, dir) {
  const p = pools.get(id);
  const c = p.tasks.cursors;
  if (dir > 0 && p.tasks.next !== null && p.tasks.next !== undefined) c.push(p.tasks.next);
  else if (dir < 0 && c.length > 1) c.pop();
  else if (dir === 0) p.tasks.cursors = [null];
  loadTasks(p);
}

// JOB QUEUE VIEWS: shown for servers that have the job queue's control commands (crate
// `async-taskpool-queue`, `QueueCommands`: queue-stats, queue-dead, queue-retry,
// queue-discard). Per queue and kind the counts by state and the oldest pending job's age,
// the workers and their heartbeats, and the dead jobs with retry and discard.
function renderQueue(p) {
  const { view, dom: d } = p;
  const q = view.queue;
  d.queue.hidden = !q;
  if (!q) return;
  const parts = [el("h3", { text: "Job queue" })];
  const cluster = q.cluster && q.cluster.ok;
  if (q.cluster && q.cluster.error) parts.push(el("div", { class: "error", text: `queue-stats: ${q.cluster.error.message}` }));
  if (cluster) {
    parts.push(table(["Queue", "Kind", "Pending", "Scheduled", "Retrying", "Running", "Dead", "Done/min", "Oldest pending", "Workers"],
      (cluster.kinds || []).map((k) => [k.queue, k.kind, int(k.pending), int(k.scheduled), int(k.retrying), int(k.running), int(k.dead), int(k.completed_last_minute), secs(k.oldest_pending_age_secs), int(k.live_workers)]), "No jobs.", 2));
    parts.push(table(["Worker", "Queue", "Host", "Pid", "Running", "Done/min", "Heartbeat", "Up"],
      (cluster.workers || []).map((w) => [w.id, w.queue, w.host, String(w.pid), int(w.running_jobs), int(w.completed_last_minute), `${secs(w.heartbeat_age_secs)} ago${w.alive ? "" : " (silent)"}`, secs(w.uptime_secs)]), "No workers.", 4));
  }
  const dead = q.dead && q.dead.ok;
  if (q.dead && q.dead.error) parts.push(el("div", { class: "error", text: `queue-dead: ${q.dead.error.message}` }));
  if (dead) {
    const rows = dead.map((j) => el("tr", {},
      el("td", { class: "num", text: String(j.id) }), el("td", { text: `${j.queue}/${j.kind}` }),
      el("td", { class: "num", text: `${j.attempts} of ${j.max_attempts}` }), el("td", { class: "num", text: secs(j.dead_for_secs) }),
      el("td", { class: "name", text: j.last_error || "–", title: j.last_error || "" }),
      el("td", {}, el("button", { type: "button", class: "small", text: "Retry", onclick: () => act(view.id, { action: "queue-retry", target: { id: j.id } }, `Retry job ${j.id}`, "The dead job becomes pending again.") }), " ",
        el("button", { type: "button", class: "small danger", text: "Discard", onclick: () => act(view.id, { action: "queue-discard", target: { id: j.id } }, `Discard job ${j.id}`, "The dead job is deleted for good.") }))));
    parts.push(el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, ...["Dead job", "Queue/kind", "Attempts", "Dead for", "Last error", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No dead jobs." }))])))));
  }
  d.queue.replaceChildren(...parts);
}

function table(heads, rows, empty, textCols) {
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ...heads.map((h, i) => el("th", { class: i >= textCols ? "num" : "", text: h })))),
    el("tbody", {}, ...(rows.length ? rows.map((r) => el("tr", {}, ...r.map((c, i) => el("td", { class: i >= textCols ? "num" : "", text: c })))) : [el("tr", {}, el("td", { colspan: String(heads.length), class: "muted", text: empty }))]))));
}

// ----- actions: confirmed, sent with the control token, the server's reply shown -----

function setLimit(id) {
  const p = pools.get(id);
  const raw = p.dom.limitInput.value.trim();
  const limit = raw === "" || raw === "∞" ? null : Number(raw);
  if (limit !== null && !(Number.isInteger(limit) && limit >= 1)) {
    log(`${p.view.info?.pool}: a limit is a whole number of at least 1, or empty for none`, false);
    return;
  }
  act(id, { action: "set-limit", limit }, "Set the limit", limit === null ? "The pool runs any number of tasks at once." : `The pool runs at most ${int(limit)} tasks at once.`);
}

function startStop(id, which) {
  const p = pools.get(id);
  const num = Number(p.dom.simple.querySelector("input").value);
  if (!(Number.isInteger(num) && num >= 1)) {
    log(`${p.view.info?.pool}: give how many tasks to ${which}, a whole number of at least 1`, false);
    return;
  }
  act(id, { action: which, num }, `${which === "start" ? "Start" : "Stop"} ${int(num)} task${num === 1 ? "" : "s"}`,
    which === "start" ? `Starts ${int(num)} copies of the pool's job.` : `Stops the ${int(num)} newest tasks (queued first).`);
}

function act(id, body, title, text) {
  const p = pools.get(id);
  const dlg = document.getElementById("confirm");
  const go = document.getElementById("confirm-go");
  const back = document.getElementById("confirm-back");
  const result = document.getElementById("confirm-result");
  const tokenRow = document.getElementById("confirm-token-row");
  const token = document.getElementById("confirm-token");
  const pool = p.view.info?.pool || p.view.endpoint;
  setText(document.getElementById("confirm-title"), `${title} — ${pool}`);
  setText(document.getElementById("confirm-text"), text);
  tokenRow.hidden = !p.view.needs_token;
  token.value = tokens.get(id) || "";
  result.hidden = true;
  result.removeAttribute("data-outcome");
  go.hidden = false;
  go.disabled = false;
  back.textContent = "Back";
  const finish = () => { go.onclick = null; back.onclick = null; dlg.close(); };
  back.onclick = finish;
  go.onclick = async () => {
    go.disabled = true;
    const typed = token.value;
    const outcome = await post({ server: id, token: typed || null, ...body });
    if (outcome.ok && typed) tokens.set(id, typed);
    if (!outcome.ok && outcome.kind === "auth_failed") tokens.delete(id);
    result.hidden = false;
    result.dataset.outcome = outcome.ok ? "ok" : "error";
    setText(result, outcome.text);
    log(`${pool}: ${title} → ${outcome.text}`, outcome.ok);
    go.hidden = outcome.ok;
    go.disabled = false;
    back.textContent = "Close";
  };
  dlg.showModal();
  (p.view.needs_token && !token.value ? token : go).focus();
}

async function post(body) {
  try {
    const res = await fetch("/api/action", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": CSRF },
      body: JSON.stringify(body),
    });
    const reply = await res.json();
    if (reply.error) return { ok: false, kind: reply.error.kind, text: `refused: ${reply.error.message} [${reply.error.kind}]` };
    const v = reply.ok;
    return { ok: true, text: `the server replied ok${v === null || v === undefined ? "" : `: ${JSON.stringify(v)}`}` };
  } catch (e) {
    return { ok: false, kind: "network", text: `no reply from the dashboard: ${e.message}` };
  }
}

function log(text, ok) {
  const list = document.getElementById("log");
  if (list.firstElementChild && list.firstElementChild.classList.contains("muted")) list.replaceChildren();
  list.prepend(el("li", { class: ok ? "ok" : "err" }, `${new Date().toLocaleTimeString()} ${text}`));
  while (list.children.length > 50) list.lastElementChild.remove();
}

connect();
