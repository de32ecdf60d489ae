// The StoreSight dashboard: sign in, pick a period and stores, read every report, draw it.
//
// window.__dashboard exposes the state for tests and for the curious:
//   state   "starting" | "signed-out" | "loading" | "ready" (also <body data-state>)
//   ready   a Promise settled when the current load has finished (every section drawn or
//           failed); replaced at each load
//   charts  {sectionId: Chart}   tables {sectionId: {rows, cells}}
//   errors  {sectionId: "message"} for sections whose report failed
//   user, scope, filters, reload()

import { ApiError, api, reportUrl } from "./api.js";
import { daysAgo, fmtCompact, fmtInt, fmtMoney, fmtPct, h, isoDate, num } from "./format.js";
import { SECTIONS } from "./sections.js";

const ROLE_NAMES = { admin: "Administrator", head_office: "Head office", store_manager: "Store manager" };
const DEFAULT_DAYS = 90;

const $ = (id) => document.getElementById(id);

const dashboard = {
  state: "starting",
  ready: Promise.resolve(),
  charts: {},
  tables: {},
  errors: {},
  reports: {},
  user: null,
  scope: null,
  filters: null,
  reload: () => loadAll(),
};
window.__dashboard = dashboard;

let generation = 0;
const views = new Map();

function setState(state) {
  dashboard.state = state;
  document.body.dataset.state = state;
}

// ---- Chart.js defaults -------------------------------------------------------------------

function configureCharts() {
  const d = Chart.defaults;
  d.font.family = getComputedStyle(document.documentElement).fontFamily;
  d.font.size = 12;
  d.color = "#475569";
  d.borderColor = "#eef2f7";
  d.maintainAspectRatio = false;
  d.responsive = true;
  // tests and screenshots see the final picture at once; people get a short transition
  d.animation = navigator.webdriver ? false : { duration: 350 };
  d.plugins.legend.position = "top";
  d.plugins.legend.align = "end";
  d.plugins.legend.labels.usePointStyle = true;
  d.plugins.legend.labels.boxWidth = 8;
  d.plugins.legend.labels.boxHeight = 8;
  d.plugins.tooltip.backgroundColor = "rgba(15, 23, 42, 0.92)";
  d.plugins.tooltip.padding = 10;
  d.plugins.tooltip.cornerRadius = 8;
  d.plugins.tooltip.boxPadding = 4;
  d.plugins.tooltip.usePointStyle = true;
}

// ---- sign-in ------------------------------------------------------------------------------

function showLogin(message = "") {
  destroyAll();
  dashboard.user = null;
  dashboard.scope = null;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  showError($("login-error"), message);
  $("login-password").value = "";
  setState("signed-out");
  ($("login-email").value ? $("login-password") : $("login-email")).focus();
}

function showError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
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
  try {
    const session = await api("/v1/auth/login", { method: "POST", body: { email, password } });
    await enter(session.user);
  } catch (error) {
    const message =
      error instanceof ApiError && error.status === 401
        ? `Sign-in failed: ${error.detail}`
        : `Sign-in failed: ${error.message}`;
    showError($("login-error"), message);
    $("login-password").select();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

async function onLogout() {
  try {
    await api("/v1/auth/logout", { method: "POST" });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      showError($("global-error"), `Sign-out failed: ${error.message}`);
      return;
    }
  }
  showLogin();
}

// ---- the signed-in page -----------------------------------------------------------------

async function enter(user) {
  const scope = await api("/v1/scope");
  dashboard.user = scope.user ?? user;
  dashboard.scope = scope;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  showError($("global-error"), "");
  renderHeader(dashboard.user, scope);
  renderFilters(dashboard.user, scope);
  buildSections();
  await loadAll();
}

