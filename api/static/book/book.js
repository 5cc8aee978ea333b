// Holdfast's reference booking page (docs/booking-page.md). It uses only the public API,
// with a publishable key: read the service, list a week's slots (kept live by the
// availability stream), book one, pay with Stripe.js, and cancel or move the booking
// through its access link. No framework and no build step: copy it and change it.
"use strict";

const $ = (id) => document.getElementById(id);
const [, , slug, code] = location.pathname.split("/").map((part) => {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // a malformed escape: the service lookup will say it is unknown
  }
});
const fromHash = new URLSearchParams(location.hash.slice(1));
const key = fromHash.get("key") || document.querySelector('meta[name="holdfast-key"]').content;
const access = { booking: fromHash.get("booking"), token: fromHash.get("token") };

const state = {
  service: null,
  timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  weekOffset: 0, // the week shown: days from today (0, 7, 14, ...) in the chosen zone
  loads: 0, // numbers each week query, so a late answer never replaces a newer one
  chosen: null, // the slot being booked
  booking: null, // the booking held or made, until it is settled on this page
  moving: null, // a booking being rescheduled (from its access link)
  busy: false, // a reschedule or payment under way
  stream: null, // { range, controller } of the open availability stream
  countdown: null,
};

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the request failed (${status})`);
    this.status = status;
    this.code = error.code || "error";
  }
}

async function api(path, { method = "GET", body, token, idempotencyKey } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["X-Booking-Token"] = token;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

// ---- showing one step at a time ------------------------------------------------------

const STEPS = ["picker", "details", "payment", "done", "manage"];

function show(step, focus) {
  for (const id of STEPS) $(id).hidden = id !== step;
  const target = focus || $(step).querySelector("h2");
  if (target) {
    target.setAttribute("tabindex", "-1");
    target.focus();
  }
}

function say(message) {
  $("status").textContent = message;
}

// ---- times ---------------------------------------------------------------------------

// Days are the chosen zone's, not the browser's: a week runs from midnight there, and a
// day's midnight is found on that zone's wall clock (DST changes included).
function wallClock(tz, date) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(date);
  const p = Object.fromEntries(parts.map((part) => [part.type, Number(part.value)]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

function dayStart(offsetDays) {
  // Midnight, in the chosen zone, `offsetDays` after today there.
  const today = new Date(wallClock(state.timezone, new Date()));
  const wall = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(),
    today.getUTCDate() + offsetDays);
  let instant = wall;
  for (let i = 0; i < 2; i++) instant -= wallClock(state.timezone, new Date(instant)) - wall;
  return new Date(instant);
}

function format(iso, options) {
  return new Intl.DateTimeFormat(undefined, { timeZone: state.timezone, ...options }).format(
    new Date(iso),
  );
}

const dayOf = (iso) => format(iso, { weekday: "long", day: "numeric", month: "long" });
const timeOf = (iso) => format(iso, { hour: "2-digit", minute: "2-digit" });
const whenOf = (iso) => `${dayOf(iso)}, ${timeOf(iso)}`;

function money(price) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: price.currency }).format(
    price.amount / 100,
  );
}

// ---- the service and its week --------------------------------------------------------

async function loadService() {
  state.service = await api(`/v1/services/${encodeURIComponent(code)}`);
  const s = state.service;
  $("service-name").textContent = s.name;
  document.title = `Book: ${s.name}`;
  const facts = [`${s.duration_minutes} minutes`];
  if (s.price) facts.push(money(s.price));
  $("service-facts").textContent = facts.join(" · ");
}

function fillTimezones() {
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  const select = $("timezone");
  for (const zone of new Set([state.timezone, ...zones])) {
    select.add(new Option(zone.replaceAll("_", " "), zone, false, zone === state.timezone));
  }
  select.addEventListener("change", () => {
    state.timezone = select.value;
    loadWeek();
  });
}

function weekRange() {
  const start = dayStart(state.weekOffset).toISOString();
  return { start, end: dayStart(state.weekOffset + 7).toISOString() };
}

async function loadWeek() {
  const range = weekRange();
  const load = ++state.loads;
  $("previous-week").disabled = state.weekOffset <= 0;
  $("week-label").textContent = `${dayOf(range.start)} to ${
    dayOf(dayStart(state.weekOffset + 6).toISOString())}`;
  const query = {
    service: code,
    range_start: new Date(Math.max(Date.parse(range.start), Date.now())).toISOString(),
    range_end: range.end,
    timezone: state.timezone,
  };
  if (state.moving) query.ignore_booking_id = state.moving.id;
  try {
    const found = await api("/v1/availability/query", { method: "POST", body: query });
    if (load === state.loads) renderWeek(found.slots);
  } catch (error) {
    if (load === state.loads) say(`Times could not be loaded: ${error.message}`);
  }
  listen(range);
}

function renderWeek(slots) {
  const days = $("days");
  const focused = document.activeElement && document.activeElement.dataset.start;
  const byDay = new Map();
  for (let i = 0; i < 7; i++) byDay.set(dayOf(dayStart(state.weekOffset + i).toISOString()), []);
  for (const slot of slots) {
    if (slot.allocation_token) {
      const list = byDay.get(dayOf(slot.start));
      if (list) list.push(slot);
    }
  }
  days.replaceChildren();
  for (const [day, list] of byDay) {
    const column = document.createElement("div");
    column.className = "day";
    const title = document.createElement("h3");
    title.textContent = day;
    column.append(title);
    if (!list.length) {
      const none = document.createElement("p");
      none.className = "none";
      none.textContent = "No free times";
      column.append(none);
    } else {
      const ul = document.createElement("ul");
      for (const slot of list) {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "slot";
        button.dataset.start = slot.start;
        button.textContent = timeOf(slot.start);
        button.setAttribute("aria-label", `Book ${whenOf(slot.start)}`);
        button.addEventListener("click", () => choose(slot));
        li.append(button);
        ul.append(li);
      }
      column.append(ul);
    }
    days.append(column);
  }
  if (focused) {
    // A refresh replaced the buttons: keep the keyboard where it was, or say why not.
    const same = days.querySelector(`button[data-start="${CSS.escape(focused)}"]`);
    if (same) same.focus();
    else {
      say("The time you were on has just been taken.");
      $("picker-title").focus();
    }
  }
}

// ---- live availability: Server-Sent Events read with fetch (it can send the key) -----

function listen(range) {
  // One stream per week shown: kept open while the week stays, replaced when it changes.
  if (state.stream && state.stream.range.start === range.start) return;
  if (state.stream) state.stream.controller.abort();
  const stream = (state.stream = { range, controller: new AbortController() });
  const params = new URLSearchParams({
    service: code,
    range_start: range.start,
    range_end: range.end,
  });
  const changed = () => {
    if (!$("picker").hidden) loadWeek();
  };
  readEvents(`/v1/availability/stream?${params}`, stream.controller.signal, changed).catch(() => {
    // The stream dropped: open it again a little later, and catch up on what was missed.
    if (stream.controller.signal.aborted || stream !== state.stream) return;
    state.stream = null;
    setTimeout(() => {
      if (state.stream === null) {
        listen(range);
        changed();
      }
    }, 3000);
  });
}

async function readEvents(url, signal, onChange) {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}` }, signal });
  if (!response.ok || !response.body) throw new Error(`stream ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended");
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (/^event: slots\.changed$/m.test(event)) onChange();
    }
  }
}

// ---- booking -------------------------------------------------------------------------

function choose(slot) {
  if (state.moving) {
    if (state.busy) return; // one move at a time (a double click moves once)
    state.busy = true;
    moveTo(slot)
      .catch((error) => say(`The booking could not be moved: ${error.message}`))
      .finally(() => (state.busy = false));
    return;
  }
  state.chosen = slot;
  $("chosen").textContent = `${state.service.name}, ${whenOf(slot.start)} (${state.timezone})`;
  $("form-error").textContent = "";
  $("hold").disabled = false;
  $("details-form").dataset.idempotencyKey = crypto.randomUUID();
  show("details", $("name"));
}

async function hold(event) {
  event.preventDefault();
  const form = $("details-form");
  const customer = {
    name: form.name.value.trim(),
    email: form.email.value.trim(),
    locale: form.locale.value,
    timezone: state.timezone,
  };
  if (form.phone.value.trim()) customer.phone = form.phone.value.trim();
  if (!customer.name || !customer.email.includes("@")) {
    $("form-error").textContent = "Please give your name and an email address.";
    return;
  }
  $("hold").disabled = true;
  try {
    const booking = await api("/v1/bookings", {
      method: "POST",
      body: { allocation_token: state.chosen.allocation_token, customer },
      idempotencyKey: form.dataset.idempotencyKey,
    });
    state.booking = booking;
    if (booking.status === "pending_payment") await startPayment(booking);
    else finished(booking);
  } catch (error) {
    $("hold").disabled = false;
    if (error.code === "slot_unavailable") {
      say("Someone has just taken that time. Please choose another.");
      show("picker");
      loadWeek();
    } else {
      $("form-error").textContent = error.message;
    }
  }
}

// ---- payment -------------------------------------------------------------------------

let stripeReady = null; // Stripe.js, loaded only when a payment is due

function loadStripe() {
  stripeReady ||= fetch("/book/config.json")
    .then((r) => r.json())
    .then(
      (config) =>
        new Promise((resolve, reject) => {
          if (!config.stripe_publishable_key) {
            reject(new Error("card payments are not set up here"));
            return;
          }
          const script = document.createElement("script");
          script.src = config.stripe_js;
          script.onload = () => resolve(window.Stripe(config.stripe_publishable_key));
          script.onerror = () => reject(new Error("Stripe.js could not be loaded"));
          document.head.append(script);
        }),
    )
    .catch((error) => {
      stripeReady = null; // try again next time
      throw error;
    });
  return stripeReady;
}

let card = null;

async function startPayment(booking) {
  $("held").textContent =
    `${whenOf(booking.start)} is held for you. ` +
    `Pay ${money({ amount: booking.payment.amount, currency: booking.payment.currency })} ` +
    "to confirm it.";
  $("payment-error").textContent = "";
  $("pay").disabled = true;
  show("payment");
  startCountdown(booking.hold_expires_at);
  try {
    const stripe = await loadStripe();
    if (!card) {
      card = stripe.elements().create("card");
      card.mount("#card");
      labelCardInputs();
    }
    $("pay").disabled = false;
  } catch (error) {
    $("payment-error").textContent = error.message;
  }
}

function labelCardInputs() {
  // Stripe's own element labels itself; the local stand-in's plain inputs get labels here.
  const names = { number: "Card number", exp_month: "Expiry month", exp_year: "Expiry year",
    cvc: "Security code", postal_code: "Postal code" };
  for (const input of $("card").querySelectorAll("input")) {
    const label = names[input.placeholder];
    if (label && !input.getAttribute("aria-label")) input.setAttribute("aria-label", label);
  }
}

async function pay() {
  const booking = state.booking;
  if (!booking || state.busy) return;
  state.busy = true;
  $("pay").disabled = true;
  $("payment-error").textContent = "";
  say("Paying…");
  try {
    const stripe = await loadStripe();
    const result = await stripe.confirmCardPayment(booking.payment.client_secret, {
      payment_method: { card },
    });
    if (result.error) {
      $("payment-error").textContent = `The payment did not go through: ${
        result.error.message || "the card was declined"
      }`;
    }
    // Declined, the booking fails at once (or, if the service allows, waits for another
    // card): a short look tells which. Paid, the webhook confirms it within moments.
    settle(await settledStatus(booking, result.error ? 3 : 20));
  } catch (error) {
    $("payment-error").textContent = `The payment could not be made: ${error.message}`;
  } finally {
    state.busy = false;
    if (!$("payment").hidden) say(""); // still paying: "Paying…" is over
    if (state.booking === booking) $("pay").disabled = false;
  }
}

function settle(booking) {
  // The one place a held booking's outcome is shown, whoever learns it first (the
  // payment, or the countdown reaching zero).
  if (!state.booking || state.booking.id !== booking.id) return;
  if (booking.status === "pending_payment") return;
  if (booking.status === "confirmed") finished(booking);
  else ended(booking);
}

async function settledStatus(booking, seconds = 20) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const now = await readBooking(booking.id, booking.access_token);
    now.access_token = booking.access_token; // (a read does not answer it again)
    if (now.status !== "pending_payment" || Date.now() > until) return now;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

function readBooking(id, token) {
  return api(`/v1/bookings/${encodeURIComponent(id)}`, { token });
}

function startCountdown(expiresAt) {
  clearInterval(state.countdown);
  const until = new Date(expiresAt).getTime();
  let warned = false;
  $("countdown-alert").textContent = "";
  const tick = async () => {
    const left = Math.max(0, Math.round((until - Date.now()) / 1000));
    const text = `Held for ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} more`;
    $("countdown").textContent = text;
    if (left <= 60 && !warned) {
      warned = true;
      $("countdown-alert").textContent = "Less than a minute left to pay.";
    }
    if (left === 0 && state.booking) {
      clearInterval(state.countdown);
      $("pay").disabled = true;
      settle(await settledStatus(state.booking, 30));
    }
  };
  tick();
  state.countdown = setInterval(tick, 1000);
}

function ended(booking) {
  clearInterval(state.countdown);
  const why = {
    expired: "Your hold expired before payment, so the time was released.",
    failed: "The payment failed, so the time was released.",
    cancelled: "The booking was cancelled.",
  };
  say(why[booking.status] || `The booking is ${booking.status}.`);
  state.booking = null;
  show("picker");
  loadWeek();
}

// ---- booked, and the access link -----------------------------------------------------

function manageUrl(booking) {
  const params = new URLSearchParams({ key, booking: booking.id, token: booking.access_token });
  return `${location.pathname}#${params}`;
}

