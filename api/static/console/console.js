// Holdfast's operations console (docs/console.md): the business view beside the Temporal
// UI. With a tenant's secret key every number is read from the public API: bookings by
// status, held-to-confirmed conversion, what failed and needs a look, calendar
// connections and webhook endpoints. With the operator key it reads /metrics (every
// tenant's bookings, stuck deliveries, calendar sync lag) and the tenants. It refreshes
// itself every 30 seconds.
"use strict";

const $ = (id) => document.getElementById(id);
// The secret key lives in this page's memory only: not in storage, which every page
// of this origin (the booking page with Stripe.js, the API docs) could read.
let key = "";
const STATUSES = [
  ["pending_payment", "Awaiting payment", "#7a4b00"],
  ["confirmed", "Confirmed", "#1449b8"],
  ["completed", "Completed", "#1d6b2f"],
  ["cancelled", "Cancelled", "#4a5461"],
  ["expired", "Expired", "#8a3ffc"],
  ["failed", "Failed", "#a4161a"],
  ["no_show", "No-show", "#005d5d"],
];
let config = { temporal_ui: "", namespace: "default" };
let refreshing = null; // the 30 s timer
let running = false; // a refresh under way (the next tick waits for it)
let truncated = false; // a list was longer than the console reads
let operator = false; // signed in with the operator key

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `the request failed (${status})`);
    this.status = status;
  }
}

async function api(path, as = "json") {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  const body = await (as === "text" ? response.text() : response.json()).catch(() => null);
  if (!response.ok) throw new ApiError(response.status, as === "text" ? null : body);
  return body;
}

async function all(path, most = 20) {
  // Every page of a list (at most `most` pages of 200).
  const items = [];
  let cursor = null;
  for (let i = 0; i < most; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=200${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...page.items);
    if (!page.next_cursor) return items;
    cursor = encodeURIComponent(page.next_cursor);
  }
  truncated = true;
  return items;
}

// ---- signing in ----------------------------------------------------------------------

function showSignIn(message) {
  key = "";
  clearInterval(refreshing);
  $("dashboard").hidden = $("operator").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const given = $("key").value.trim();
  if (!given) {
    $("sign-in-error").textContent = "Enter a secret key.";
    return;
  }
  key = given;
  $("key").value = "";
  await open();
}

async function open() {
  try {
    operator = false;
    await api("/v1/webhook-endpoints?limit=1"); // a tenant's secret key, or not
  } catch (error) {
    if (error.status === 401 && (await isOperator())) operator = true;
    else {
      const why = error.status === 403 ? "That key cannot read the console: use a secret key."
        : error.status === 401 ? "That key is unknown or revoked." : error.message;
      showSignIn(why);
      return;
    }
  }
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("dashboard").hidden = operator;
  $("operator").hidden = !operator;
  await refresh();
  clearInterval(refreshing);
  refreshing = setInterval(refresh, 30000);
}