function renderHeader(user, scope) {
  $("user-name").textContent = user.name || user.email;
  const role = $("user-role");
  role.textContent = ROLE_NAMES[user.role] ?? user.role;
  role.className = `role-badge ${user.role}`;
  const own = scope.stores.find((s) => s.id === user.store_id);
  $("user-detail").textContent = own
    ? `${own.name} · ${own.code}`
    : `${user.email} · ${scope.stores.length} stores in ${scope.regions.length} regions`;
}

function renderFilters(user, scope) {
  $("filter-to").value = isoDate(new Date());
  $("filter-from").value = isoDate(daysAgo(DEFAULT_DAYS - 1));
  const locked = user.role === "store_manager";
  const region = $("filter-region");
  const options = locked ? [] : [h("option", { value: "" }, "All regions")];
  region.replaceChildren(...options, ...scope.regions.map((r) => h("option", { value: r.id }, r.name)));
  region.disabled = locked || scope.regions.length < 1;
  fillStores();
}

function fillStores() {
  const scope = dashboard.scope;
  const locked = dashboard.user.role === "store_manager";
  const region = $("filter-region").value;
  const store = $("filter-store");
  const previous = store.value;
  const stores = scope.stores.filter((s) => locked || !region || String(s.region_id) === region);
  const options = locked ? [] : [h("option", { value: "" }, region ? "All stores in region" : "All stores")];
  store.replaceChildren(...options, ...stores.map((s) => h("option", { value: s.id }, `${s.name} (${s.code})`)));
  if (stores.some((s) => String(s.id) === previous)) store.value = previous;
  store.disabled = locked;
}

function currentFilters() {
  const from = $("filter-from").value;
  const to = $("filter-to").value;
  return {
    from,
    to,
    region: $("filter-region").value || null,
    store: $("filter-store").value || null,
  };
}

function describeScope(filters) {
  const scope = dashboard.scope;
  const store = scope.stores.find((s) => String(s.id) === String(filters.store));
  const region = scope.regions.find((r) => String(r.id) === String(filters.region));
  const where = store ? `${store.name} (${store.code})` : region ? `all stores in ${region.name}` : "all stores";
  return `Showing ${where}, ${filters.from} to ${filters.to}.`;
}

// ---- sections ---------------------------------------------------------------------------

function buildSections() {
  destroyAll();
  views.clear();
  const grid = $("sections");
  grid.replaceChildren();
  for (const section of SECTIONS) {
    const view = makeView(section);
    views.set(section.id, view);
    grid.append(view.card);
  }
}

function makeView(section) {
  const canvas = section.table ? null : h("canvas", { role: "img", "aria-label": section.title });
  const stats = h("div", { class: "stats" });
  const state = h("div", { class: "state" }, h("div", { class: "spinner", "aria-label": "Loading" }));
  const chartBox = canvas ? h("div", { class: "chart-box" }, canvas) : null;
  const side = section.split ? h("div", { class: "side" }) : null;
  const content = section.table ? h("div", { class: "table-body" }) : null; // a table section's own
  const body = h("div", { class: section.split ? "card-body split" : "card-body" }, chartBox, side, content, state);
  const csv = h("a", { class: "csv", href: "#", download: `${section.report}.csv`, title: "Download this table as CSV" }, "CSV");
  const tools = h("div", { class: "card-tools" });
  const card = h(
    "article",
    { class: ["card", section.wide ? "wide" : "", section.tall ? "tall" : ""].join(" ").trim(), id: `section-${section.id}`, dataset: { report: section.report } },
    h("div", { class: "card-head" }, h("div", {}, h("h2", {}, section.title), h("p", {}, section.description)), tools),
    stats,
    body,
  );
  const view = {
    section,
    card,
    body: section.table ? content : side,
    side,
    report: null,
    setBusy() {
      state.className = "state";
      state.replaceChildren(h("div", { class: "spinner", "aria-label": "Loading" }));
      state.hidden = false;
    },
    setError(message) {
      destroyChart(section.id);
      delete dashboard.tables[section.id];
      dashboard.errors[section.id] = message;
      stats.replaceChildren();
      if (content) content.replaceChildren();
      state.className = "state error";
      state.replaceChildren(h("div", {}, h("strong", {}, "Could not load this report"), h("br"), message));
      state.hidden = false;
    },
    setEmpty(message) {
      destroyChart(section.id);
      state.className = "state";
      state.replaceChildren(message);
      state.hidden = false;
    },
    stats(items) {
      stats.replaceChildren(...items);
    },
    chart(config) {
      destroyChart(section.id);
      dashboard.charts[section.id] = new Chart(canvas, { type: "line", ...config });
    },
    table(info) {
      dashboard.tables[section.id] = info;
    },
    render(report) {
      view.report = report;
      delete dashboard.errors[section.id];
      if (!report.rows.length) {
        stats.replaceChildren();
        if (content) content.replaceChildren();
        view.setEmpty("No data for this period and scope.");
        return;
      }
      state.hidden = true;
      section.render(report, view);
    },
    rerender() {
      if (view.report) view.render(view.report);
    },
    reload() {
      const filters = dashboard.filters;
      if (!filters) return;
      loadSection(view, filters, generation).catch((error) => {
        // loadSection shows every other failure in the card; 401 means signed out
        showLogin(error instanceof ApiError && error.status === 401 ? "Your session has ended; sign in again." : error.message);
      });
    },
    setCsv(href) {
      csv.href = href;
      csv.setAttribute("download", `${section.report}_${dashboard.filters?.from}_${dashboard.filters?.to}.csv`);
    },
  };
  tools.append(...(section.tools ? section.tools(view) : []), csv);
  return view;
}