function finished(booking) {
  clearInterval(state.countdown);
  state.booking = null;
  say("");
  $("done-summary").textContent = `${state.service.name}, ${whenOf(booking.start)}: ${
    booking.status}. A confirmation is on its way to you.`;
  $("manage-link").href = manageUrl(booking);
  show("done");
}

async function manage() {
  try {
    const booking = await readBooking(access.booking, access.token);
    booking.access_token = access.token;
    state.moving = null;
    state.booking = booking;
    $("manage-summary").textContent = `${state.service.name}, ${whenOf(booking.start)}: ${
      booking.status
    }.`;
    const live = ["confirmed", "pending_payment"].includes(booking.status);
    $("cancel").hidden = $("reschedule").hidden = !live;
    // Held and not yet paid (the customer left the page): it can be paid from here.
    $("pay-held").hidden = !(booking.status === "pending_payment" && booking.payment &&
      booking.payment.client_secret);
    show("manage");
  } catch (error) {
    say(`This booking could not be found: ${error.message}`);
  }
}

async function cancelBooking() {
  if (!confirm("Cancel this booking?")) return;
  const booking = state.booking;
  try {
    const cancelled = await api(`/v1/bookings/${encodeURIComponent(booking.id)}/cancel`, {
      method: "POST",
      body: { reason: "cancelled by the customer on the booking page" },
      token: booking.access_token,
    });
    $("manage-summary").textContent = `${state.service.name}, ${whenOf(cancelled.start)}: ${
      cancelled.status
    }.`;
    $("cancel").hidden = $("reschedule").hidden = true;
    say("Your booking is cancelled.");
  } catch (error) {
    $("manage-error").textContent = error.message;
  }
}

