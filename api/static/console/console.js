// Holdfast's operations console (docs/console.md): the business view beside the Temporal
// UI. Every number is read from the public API with the tenant's secret key: bookings by
// status, held-to-confirmed conversion, what failed and needs a look, calendar
// connections and webhook endpoints. It refreshes itself every 30 seconds.
"use strict";

const $ = (id) => document.getElementById(id);
const DAY = 86400000;
const KEY_SLOT = "holdfast-console-key";
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
let refreshing = null;

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `the request failed (${status})`);
    this.status = status;
  }
}

async function api(path) {
  const key = sessionStorage.getItem(KEY_SLOT);
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
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
    if (!page.next_cursor) break;
    cursor = encodeURIComponent(page.next_cursor);
  }
  return items;
}

// ---- signing in ----------------------------------------------------------------------

function showSignIn(message) {
  sessionStorage.removeItem(KEY_SLOT);
  clearInterval(refreshing);
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) {
    $("sign-in-error").textContent = "Enter a secret key.";
    return;
  }
  sessionStorage.setItem(KEY_SLOT, key);
  $("key").value = "";
  await open();
}

async function open() {
  try {
    await api("/v1/webhook-endpoints?limit=1"); // a tenant's secret key, or not
  } catch (error) {
    const why = error.status === 403 ? "That key cannot read the console: use a secret key."
      : error.status === 401 ? "That key is unknown or revoked." : error.message;
    showSignIn(why);
    return;
  }
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("dashboard").hidden = false;
  await refresh();
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

function startOfWeek() {
  const now = new Date();
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  return new Date(today.getTime() - ((today.getDay() + 6) % 7) * DAY); // Monday
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
  const now = new Date();
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const within = (from, to) =>
    bookings.filter((b) => new Date(b.start) >= from && new Date(b.start) < to);
  const thisWeek = within(week, new Date(week.getTime() + 7 * DAY));
  barChart($("today-chart"), counts(within(today, new Date(today.getTime() + DAY))), "Today");
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

async function refresh() {
  const week = startOfWeek();
  const from = new Date(week.getTime() - 7 * DAY).toISOString();
  const to = new Date(week.getTime() + 35 * DAY).toISOString();
  try {
    const bookings = await all(
      `/v1/bookings?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
    );
    bookingsPanels(bookings);
    await endpointsPanels();
    await calendarsPanel();
    $("status").textContent = "";
    $("refreshed").textContent = `Updated ${when(new Date().toISOString())}.`;
    document.body.dataset.ready = "true"; // the browser tests wait for this
  } catch (error) {
    if (error.status === 401 || error.status === 403) showSignIn("Please sign in again.");
    else $("status").textContent = `Could not refresh: ${error.message}`;
  }
}

async function start() {
  config = await fetch("/console/config.json").then((r) => r.json());
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  if (sessionStorage.getItem(KEY_SLOT)) await open();
  else showSignIn();
}

start();
