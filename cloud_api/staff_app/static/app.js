// StoreSight Staff: who is arriving in my store right now, and have they been greeted?
//
// Sign in (the HttpOnly session cookie), then: today's arrivals (GET /v1/staff/arrivals,
// re-fetched every 30 s and when the page shows again), live updates over server-sent events
// (GET /v1/staff/stream: arrival / greeted / withdrawn), and a "Greeted" button per card.
//
// window.__staff exposes the state for tests and for the curious:
//   state   "starting" | "signed-out" | "signed-in" (also <body data-state>)
//   me, store, listHours, cards (Map id -> {data, el}), spotlightId, stream (the EventSource)
//   ready   a Promise settled when the current sign-in / list load has finished
//
// Nothing personal is written to Cache Storage (the service worker never touches /v1/), and
// sign-out wipes what the page holds: stream, notifications, local/session storage, the list.

import { ApiError, api } from "./api.js";
import { displayName, refreshAgo, renderCard, signature } from "./cards.js";
import { fmtInt, label } from "./format.js";

const STORAGE_KEY = "storesight.staff.v1";
const STAFF_ROLES = new Set(["store_staff", "store_manager"]);
const NOT_FOR_YOU = "This app is for store staff";
const REFRESH_MS = 30_000;
const TICK_MS = 30_000;
const SPOTLIGHT_MS = 3 * 60_000;
const ME_CHECK_GAP_MS = 5_000;
const RECONNECT_MIN_MS = 2_000;
const RECONNECT_MAX_MS = 30_000;

const $ = (id) => document.getElementById(id);

const app = {
  state: "starting",
  me: null,
  store: null,
  listHours: 12,
  latestEventId: 0,
  cards: new Map(),
  spotlightId: null,
  stream: null,
  ready: Promise.resolve(),
};
window.__staff = app;

let session = 0; // bumped at every sign-in and sign-out: late answers of an old session are dropped
let timers = [];
let spotlightTimer = null;
let toastTimer = null;
let reconnectTimer = null;
let reconnectDelay = RECONNECT_MIN_MS;
let lastMeCheck = 0;
let streamOpenedBefore = false;
const pageNotifications = new Set();

function setState(state) {
  app.state = state;
  document.body.dataset.state = state;
}

// ---- local storage (only while signed in) ----------------------------------------------------

function readLocal() {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

function saveLocal(patch) {
  if (!app.me) return;
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ ...readLocal(), ...patch }));
  } catch {
    // private mode or full: the app works without it
  }
}

// ---- small UI helpers ------------------------------------------------------------------------

function showError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}

function toast(message, kind = "info") {
  const box = $("toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), kind === "error" ? 8000 : 5000);
}

function setLive(state, text) {
  const live = $("live");
  live.dataset.state = state;
  live.querySelector(".live-text").textContent = text ?? (state === "live" ? "Live" : "Reconnecting…");
  live.title = state === "live" ? "Receiving arrivals as they happen" : "Reconnecting to the store…";
}

const sentence = (text) => {
  const s = String(text ?? "").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : s;
};

// ---- sign-in and sign-out --------------------------------------------------------------------

function showLogin(message = "") {
  $("app-view").hidden = true;
  $("boot").hidden = true;
  $("login-view").hidden = false;
  showError($("login-error"), message);
  $("login-password").value = "";
  setState("signed-out");
  ($("login-email").value ? $("login-password") : $("login-email")).focus({ preventScroll: true });
}

async function onLogin(event) {
  event.preventDefault();
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  if (!email || !password) {
    showError($("login-error"), "Enter your email and password.");
    return;
  }
  const button = $("login-submit");
  button.disabled = true;
  button.textContent = "Signing in…";
  showError($("login-error"), "");
  let done;
  app.ready = new Promise((resolve) => (done = resolve));
  try {
    const login = await api("/v1/auth/login", { method: "POST", body: { email, password } });
    if (!STAFF_ROLES.has(login?.user?.role)) {
      await quietLogout();
      showLogin(NOT_FOR_YOU);
      return;
    }
    const me = await api("/v1/staff/me");
    await enter(me);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      await quietLogout();
      showLogin(NOT_FOR_YOU);
    } else if (error instanceof ApiError && error.status === 429) {
      const wait = error.retryAfter ? ` Try again in ${waitText(error.retryAfter)}.` : "";
      showError($("login-error"), `${sentence(error.message)}.${wait}`.replace(/\.\./g, "."));
    } else {
      showError($("login-error"), sentence(error.message) || "Sign-in failed.");
      $("login-password").select();
    }
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
    done();
  }
}