function destroyChart(id) {
  dashboard.charts[id]?.destroy();
  delete dashboard.charts[id];
}

function destroyAll() {
  for (const id of Object.keys(dashboard.charts)) destroyChart(id);
  dashboard.tables = {};
  dashboard.errors = {};
  dashboard.reports = {};
}

function sectionParams(view, filters) {
  const base = { from: filters.from, to: filters.to, region: filters.region, store: filters.store };
  const extra = typeof view.section.params === "function" ? view.section.params(view) : view.section.params ?? {};
  return { ...base, ...extra };
}

async function loadSection(view, filters, gen) {
  const params = sectionParams(view, filters);
  view.setCsv(reportUrl(view.section.report, params, "csv"));
  view.setBusy();
  try {
    const report = await api(reportUrl(view.section.report, params));
    if (gen !== generation) return null;
    dashboard.reports[view.section.id] = report;
    try {
      view.render(report);
    } catch (error) {
      console.warn(`drawing ${view.section.id} failed`, error);
      view.setError(`The page could not draw this report: ${error.message}`);
      return null;
    }
    return report;
  } catch (error) {
    if (gen !== generation) return null;
    if (error instanceof ApiError && error.status === 401) throw error;
    const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : "";
    view.setError(`${error.message}${status}`);
    return null;
  }
}