function startMoving() {
  state.moving = state.booking;
  say(`Moving your booking of ${whenOf(state.moving.start)}: choose the new time.`);
  show("picker");
  loadWeek();
}

async function moveTo(slot) {
  const booking = state.moving;
  const moved = await api(`/v1/bookings/${encodeURIComponent(booking.id)}/reschedule`, {
    method: "POST",
    body: { allocation_token: slot.allocation_token },
    token: booking.access_token,
  });
  moved.access_token = booking.access_token;
  state.moving = null;
  finished(moved);
}

// ---- start ---------------------------------------------------------------------------

async function start() {
  if (!key) {
    say("This page needs a publishable key: add #key=pk_… to its address.");
    return;
  }
  fillTimezones();
  $("previous-week").addEventListener("click", () => {
    state.weekOffset = Math.max(0, state.weekOffset - 7);
    loadWeek();
  });
  $("next-week").addEventListener("click", () => {
    state.weekOffset += 7;
    loadWeek();
  });
  $("details-form").addEventListener("submit", hold);
  $("back").addEventListener("click", () => show("picker"));
  $("pay").addEventListener("click", pay);
  $("again").addEventListener("click", () => {
    show("picker");
    loadWeek();
  });
  $("cancel").addEventListener("click", cancelBooking);
  $("pay-held").addEventListener("click", () => startPayment(state.booking));
  $("manage-link").addEventListener("click", (event) => {
    // The same fragment as now (a booking just moved): no hashchange, so start again.
    if (new URL(event.currentTarget.href).hash === location.hash) location.reload();
  });
  $("reschedule").addEventListener("click", startMoving);
  try {
    await loadService();
    if (state.service.tenant_slug !== slug) {
      say("This page's address and its key belong to different businesses.");
      return;
    }
  } catch (error) {
    say(`This service cannot be booked here: ${error.message}`);
    return;
  } finally {
    $("main").setAttribute("aria-busy", "false");
  }
  if (access.booking && access.token) await manage();
  else {
    show("picker", $("service-name"));
    await loadWeek();
  }
  document.body.dataset.ready = "true"; // the browser tests wait for this
}

// The access link is this page with another fragment: followed from the page itself, the
// browser only changes the fragment, so start again from it.
addEventListener("hashchange", () => location.reload());
start();