const waitText = (seconds) => (seconds < 90 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`);

async function quietLogout() {
  try {
    await api("/v1/auth/logout", { method: "POST" });
  } catch {
    // already signed out, or offline: nothing more to do here
  }
}

async function onLogout() {
  const button = $("logout");
  button.disabled = true;
  // stop listening first: a stream cut by the sign-out would otherwise reconnect and be refused
  session += 1;
  closeStream();
  stopTimers();
  let message = "";
  try {
    await api("/v1/auth/logout", { method: "POST" });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      message = `Signed out on this phone, but the server could not be told (${error.message}). Sign out again when you are back online.`;
    }
  }
  await wipe();
  button.disabled = false;
  showLogin(message);
}

/** Forget everything the signed-in page holds. */
async function wipe() {
  session += 1;
  closeStream();
  stopTimers();
  await closeNotifications();
  try {
    localStorage.clear();
    sessionStorage.clear();
  } catch {
    // storage disabled: nothing was kept
  }
  app.me = null;
  app.store = null;
  app.cards = new Map();
  app.spotlightId = null;
  app.latestEventId = 0;
  $("arrivals").replaceChildren();
  $("store-name").textContent = "";
  $("user-name").textContent = "";
  $("new-pill").hidden = true;
  $("toast").hidden = true;
  showError($("banner"), "");
}

function stopTimers() {
  for (const timer of timers) clearInterval(timer);
  timers = [];
  clearTimeout(spotlightTimer);
  clearTimeout(reconnectTimer);
}

async function sessionEnded() {
  await wipe();
  showLogin("Your session has ended. Sign in again.");
}

async function notForYou() {
  await wipe();
  await quietLogout();
  showLogin(NOT_FOR_YOU);
}

function handleAuthError(error) {
  if (!(error instanceof ApiError)) return false;
  if (error.status === 401) sessionEnded();
  else if (error.status === 403) notForYou();
  else return false;
  return true;
}

// ---- the signed-in page ------------------------------------------------------------------------

async function enter(me) {
  if (!STAFF_ROLES.has(me?.user?.role)) {
    await notForYou();
    return;
  }
  session += 1;
  app.me = me.user;
  app.store = me.store;
  $("store-name").textContent = me.store?.name ?? "Your store";
  $("user-name").textContent = me.user.name || me.user.email || "";
  $("login-view").hidden = true;
  $("boot").hidden = true;
  $("app-view").hidden = false;
  $("login-password").value = "";
  const kept = readLocal();
  saveLocal({
    store_id: me.store?.id ?? me.user.store_id ?? null,
    store_name: me.store?.name ?? null,
    last_event_id: kept.last_event_id ?? null,
    alerts: typeof kept.alerts === "boolean" ? kept.alerts : notificationPermission() === "granted",
  });
  updateAlertsButton();
  await loadArrivals();
  if (!app.me) return; // signed out while loading
  setState("signed-in");
  openStream();
  timers.push(setInterval(loadArrivals, REFRESH_MS), setInterval(tick, TICK_MS));
}

async function loadArrivals() {
  const mine = session;
  try {
    const data = await api("/v1/staff/arrivals");
    if (mine !== session) return;
    app.listHours = Number(data?.list_hours) > 0 ? Number(data.list_hours) : app.listHours;
    const latest = Number(data?.latest_event_id) || 0;
    const arrivals = Array.isArray(data?.arrivals) ? data.arrivals : [];
    const listed = new Set(arrivals.map((a) => a.arrival_id));
    // arrivals the stream delivered after this answer was made stay on the list
    const newer = [...app.cards.values()]
      .map((entry) => entry.data)
      .filter((card) => !listed.has(card.arrival_id) && card.arrival_id > latest);
    app.latestEventId = Math.max(app.latestEventId, latest);
    applyList([...newer, ...arrivals]);
    showError($("banner"), "");
  } catch (error) {
    if (mine !== session || handleAuthError(error)) return;
    showError($("banner"), `The list could not be refreshed: ${error.message}`);
  }
}

function isExpired(card, now = Date.now()) {
  const at = new Date(card.at).getTime();
  return Number.isFinite(at) && now - at > app.listHours * 3_600_000;
}

const newestFirst = (a, b) =>
  new Date(b.at).getTime() - new Date(a.at).getTime() || b.arrival_id - a.arrival_id;

/** Make the list show exactly `cards` (newest first, expired ones dropped), re-using cards
 * whose content has not changed. */
function applyList(cards) {
  const now = Date.now();
  const next = new Map();
  const fresh = cards.filter((c) => c && Number.isFinite(Number(c.arrival_id)) && !isExpired(c, now));
  for (const card of fresh.sort(newestFirst)) {
    if (next.has(card.arrival_id)) continue;
    const old = app.cards.get(card.arrival_id);
    const sig = signature(card, app.me);
    if (old && old.sig === sig) {
      refreshAgo(old.el, card, now);
      next.set(card.arrival_id, old);
    } else {
      next.set(card.arrival_id, { data: card, sig, el: renderCard(card, app.me, { now }) });
    }
  }
  app.cards = next;
  const spot = next.get(app.spotlightId);
  if (app.spotlightId !== null && (!spot || spot.data.greeted)) clearSpotlight(false);
  drawList();
}

function drawList() {
  const list = $("arrivals");
  const elements = [...app.cards.values()].map((entry) => entry.el);
  elements.forEach((el, i) => {
    el.classList.toggle("spotlight", Number(el.dataset.arrivalId) === app.spotlightId);
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] ?? null);
  });
  while (list.children.length > elements.length) list.lastElementChild.remove();
  $("no-arrivals").hidden = elements.length > 0;
  const waiting = [...app.cards.values()].filter((e) => !e.data.greeted).length;
  const total = app.cards.size;
  $("count").textContent = total === 1 ? "1 arrival" : `${fmtInt(total)} arrivals`;
  $("waiting").textContent = waiting ? `${fmtInt(waiting)} to greet` : total ? "All greeted" : "";
  $("waiting").hidden = total === 0;
  $("waiting").dataset.waiting = String(waiting);
  $("next-greet").disabled = waiting === 0;
  $("next-greet").querySelector(".next-text").textContent = waiting
    ? "Next to greet"
    : total
      ? "Everyone greeted"
      : "No one waiting";
  $("next-greet").querySelector(".next-count").textContent = waiting ? fmtInt(waiting) : "";
  $("next-greet").setAttribute("aria-label", waiting ? `Next to greet: ${waiting} waiting` : "Nobody waiting to be greeted");
}

function tick() {
  applyList([...app.cards.values()].map((entry) => entry.data));
}

function replaceCard(card) {
  const others = [...app.cards.values()].map((e) => e.data).filter((c) => c.arrival_id !== card.arrival_id);
  applyList([card, ...others]);
}

function removeCards(ids) {
  const gone = new Set(ids.map(Number));
  applyList([...app.cards.values()].map((e) => e.data).filter((c) => !gone.has(c.arrival_id)));
}

function spotlight(id) {
  app.spotlightId = id;
  clearTimeout(spotlightTimer);
  spotlightTimer = setTimeout(() => clearSpotlight(true), SPOTLIGHT_MS);
}

function clearSpotlight(redraw) {
  app.spotlightId = null;
  clearTimeout(spotlightTimer);
  if (redraw) drawList();
}

function scrollToCard(id) {
  const entry = app.cards.get(Number(id));
  if (!entry) return;
  entry.el.scrollIntoView({ behavior: "smooth", block: "start" });
  const button = entry.el.querySelector("button.greet");
  (button ?? entry.el).focus?.({ preventScroll: true });
}

// ---- greeting ------------------------------------------------------------------------------

async function onGreet(button) {
  const article = button.closest("article.arrival");
  const id = Number(article?.dataset.arrivalId);
  if (!Number.isFinite(id)) return;
  const mine = session;
  button.disabled = true;
  button.classList.add("busy");
  button.querySelector(".greet-label").textContent = "Saving…";
  try {
    const card = await api(`/v1/staff/arrivals/${encodeURIComponent(id)}/greeted`, { method: "POST" });
    if (mine !== session) return;
    if (app.spotlightId === id) clearSpotlight(false);
    replaceCard(card);
  } catch (error) {
    if (mine !== session || handleAuthError(error)) return;
    if (error instanceof ApiError && error.status === 409) {
      toast(sentence(error.message) || "Someone else greeted this customer first.");
      await refreshCard(id);
    } else if (error instanceof ApiError && error.status === 404) {
      toast("This arrival is no longer on the list.");
      removeCards([id]);
    } else {
      toast(`Not saved: ${error.message}`, "error");
      button.disabled = false;
      button.classList.remove("busy");
      button.querySelector(".greet-label").textContent = "Greeted";
    }
  }
}

async function refreshCard(id) {
  const mine = session;
  try {
    const card = await api(`/v1/staff/arrivals/${encodeURIComponent(id)}`);
    if (mine === session) replaceCard(card);
  } catch (error) {
    if (mine !== session || handleAuthError(error)) return;
    if (error instanceof ApiError && error.status === 404) removeCards([id]);
    else toast(`Could not refresh the card: ${error.message}`, "error");
  }
}

function onNextGreet() {
  const next = [...app.cards.values()].find((e) => !e.data.greeted);
  if (next) scrollToCard(next.data.arrival_id);
}

// ---- the live stream ---------------------------------------------------------------------------

function openStream() {
  closeStream();
  if (!("EventSource" in window)) {
    setLive("reconnecting", "Refreshing");
    return;
  }
  const mine = session;
  // from where the list left off, so nothing raised in between is missed (a reconnect of
  // this EventSource sends Last-Event-ID instead, which the server prefers)
  const after = app.latestEventId > 0 ? `?after=${app.latestEventId}` : "";
  const stream = new EventSource(`/v1/staff/stream${after}`);
  app.stream = stream;
  setLive("reconnecting", "Connecting…");
  const mineOnly = (handler) => (event) => {
    if (app.stream === stream && mine === session) handler(event);
  };
  stream.addEventListener("open", mineOnly(() => {
    reconnectDelay = RECONNECT_MIN_MS;
    setLive("live");
    if (streamOpenedBefore) loadArrivals(); // catch up on anything missed while away
    streamOpenedBefore = true;
  }));
  stream.addEventListener("arrival", mineOnly(onArrival));
  stream.addEventListener("greeted", mineOnly(onGreetedEvent));
  stream.addEventListener("withdrawn", mineOnly(onWithdrawn));
  stream.addEventListener("error", mineOnly(() => onStreamError(stream)));
}

function closeStream() {
  clearTimeout(reconnectTimer);
  if (app.stream) app.stream.close();
  app.stream = null;
  streamOpenedBefore = false;
}

async function onStreamError(stream) {
  setLive("reconnecting");
  const mine = session;
  const now = Date.now();
  if (now - lastMeCheck < ME_CHECK_GAP_MS && stream.readyState !== EventSource.CLOSED) return;
  lastMeCheck = now;
  try {
    await api("/v1/staff/me");
  } catch (error) {
    if (mine !== session || app.stream !== stream) return;
    if (handleAuthError(error)) return;
  }
  if (mine !== session || app.stream !== stream) return;
  // EventSource reconnects by itself, except after an answer it cannot use (it closes then)
  if (stream.readyState === EventSource.CLOSED) {
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(() => {
      if (mine === session && app.stream === stream) {
        openStream();
        streamOpenedBefore = true;
      }
    }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
  }
}

function parse(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

function onArrival(event) {
  const card = parse(event);
  if (!card || !Number.isFinite(Number(card.arrival_id))) return;
  const eventId = Number(event.lastEventId) || Number(card.arrival_id);
  if (eventId) {
    app.latestEventId = Math.max(app.latestEventId, eventId);
    saveLocal({ last_event_id: app.latestEventId });
  }
  const known = app.cards.has(card.arrival_id);
  if (known || isExpired(card)) {
    if (known) replaceCard(card); // a replay after reconnecting: no new alert
    return;
  }
  if (!card.greeted) spotlight(card.arrival_id);
  replaceCard(card);
  announce(card);
}

function onGreetedEvent(event) {
  const data = parse(event);
  const entry = data && app.cards.get(Number(data.arrival_id));
  if (!entry || !data.greeted) return;
  replaceCard({ ...entry.data, greeted: data.greeted });
}

function onWithdrawn(event) {
  const data = parse(event);
  const ids = Array.isArray(data?.arrival_ids) ? data.arrival_ids.map(Number) : [];
  if (!ids.length) return;
  removeCards(ids);
  closeNotifications(ids.map((id) => `arrival-${id}`));
}

function announce(card) {
  if (window.scrollY > 160) {
    const pill = $("new-pill");
    pill.querySelector(".pill-text").textContent = `Now arriving: ${displayName(card)}`;
    pill.hidden = false;
  }
  try {
    if (typeof navigator.vibrate === "function") navigator.vibrate([200, 100, 200]);
  } catch {
    // vibration needs a user gesture first in some browsers
  }
  notify(card);
}

// ---- notifications -------------------------------------------------------------------------------

const notificationPermission = () => ("Notification" in window ? Notification.permission : "unsupported");

const alertsOn = () => notificationPermission() === "granted" && readLocal().alerts !== false;

function updateAlertsButton() {
  const button = $("enable-alerts");
  const permission = notificationPermission();
  const on = alertsOn();
  button.dataset.state = on ? "on" : permission === "denied" ? "blocked" : "off";
  button.setAttribute("aria-pressed", String(on));
  button.querySelector(".alerts-text").textContent = on
    ? "Alerts on"
    : permission === "denied"
      ? "Alerts blocked"
      : "Turn on alerts";
}

async function onAlerts() {
  const permission = notificationPermission();
  if (permission === "unsupported") {
    toast("This browser cannot show alerts. Keep the app open to see arrivals.");
    return;
  }
  if (alertsOn()) {
    saveLocal({ alerts: false });
    updateAlertsButton();
    toast("Alerts off. New arrivals still appear here.");
    return;
  }
  let answer = permission;
  if (answer === "default") {
    try {
      answer = await Notification.requestPermission();
    } catch {
      answer = Notification.permission;
    }
  }
  if (answer === "granted") {
    saveLocal({ alerts: true });
    toast("Alerts on: you will be notified of each arrival.");
  } else {
    toast("Alerts are blocked for this site. Allow notifications in the browser settings.", "error");
  }
  updateAlertsButton();
}

async function registration() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    const reg = await navigator.serviceWorker.getRegistration("/staff/");
    return reg?.active ? reg : null;
  } catch {
    return null;
  }
}

async function notify(card) {
  if (!alertsOn()) return;
  const member = card.member;
  const body = [
    member ? `${label(member.level)} member` : "Not a member",
    `${label(card.purchase_level)} purchase level`,
    `${fmtInt(card.visit_count)} visits`,
  ].join(" · ");
  const options = {
    body,
    icon: "/staff/icons/icon-192.png",
    tag: `arrival-${card.arrival_id}`,
    data: { arrival_id: card.arrival_id },
  };
  const title = displayName(card);
  const reg = await registration();
  try {
    if (reg) {
      await reg.showNotification(title, options);
      return;
    }
  } catch {
    // fall back to a page notification below
  }
  try {
    const shown = new Notification(title, options);
    pageNotifications.add(shown);
    shown.addEventListener("close", () => pageNotifications.delete(shown));
    shown.addEventListener("click", () => {
      window.focus();
      scrollToCard(card.arrival_id);
      shown.close();
    });
  } catch {
    // notifications are not available here (some mobile browsers only allow them from a worker)
  }
}

/** Close shown notifications: all of them, or those with the given tags. */
async function closeNotifications(tags = null) {
  const wanted = (n) => !tags || tags.includes(n.tag);
  for (const shown of [...pageNotifications]) {
    if (wanted(shown)) {
      shown.close();
      pageNotifications.delete(shown);
    }
  }
  if (!("serviceWorker" in navigator)) return;
  try {
    const regs = await navigator.serviceWorker.getRegistrations();
    for (const reg of regs) {
      for (const shown of await reg.getNotifications()) if (wanted(shown)) shown.close();
    }
  } catch {
    // no registration: nothing shown from a worker
  }
}

// ---- start-up ----------------------------------------------------------------------------------

function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/staff/sw.js", { scope: "/staff/" }).catch(() => {
    // no offline shell then; the app itself still works
  });
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data?.type === "show-arrival") scrollToCard(event.data.arrival_id);
  });
}

function bind() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("enable-alerts").addEventListener("click", onAlerts);
  $("next-greet").addEventListener("click", onNextGreet);
  $("arrivals").addEventListener("click", (event) => {
    const button = event.target.closest("button.greet");
    if (button && !button.disabled) onGreet(button);
  });
  $("new-pill").addEventListener("click", () => {
    $("new-pill").hidden = true;
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
  window.addEventListener(
    "scroll",
    () => {
      if (window.scrollY < 80) $("new-pill").hidden = true;
    },
    { passive: true },
  );
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || !app.me) return;
    updateAlertsButton();
    loadArrivals();
    if (!app.stream || app.stream.readyState === EventSource.CLOSED) openStream();
  });
}

async function start() {
  setState("starting");
  bind();
  registerWorker();
  let done;
  app.ready = new Promise((resolve) => (done = resolve));
  try {
    // "not signed in" is an answer here, not a 401: the page starts without a console error
    const answer = await api("/v1/staff/session");
    if (answer.signed_in) await enter(answer.me);
    else showLogin();
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      await notForYou();
    } else if (error instanceof ApiError && error.status === 401) {
      showLogin();
    } else {
      showLogin(sentence(error.message));
    }
  } finally {
    done();
  }
}

start();