// ---- charts --------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function barChart(target, rows, label) {
  // Horizontal bars, one a row: [name, count, colour]. The picture has its words too.
  const width = 420, row = 26, labelWidth = 140, most = Math.max(1, ...rows.map((r) => r[1]));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${rows.length * row}`,
    width,
    height: rows.length * row,
    role: "img",
    "aria-label": `${label}: ${rows.map(([name, count]) => `${name} ${count}`).join(", ")}`,
  });
  rows.forEach(([name, count, colour], i) => {
    const y = i * row;
    const length = Math.round(((width - labelWidth - 50) * count) / most);
    chart.append(svg("text", { x: 0, y: y + 17 }, name));
    chart.append(svg("rect", { x: labelWidth, y: y + 5, width: length, height: 16, fill: colour }));
    chart.append(svg("text", { x: labelWidth + length + 6, y: y + 17 }, String(count)));
  });
  target.replaceChildren(chart);
}

function deliveryStrip(deliveries) {
  // The last deliveries, oldest first: a tick each, green delivered, red not (yet).
  const tick = 7;
  const strip = svg("svg", {
    viewBox: `0 0 ${Math.max(1, deliveries.length) * tick} 14`,
    width: Math.max(1, deliveries.length) * tick,
    height: 14,
    role: "img",
    "aria-label": `last ${deliveries.length} deliveries: ${
      deliveries.filter((d) => d.status === "delivered").length
    } delivered`,
  });
  [...deliveries].reverse().forEach((d, i) => {
    const colour = d.status === "delivered" ? "#1d6b2f" : d.status === "failed" ? "#a4161a"
      : "#7a4b00";
    strip.append(svg("rect", { x: i * tick, y: 0, width: tick - 2, height: 14, fill: colour }));
  });
  return strip;
}

// ---- tables --------------------------------------------------------------------------

function table(target, headings, rows, empty) {
  if (!rows.length) {
    const none = document.createElement("p");
    none.className = "none";
    none.textContent = empty;
    target.replaceChildren(none);
    return;
  }
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  for (const heading of headings) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = heading;
    head.append(th);
  }
  const body = t.createTBody();
  for (const cells of rows) {
    const tr = body.insertRow();
    for (const cell of cells) tr.insertCell().append(cell);
  }
  target.replaceChildren(t);
}

function link(text, href) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.target = "_blank";
  a.rel = "noopener";
  return a;
}

function marked(text, kind) {
  const span = document.createElement("span");
  span.className = kind;
  span.textContent = text;
  return span;
}

const when = (iso) =>
  new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(iso),
  );

function workflowLink(booking) {
  const ui = config.temporal_ui.replace(/\/$/, "");
  const href = `${ui}/namespaces/${encodeURIComponent(config.namespace)}/workflows/${
    encodeURIComponent(booking.workflow_id)
  }`;
  return link(booking.workflow_id, href);
}

// ---- the panels ----------------------------------------------------------------------

function daysFrom(date, days) {
  // Calendar days, so a week across a DST change is still seven of them.
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
}

function startOfWeek() {
  const today = daysFrom(new Date(), 0);
  return daysFrom(today, -((today.getDay() + 6) % 7)); // Monday
}

function counts(bookings) {
  return STATUSES.map(([status, name, colour]) => [
    name,
    bookings.filter((b) => b.status === status).length,
    colour,
  ]);
}

function bookingsPanels(bookings) {
  const week = startOfWeek();
  const today = daysFrom(new Date(), 0);
  const within = (from, to) =>
    bookings.filter((b) => new Date(b.start) >= from && new Date(b.start) < to);
  const thisWeek = within(week, daysFrom(week, 7));
  barChart($("today-chart"), counts(within(today, daysFrom(today, 1))), "Today");
  barChart($("week-chart"), counts(thisWeek), "This week");

  const priced = thisWeek.filter((b) => b.payment);
  const paid = priced.filter(
    (b) => ["confirmed", "completed", "no_show"].includes(b.status) ||
      (b.status === "cancelled" && b.payment.captured_amount > 0),
  ).length;
  const expired = priced.filter((b) => b.status === "expired").length;
  const failed = priced.filter((b) => b.status === "failed").length;
  const waiting = priced.filter((b) => b.status === "pending_payment").length;
  const settled = paid + expired + failed;
  $("conversion").textContent = settled
    ? `${Math.round((100 * paid) / settled)}% of ${settled} settled holds were paid`
    : "No priced booking this week has settled yet";
  barChart(
    $("conversion-chart"),
    [
      ["Paid", paid, "#1d6b2f"],
      ["Expired unpaid", expired, "#8a3ffc"],
      ["Payment failed", failed, "#a4161a"],
      ["Still held", waiting, "#7a4b00"],
    ],
    "Priced bookings this week",
  );

  const failing = bookings.filter((b) =>
    Object.values(b.side_effects || {}).some((outcome) => outcome !== "done"),
  );
  table(
    $("side-effects"),
    ["Booking", "Starts", "What failed", "Workflow"],
    failing.map((b) => [
      b.id,
      when(b.start),
      Object.entries(b.side_effects)
        .filter(([, outcome]) => outcome !== "done")
        .map(([step, outcome]) => `${step}: ${outcome}`)
        .join("; "),
      workflowLink(b),
    ]),
    "Nothing failed.",
  );
}

async function endpointsPanels() {
  const endpoints = await all("/v1/webhook-endpoints");
  const undelivered = [];
  const rows = [];
  for (const endpoint of endpoints) {
    const recent = (await api(
      `/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=50`,
    )).items;
    for (const d of recent) {
      if (d.status === "failed" || (d.status === "pending" && d.attempt_count > 0)) {
        undelivered.push([
          endpoint.url,
          d.type,
          marked(d.status, d.status === "failed" ? "bad" : "warn"),
          String(d.attempt_count),
          d.last_error || (d.last_status_code ? `HTTP ${d.last_status_code}` : ""),
          when(d.created_at),
        ]);
      }
    }
    const health = endpoint.status === "disabled" ? marked("disabled", "bad")
      : endpoint.failing_since ? marked(`failing since ${when(endpoint.failing_since)}`, "warn")
      : marked("healthy", "ok");
    rows.push([endpoint.url, health, recent.length ? deliveryStrip(recent) : "no deliveries"]);
  }
  table(
    $("deliveries"),
    ["Endpoint", "Event", "Status", "Attempts", "Last error", "Since"],
    undelivered,
    "Every delivery arrived.",
  );
  table($("endpoints"), ["Endpoint", "Health", "Last deliveries"], rows, "No webhook endpoints.");
}

async function calendarsPanel() {
  const resources = await all("/v1/resources");
  const troubled = [];
  for (const resource of resources) {
    const connections = (await api(`/v1/resources/${resource.id}/calendar-connections`)).items;
    for (const c of connections) {
      if (c.status === "reauth_required" || c.last_error) {
        troubled.push([
          resource.name,
          c.provider,
          c.calendar_id,
          marked(c.status.replace("_", " "), c.status === "reauth_required" ? "bad" : "warn"),
          c.last_error || "",
        ]);
      }
    }
  }
  table(
    $("calendars"),
    ["Resource", "Provider", "Calendar", "Status", "Last error"],
    troubled,
    "Every connection is in sync.",
  );
}

async function isOperator() {
  try {
    await api("/v1/tenants?limit=1");
    return true;
  } catch {
    return false;
  }
}

// ---- the operator's view: /metrics and the tenants -----------------------------------

function metrics(text) {
  // Prometheus' text format: `name{label="value",...} number` a line.
  const samples = [];
  for (const line of text.split("\n")) {
    const found = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!found) continue;
    const labels = Object.fromEntries(
      [...(found[2] || "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    samples.push({ name: found[1], labels, value: Number(found[3]) });
  }
  return samples;
}

const seconds = (value) => (value >= 3600 ? `${(value / 3600).toFixed(1)} h`
  : value >= 60 ? `${Math.round(value / 60)} min` : `${Math.round(value)} s`);

async function operatorRefresh() {
  const samples = metrics(await api("/metrics", "text"));
  const one = (name, labels = {}) =>
    samples.find((s) => s.name === name &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  barChart(
    $("all-bookings-chart"),
    STATUSES.map(([status, name, colour]) => [
      name, (one("holdfast_bookings", { status }) || { value: 0 }).value, colour,
    ]),
    "Every tenant's bookings",
  );
  const rows = [];
  for (const s of samples.filter((s) => s.name === "holdfast_notifications_stuck")) {
    rows.push([`${s.labels.channel} messages queued over 10 minutes`, s.value]);
  }
  const stuck = one("holdfast_webhook_deliveries_stuck");
  if (stuck) rows.push(["webhook deliveries pending over 10 minutes", stuck.value]);
  const backlog = one("holdfast_dispatch_backlog");
  if (backlog) rows.push(["waiting over a minute for the dispatcher", backlog.value]);
  const oldest = one("holdfast_webhook_oldest_pending_seconds");
  if (oldest) rows.push(["oldest pending webhook delivery", seconds(oldest.value)]);
  for (const s of samples.filter((s) => s.name === "holdfast_calendar_sync_lag_seconds")) {
    rows.push([`${s.labels.provider} calendars: longest since a sync`, seconds(s.value)]);
  }
  table(
    $("health"),
    ["What", "Now"],
    rows.map(([what, value]) => [
      what,
      typeof value === "number" ? marked(String(value), value ? "bad" : "ok") : value,
    ]),
    "/metrics says nothing about deliveries here.",
  );
  const tenants = await all("/v1/tenants");
  table(
    $("tenants"),
    ["Tenant", "Slug", "Since"],
    tenants.map((t) => [t.name, t.slug || "", when(t.created_at)]),
    "No tenants yet.",
  );
}

async function refresh() {
  if (running) return;
  running = true;
  truncated = false;
  const week = startOfWeek();
  const from = daysFrom(week, -7).toISOString();
  const to = daysFrom(week, 35).toISOString();
  try {
    if (operator) await operatorRefresh();
    else {
      const bookings = await all(
        `/v1/bookings?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
      );
      bookingsPanels(bookings);
      await endpointsPanels();
      await calendarsPanel();
    }
    $("status").textContent = truncated
      ? "Some lists are longer than the console reads (4,000 items): their counts are partial."
      : "";
    $("refreshed").textContent = `Updated ${when(new Date().toISOString())}.`;
    document.body.dataset.ready = "true"; // the browser tests wait for this
  } catch (error) {
    if (error.status === 401 || error.status === 403) showSignIn("Please sign in again.");
    else $("status").textContent = `Could not refresh: ${error.message}`;
  } finally {
    running = false;
  }
}

async function start() {
  config = await fetch("/console/config.json").then((r) => r.json());
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  showSignIn();
}

start();