async function loadAll() {
  const filters = currentFilters();
  if (!filters.from || !filters.to || filters.from > filters.to) {
    showError($("global-error"), "Choose a period whose start is on or before its end.");
    return;
  }
  showError($("global-error"), "");
  const gen = ++generation;
  dashboard.filters = filters;
  dashboard.errors = {};
  setState("loading");
  $("load-status").textContent = "Loading…";
  $("footer-scope").textContent = describeScope(filters);
  renderKpis(null);
  const started = performance.now();

  const run = async () => {
    const pending = new Map();
    for (const view of views.values()) {
      if (view.section.dependsOn) continue;
      pending.set(view.section.id, loadSection(view, filters, gen));
    }
    const dependants = [...views.values()].filter((v) => v.section.dependsOn);
    const chained = dependants.map(async (view) => {
      const source = await pending.get(view.section.dependsOn);
      if (gen !== generation) return;
      if (!source) {
        view.setError(dashboard.errors[view.section.dependsOn] ? "needs the products report, which failed" : "no products to choose from");
        view.setCsv(reportUrl(view.section.report, sectionParams(view, filters), "csv"));
        return;
      }
      if (!view.section.prepare(source, view)) {
        view.setEmpty("No products sold in this period.");
        return;
      }
      await loadSection(view, filters, gen);
    });
    await Promise.all([...pending.values(), ...chained]);
  };

  const finished = run().then(
    () => {
      if (gen !== generation) return;
      renderKpis(dashboard.reports);
      const failed = Object.keys(dashboard.errors).length;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const time = new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
      $("load-status").textContent = failed
        ? `${failed} of ${views.size} reports failed · ${time}`
        : `Updated ${time} · ${views.size} reports in ${seconds} s`;
      if (failed) {
        showError($("global-error"), `Some reports could not be loaded: ${Object.entries(dashboard.errors).map(([id, m]) => `${id}: ${m}`).join("; ")}`);
      }
      setState("ready");
    },
    (error) => {
      if (gen !== generation) return;
      if (error instanceof ApiError && error.status === 401) {
        showLogin("Your session has ended; sign in again.");
        return;
      }
      showError($("global-error"), `Loading failed: ${error.message}`);
      setState("ready");
    },
  );
  dashboard.ready = finished;
  return finished;
}

// ---- key figures ----------------------------------------------------------------------------

function renderKpis(reports) {
  const summary = (id) => reports?.[id]?.summary ?? null;
  const traffic = summary("traffic");
  const basket = summary("basket");
  const customers = summary("customers");
  const days = reports?.traffic ? Math.max(1, reports.traffic.rows.length) : 1;
  const kpi = (label, value, note) =>
    h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value" }, value), h("div", { class: "kpi-note" }, note));
  const dash = reports === null ? "…" : "—";
  const returning = customers ? num(customers.returning_customers) : 0;
  $("kpis").replaceChildren(
    kpi("Visitors", traffic ? fmtCompact(traffic.visitors) : dash, traffic ? `${fmtInt(num(traffic.visitors) / days)} a day` : ""),
    kpi("Transactions", traffic ? fmtCompact(traffic.transactions) : dash, traffic ? `${fmtInt(traffic.buyers)} identified buyers` : ""),
    kpi("Conversion", traffic ? fmtPct(traffic.conversion) : dash, "transactions per visitor"),
    kpi("Revenue", basket ? fmtCompact(basket.revenue) : dash, basket ? `${fmtInt(basket.transactions)} receipts` : ""),
    kpi("Average basket", basket ? fmtMoney(basket.average_basket) : dash, basket ? `${num(basket.items_per_basket).toFixed(1)} items per receipt` : ""),
    kpi("Returning customers", customers ? fmtCompact(returning) : dash, customers ? `${fmtPct(customers.returning_share)} of identified buyers` : ""),
  );
}

// ---- start ----------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAll();
  });
  $("filter-region").addEventListener("change", () => {
    fillStores();
    loadAll();
  });
  $("filter-store").addEventListener("change", () => loadAll());
  for (const chip of document.querySelectorAll(".chip[data-days]")) {
    chip.addEventListener("click", () => {
      $("filter-to").value = isoDate(new Date());
      $("filter-from").value = isoDate(daysAgo(Number(chip.dataset.days) - 1));
      loadAll();
    });
  }
}

async function start() {
  if (typeof Chart === "undefined") {
    document.body.replaceChildren(h("p", { class: "alert global" }, "The chart library did not load; reload the page."));
    setState("failed");
    return;
  }
  configureCharts();
  wire();
  let user = null;
  try {
    user = await api("/v1/auth/me");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      showLogin(`The server could not be asked who you are: ${error.message}`);
      return;
    }
  }
  if (!user) {
    showLogin();
    return;
  }
  try {
    await enter(user);
  } catch (error) {
    showLogin(error instanceof ApiError && error.status === 401 ? "" : `Could not open the dashboard: ${error.message}`);
  }
}

start();
