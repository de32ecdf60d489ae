// The dashboard's sections: which report each reads and how it draws it.
//
// A section's render(report, view) gets the report (contract/reports.py `Report`) and its
// card's parts: view.chart(config) draws the section's Chart.js chart into its canvas,
// view.stats([...]) fills the figures under the title, view.body is the card's body for
// tables. Everything the API sends is put into the page as text, never as HTML.

import {
  COLORS, PALETTE, WEEKDAYS, alpha, fmtCompact, fmtInt, fmtMoney, fmtPct, h, heat, longDate,
  num, pct, records, shortDate, sum, truncate,
} from "./format.js";

// ---- shared chart pieces ----------------------------------------------------------------

const dateTicks = {
  maxRotation: 0,
  autoSkip: true,
  maxTicksLimit: 10,
  callback(value) {
    return shortDate(this.getLabelForValue(value));
  },
};

const weekTicks = {
  maxRotation: 0,
  autoSkip: true,
  maxTicksLimit: 12,
  callback(value) {
    return shortDate(this.getLabelForValue(value));
  },
};

const percentAxis = (extra = {}) => ({
  position: "right",
  beginAtZero: true,
  grid: { drawOnChartArea: false },
  ticks: { callback: (v) => `${v}%` },
  ...extra,
});

const countAxis = (title) => ({
  beginAtZero: true,
  title: title ? { display: true, text: title } : { display: false },
  ticks: { callback: (v) => fmtCompact(v) },
});

function dateTitle(items) {
  return items.length ? longDate(items[0].label) : "";
}

function tooltipLabel(format) {
  return (item) => `${item.dataset.label}: ${format(item.raw, item)}`;
}

const percentLabel = tooltipLabel((v) => (v === null ? "—" : `${Number(v).toFixed(1)}%`));
const intLabel = tooltipLabel((v) => fmtInt(v));

function line(label, data, color, extra = {}) {
  return {
    type: "line",
    label,
    data,
    borderColor: color,
    backgroundColor: alpha(color, 0.12),
    pointRadius: 0,
    pointHoverRadius: 4,
    borderWidth: 2,
    tension: 0.3,
    ...extra,
  };
}

function bars(label, data, color, extra = {}) {
  return {
    type: "bar",
    label,
    data,
    backgroundColor: alpha(color, 0.85),
    hoverBackgroundColor: color,
    borderRadius: 4,
    maxBarThickness: 42,
    ...extra,
  };
}

function stat(label, value, good = false) {
  return h("span", { class: good ? "stat good" : "stat" }, `${label} `, h("b", {}, value));
}

function table(columns, rows) {
  // columns: [{label, num?}], rows: arrays of cells (strings or Nodes)
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h("tr", {}, row.map((cell, i) => h("td", { class: columns[i].num ? "num" : null }, cell))),
        ),
      ),
    ),
  );
}

function ordered(values) {
  return [...new Set(values.map((v) => String(v ?? "unknown")))];
}

/** Shades the chart area from the first forecast week on, labelled "Forecast". */
function forecastShade(start) {
  return {
    id: "forecastShade",
    beforeDatasetsDraw(chart) {
      if (start < 1) return;
      const { ctx, chartArea: area, scales } = chart;
      const x = (scales.x.getPixelForValue(start - 1) + scales.x.getPixelForValue(start)) / 2;
      ctx.save();
      ctx.fillStyle = alpha(COLORS.indigo, 0.06);
      ctx.fillRect(x, area.top, area.right - x, area.bottom - area.top);
      ctx.strokeStyle = alpha(COLORS.indigo, 0.35);
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(x, area.top);
      ctx.lineTo(x, area.bottom);
      ctx.stroke();
      ctx.fillStyle = COLORS.indigo;
      ctx.font = `600 11px ${Chart.defaults.font.family}`;
      ctx.fillText("Forecast", x + 8, area.top + 14);
      ctx.restore();
    },
  };
}

const GENDER_COLORS = { female: COLORS.rose, male: COLORS.sky };
const genderColor = (g, i) => GENDER_COLORS[String(g).toLowerCase()] ?? PALETTE[(i + 4) % PALETTE.length];
const capital = (s) => String(s ?? "").replace(/^./, (c) => c.toUpperCase());

/** A report's per-store rows summed per week, with the two error rates of each week. */
function recognitionWeeks(r) {
  const weeks = new Map();
  for (const x of r) {
    const key = String(x.week).slice(0, 10);
    const w = weeks.get(key) ?? { week: key, falseAccepts: 0, withTruth: 0, falseRejects: 0, findable: 0 };
    w.falseAccepts += num(x.false_accepts);
    w.withTruth += num(x.with_truth);
    w.falseRejects += num(x.false_rejects);
    w.findable += num(x.truth_findable);
    weeks.set(key, w);
  }
  return [...weeks.values()].sort((a, b) => (a.week < b.week ? -1 : 1)).map((w) => ({
    week: w.week,
    falseAcceptRate: w.withTruth ? w.falseAccepts / w.withTruth : null,
    falseRejectRate: w.findable ? w.falseRejects / w.findable : null,
  }));
}

const ratePct = (fraction) => (fraction === null || fraction === undefined ? null : pct(fraction));

// ---- the sections -----------------------------------------------------------------------

export const SECTIONS = [
  {
    id: "traffic",
    report: "traffic",
    title: "Store traffic",
    description: "Visitors counted at the entrance and till transactions per day; conversion on the right axis.",
    wide: true,
    render(report, view) {
      const r = records(report);
      const visitors = sum(r.map((x) => x.visitors));
      const transactions = sum(r.map((x) => x.transactions));
      const summary = report.summary ?? {};
      view.stats([
        stat("Visitors", fmtInt(visitors)),
        stat("Transactions", fmtInt(transactions)),
        stat("Conversion", fmtPct(summary.conversion ?? (visitors ? transactions / visitors : null))),
        stat("Busiest day", r.length ? shortDate(r.reduce((a, b) => (num(b.visitors) > num(a.visitors) ? b : a)).date) : "—"),
      ]);
      view.chart({
        data: {
          labels: r.map((x) => x.date),
          datasets: [
            line("Visitors", r.map((x) => num(x.visitors)), COLORS.indigo, { fill: true }),
            line("Transactions", r.map((x) => num(x.transactions)), COLORS.teal),
            line("Conversion", r.map((x) => pct(x.conversion)), COLORS.amber, {
              yAxisID: "y1",
              borderDash: [5, 4],
              borderWidth: 1.5,
              backgroundColor: "transparent",
              tooltip: { callbacks: { label: percentLabel } },
            }),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: { x: { ticks: dateTicks }, y: countAxis(), y1: percentAxis() },
          plugins: { tooltip: { callbacks: { title: dateTitle, label: intLabel } } },
        },
      });
    },
  },
  {
    id: "heatmap",
    report: "heatmap",
    title: "Busy hours",
    description: "Visitors (or transactions) by weekday and hour of day (UTC) over the period: darker is busier.",
    wide: true,
    table: true,
    tools(view) {
      const select = h(
        "select",
        { "aria-label": "Heat map figure", onchange: () => view.rerender() },
        h("option", { value: "visitors" }, "Visitors"),
        h("option", { value: "transactions" }, "Transactions"),
      );
      view.metric = select;
      return [select];
    },
    render(report, view) {
      const metric = view.metric?.value ?? "visitors";
      const r = records(report);
      const grid = WEEKDAYS.map(() => new Array(24).fill(0));
      for (const x of r) {
        const day = num(x.weekday);
        const hour = num(x.hour);
        if (day >= 0 && day < 7 && hour >= 0 && hour < 24) grid[day][hour] += num(x[metric]);
      }
      const max = Math.max(0, ...grid.flat());
      const active = [...Array(24).keys()].filter((hr) => grid.some((day) => day[hr] > 0));
      const first = active.length ? active[0] : 0;
      const last = active.length ? active[active.length - 1] : 23;
      const hours = [...Array(last - first + 1).keys()].map((i) => first + i);
      const byDay = grid.map((day) => sum(day));
      const peak = r.reduce((a, b) => (num(b[metric]) > num(a?.[metric]) ? b : a), null);
      view.stats([
        stat("Busiest weekday", max ? WEEKDAYS[byDay.indexOf(Math.max(...byDay))] : "—"),
        stat("Peak hour", peak && max ? `${WEEKDAYS[num(peak.weekday)]} ${String(num(peak.hour)).padStart(2, "0")}:00` : "—"),
        stat(`Peak ${metric}`, fmtInt(max)),
      ]);
      let cells = 0;
      const body = WEEKDAYS.map((name, d) =>
        h(
          "tr",
          {},
          h("th", { class: "day", scope: "row" }, name),
          hours.map((hr) => {
            const value = grid[d][hr];
            const t = max ? value / max : 0;
            const td = h(
              "td",
              { title: `${name} ${String(hr).padStart(2, "0")}:00 · ${fmtInt(value)} ${metric}`, class: t > 0.55 ? "hot" : null },
              value ? fmtCompact(value) : "",
            );
            td.style.backgroundColor = value ? heat(t) : "#f8fafc";
            if (value) cells += 1;
            return td;
          }),
        ),
      );
      const head = h("tr", {}, h("th", {}), hours.map((hr) => h("th", { scope: "col" }, String(hr).padStart(2, "0"))));
      view.body.replaceChildren(
        h("table", { class: "heatmap", "aria-label": `${metric} by weekday and hour` }, h("thead", {}, head), h("tbody", {}, body)),
        h("div", { class: "legend-scale" }, "fewer", h("span", { class: "bar" }), "more"),
      );
      view.table({ rows: r.length, cells, max });
    },
  },
  {
    id: "customers",
    report: "customers",
    title: "New vs returning customers",
    description: "Recognised buyers per day: first purchase ever that day, or back again.",
    render(report, view) {
      const r = records(report);
      const summary = report.summary ?? {};
      // the period's distinct customers: new = first purchase in the period
      view.stats([
        stat("New", fmtInt(summary.new_customers)),
        stat("Returning", fmtInt(summary.returning_customers)),
        stat("Returning share", fmtPct(summary.returning_share)),
        stat("Anonymous receipts", fmtInt(sum(r.map((x) => x.anonymous_transactions)))),
      ]);
      view.chart({
        type: "bar",
        data: {
          labels: r.map((x) => x.date),
          datasets: [
            bars("New", r.map((x) => num(x.new_customers)), COLORS.indigo, { borderRadius: 2, stack: "c" }),
            bars("Returning", r.map((x) => num(x.returning_customers)), COLORS.teal, { borderRadius: 2, stack: "c" }),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: { x: { stacked: true, ticks: dateTicks, grid: { display: false } }, y: { ...countAxis(), stacked: true } },
          plugins: { tooltip: { callbacks: { title: dateTitle, label: intLabel } } },
        },
      });
    },
  },
  {
    id: "frequency",
    report: "frequency",
    title: "Visit frequency",
    description: "Customers by number of purchases in the period, and the revenue each group brings.",
    render(report, view) {
      const r = records(report);
      const once = r.find((x) => String(x.purchases) === "1");
      view.stats([
        stat("Customers", fmtInt(sum(r.map((x) => x.customers)))),
        stat("One-time buyers", once ? fmtPct(once.share) : "—"),
      ]);
      view.chart({
        type: "bar",
        data: {
          labels: r.map((x) => `${x.purchases} ${String(x.purchases) === "1" ? "purchase" : "purchases"}`),
          datasets: [
            bars("Customers", r.map((x) => num(x.customers)), COLORS.indigo),
            bars("Revenue", r.map((x) => num(x.revenue)), COLORS.amber, {
              yAxisID: "y1",
              tooltip: { callbacks: { label: tooltipLabel((v) => fmtMoney(v)) } },
            }),
          ],
        },
        options: {
          scales: {
            x: { grid: { display: false } },
            y: countAxis("customers"),
            y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "revenue" }, ticks: { callback: (v) => fmtCompact(v) } },
          },
          plugins: { tooltip: { callbacks: { label: intLabel } } },
        },
      });
    },
  },
  {
    id: "retention",
    report: "retention",
    title: "Retention",
    description: "First-time buyers per weekly cohort and how many bought again within 30 days (pale: cohort still open).",
    params: { days: 30 },
    render(report, view) {
      const r = records(report);
      const first = sum(r.map((x) => x.first_time_buyers));
      const back = sum(r.map((x) => x.returned));
      const days = report.filters?.params?.days ?? 30;
      view.stats([
        stat("First-time buyers", fmtInt(first)),
        stat(`Back within ${days} days`, fmtInt(back)),
        stat("Retention", first ? fmtPct(back / first) : "—"),
      ]);
      view.chart({
        type: "bar",
        data: {
          labels: r.map((x) => x.cohort_week),
          datasets: [
            line("Retention rate", r.map((x) => pct(x.retention_rate)), COLORS.amber, {
              yAxisID: "y1",
              pointRadius: 3,
              backgroundColor: COLORS.amber,
              tension: 0.25,
              tooltip: { callbacks: { label: percentLabel } },
            }),
            bars("First-time buyers", r.map((x) => num(x.first_time_buyers)), "#a5b4fc"),
            bars("Returned", r.map((x) => num(x.returned)), COLORS.teal, {
              // cohorts whose window has not passed yet are drawn pale: they can still grow
              backgroundColor: r.map((x) => alpha(COLORS.teal, x.complete === 0 ? 0.35 : 0.85)),
            }),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: weekTicks, grid: { display: false } },
            y: countAxis(),
            y1: percentAxis({ suggestedMax: 100 }),
          },
          plugins: {
            tooltip: {
              callbacks: {
                title: (items) => (items.length ? `Week of ${longDate(items[0].label)}` : ""),
                label: intLabel,
                footer: (items) => (items.length && r[items[0].dataIndex]?.complete === 0 ? `still open: fewer than ${days} days have passed` : ""),
              },
            },
          },
        },
      });
    },
  },
  {
    id: "basket",
    report: "basket",
    title: "Average basket",
    description: "Revenue per transaction and items per basket, per day.",
    render(report, view) {
      const r = records(report);
      const revenue = sum(r.map((x) => x.revenue));
      const transactions = sum(r.map((x) => x.transactions));
      view.stats([
        stat("Revenue", fmtCompact(revenue)),
        stat("Average basket", transactions ? fmtMoney(revenue / transactions) : "—"),
        stat("Transactions", fmtInt(transactions)),
      ]);
      view.chart({
        data: {
          labels: r.map((x) => x.date),
          datasets: [
            line("Average basket", r.map((x) => num(x.average_basket)), COLORS.violet, {
              fill: true,
              tooltip: { callbacks: { label: tooltipLabel((v) => fmtMoney(v)) } },
            }),
            line("Items per basket", r.map((x) => num(x.items_per_basket)), COLORS.orange, {
              yAxisID: "y1",
              borderDash: [5, 4],
              borderWidth: 1.5,
              backgroundColor: "transparent",
              tooltip: { callbacks: { label: tooltipLabel((v) => Number(v).toFixed(2)) } },
            }),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: dateTicks },
            y: { beginAtZero: true, title: { display: true, text: "per transaction" } },
            y1: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "items" } },
          },
          plugins: { tooltip: { callbacks: { title: dateTitle } } },
        },
      });
    },
  },
  {
    id: "demographics",
    report: "demographics",
    title: "Demographics",
    description: "Estimated age band and gender of recognised visitors and of buyers.",
    render(report, view) {
      // visitors nobody recognised have neither age nor gender: counted, not drawn
      const all = records(report);
      const unidentified = (x) => String(x.age_band) === "unknown" && String(x.gender ?? "unknown") === "unknown";
      const r = all.filter((x) => !unidentified(x));
      const hidden = all.filter(unidentified);
      const bands = ordered(r.map((x) => x.age_band));
      const genders = ordered(r.map((x) => x.gender));
      const value = (band, gender, key) =>
        sum(r.filter((x) => String(x.age_band) === band && String(x.gender ?? "unknown") === gender).map((x) => x[key]));
      const datasets = [];
      genders.forEach((gender, i) => {
        const color = genderColor(gender, i);
        datasets.push(bars(`${capital(gender)} visitors`, bands.map((b) => value(b, gender, "visitors")), color, {
          stack: "Visitors", backgroundColor: alpha(color, 0.35), borderRadius: 2,
        }));
      });
      genders.forEach((gender, i) => {
        const color = genderColor(gender, i);
        datasets.push(bars(`${capital(gender)} buyers`, bands.map((b) => value(b, gender, "buyers")), color, {
          stack: "Buyers", borderRadius: 2,
        }));
      });
      const visitors = sum(r.map((x) => x.visitors));
      const buyers = sum(r.map((x) => x.buyers));
      const female = sum(r.filter((x) => x.gender === "female").map((x) => x.buyers));
      const male = sum(r.filter((x) => x.gender === "male").map((x) => x.buyers));
      view.stats([
        stat("Recognised visits", fmtInt(visitors)),
        stat("Buyers", fmtInt(buyers)),
        stat("Women buyers", female + male ? fmtPct(female / (female + male)) : "—"),
        stat("Unrecognised", `${fmtInt(sum(hidden.map((x) => x.visitors)))} visits`),
      ]);
      if (!r.length) {
        view.setEmpty("Nobody was recognised in this period: no age or gender to show.");
        return;
      }
      view.chart({
        type: "bar",
        data: { labels: bands, datasets },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: { x: { stacked: true, grid: { display: false }, title: { display: true, text: "age band · left bar visitors, right bar buyers" } }, y: { ...countAxis(), stacked: true } },
          plugins: { tooltip: { callbacks: { label: intLabel } } },
        },
      });
    },
  },
  {
    id: "categories",
    report: "categories",
    title: "Sales by category",
    description: "Share of revenue per product category.",
    render(report, view) {
      const r = records(report).sort((a, b) => num(b.revenue) - num(a.revenue));
      const top = r.slice(0, 9);
      const rest = r.slice(9);
      const revenue = sum(r.map((x) => x.revenue));
      const labels = top.map((x) => String(x.category));
      const values = top.map((x) => num(x.revenue));
      if (rest.length) {
        labels.push(`Other (${rest.length})`);
        values.push(sum(rest.map((x) => x.revenue)));
      }
      view.stats([
        stat("Revenue", fmtCompact(revenue)),
        stat("Top category", top.length ? `${top[0].category} ${fmtPct(revenue ? num(top[0].revenue) / revenue : 0)}` : "—"),
        stat("Categories", fmtInt(r.length)),
      ]);
      view.chart({
        type: "doughnut",
        data: {
          labels,
          datasets: [{
            label: "Revenue",
            data: values,
            backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]),
            borderColor: "#fff",
            borderWidth: 2,
            hoverOffset: 6,
          }],
        },
        options: {
          cutout: "58%",
          plugins: {
            legend: {
              position: "right",
              labels: {
                generateLabels(chart) {
                  const base = Chart.overrides.doughnut.plugins.legend.labels.generateLabels(chart);
                  return base.map((item, i) => ({ ...item, text: `${truncate(labels[i], 22)}  ${fmtPct(revenue ? values[i] / revenue : 0)}` }));
                },
              },
            },
            tooltip: { callbacks: { label: (item) => `${item.label}: ${fmtMoney(item.raw)} (${fmtPct(revenue ? item.raw / revenue : 0)})` } },
          },
        },
      });
    },
  },
  {
    id: "products",
    report: "products",
    title: "Top products",
    description: "Best sellers by revenue in the period: the top ten; the CSV lists fifty.",
    wide: true,
    split: true,
    tall: true,
    params: { limit: 50 },
    render(report, view) {
      const r = records(report).sort((a, b) => num(b.revenue) - num(a.revenue));
      const top = r.slice(0, 10);
      view.stats([
        stat("Products sold", fmtInt(r.length) + (r.length >= num(report.filters?.params?.limit ?? 50) ? "+" : "")),
        stat("Top 10 revenue", fmtCompact(sum(top.map((x) => x.revenue)))),
      ]);
      view.chart({
        type: "bar",
        data: {
          labels: top.map((x) => truncate(x.name ?? x.sku, 30)),
          datasets: [bars("Revenue", top.map((x) => num(x.revenue)), COLORS.indigo, {
            backgroundColor: top.map((_, i) => alpha(COLORS.indigo, 0.9 - i * 0.05)),
            maxBarThickness: 22,
          })],
        },
        options: {
          indexAxis: "y",
          scales: { x: { beginAtZero: true, ticks: { callback: (v) => fmtCompact(v) } }, y: { grid: { display: false } } },
          plugins: {
            legend: { display: false },
            tooltip: { callbacks: { label: (item) => `Revenue: ${fmtMoney(item.raw)} · ${fmtInt(top[item.dataIndex].quantity)} sold` } },
          },
        },
      });
      view.side.replaceChildren(
        table(
          [{ label: "#" }, { label: "Product" }, { label: "Category" }, { label: "Revenue", num: true }, { label: "Qty", num: true }, { label: "Receipts", num: true }],
          top.map((x, i) => [
            String(i + 1),
            h("span", { title: `${x.name} · ${x.sku}${x.brand ? ` · ${x.brand}` : ""}` }, truncate(x.name, 30), " ", h("small", { class: "muted" }, String(x.sku))),
            String(x.category ?? ""),
            fmtMoney(x.revenue),
            fmtInt(x.quantity),
            fmtInt(x.transactions),
          ]),
        ),
      );
    },
  },
  {
    id: "portrait",
    report: "portrait",
    title: "Product portrait",
    description: "Who buys the chosen product: buyers' gender, age band and purchase frequency.",
    dependsOn: "products",
    tools(view) {
      const select = h("select", { "aria-label": "Product", onchange: () => view.reload() });
      view.sku = select;
      return [select];
    },
    params(view) {
      return { sku: view.sku?.value || null };
    },
    prepare(products, view) {
      // fill the product picker from the products report, keeping the choice when possible
      const previous = view.sku.value;
      const r = records(products).sort((a, b) => num(b.revenue) - num(a.revenue));
      view.sku.replaceChildren(...r.map((x) => h("option", { value: x.sku }, `${truncate(x.name, 36)} (${x.sku})`)));
      if (r.some((x) => String(x.sku) === previous)) view.sku.value = previous;
      return r.length > 0;
    },
    render(report, view) {
      const r = records(report);
      const dims = ordered(r.map((x) => x.dimension));
      const names = { gender: "Gender", age_band: "Age band", frequency: "Purchase frequency" };
      const label = (x) => (x.dimension === "frequency" ? `${x.value}×` : String(x.value));
      const labels = r.map(label);
      const datasets = dims.map((dim, i) =>
        bars(names[dim] ?? dim, r.map((x) => (x.dimension === dim ? pct(x.share) : null)), PALETTE[i], {
          skipNull: true, grouped: false, tooltip: { callbacks: { label: percentLabel } },
        }),
      );
      const buyers = sum(r.filter((x) => x.dimension === dims[0]).map((x) => x.buyers));
      const revenue = sum(r.filter((x) => x.dimension === dims[0]).map((x) => x.revenue));
      view.stats([stat("Buyers", fmtInt(buyers)), stat("Revenue", fmtMoney(revenue))]);
      view.chart({
        type: "bar",
        data: { labels, datasets },
        options: {
          scales: {
            x: { grid: { display: false } },
            y: { beginAtZero: true, title: { display: true, text: "share of buyers within each group" }, ticks: { callback: (v) => `${v}%` } },
          },
        },
      });
    },
  },
  {
    id: "preferences",
    report: "preferences",
    title: "Category preferences",
    description: "Share of each customer segment's spending that goes to each category.",
    render(report, view) {
      const r = records(report);
      const segmentOf = (x) => `${capital(x.gender ?? "unknown").slice(0, 1)} ${x.age_band ?? "?"}`;
      const segments = ordered(r.map(segmentOf));
      const totals = new Map();
      for (const x of r) totals.set(String(x.category), (totals.get(String(x.category)) ?? 0) + num(x.revenue));
      const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([c]) => c);
      const shown = ranked.slice(0, 9);
      const other = new Set(ranked.slice(9));
      const share = (segment, categories) =>
        Math.round(sum(r.filter((x) => segmentOf(x) === segment && categories.has(String(x.category))).map((x) => x.share_of_segment)) * 1000) / 10;
      const datasets = shown.map((c, i) => bars(c, segments.map((s) => share(s, new Set([c]))), PALETTE[i], { stack: "s", borderRadius: 0 }));
      if (other.size) datasets.push(bars("Other", segments.map((s) => share(s, other)), "#cbd5e1", { stack: "s", borderRadius: 0 }));
      view.stats([stat("Segments", fmtInt(segments.length)), stat("Categories", fmtInt(ranked.length))]);
      view.chart({
        type: "bar",
        data: { labels: segments, datasets },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { stacked: true, grid: { display: false }, title: { display: true, text: "gender and age band" } },
            y: { stacked: true, beginAtZero: true, max: 100, ticks: { callback: (v) => `${v}%` } },
          },
          plugins: { tooltip: { callbacks: { label: percentLabel } } },
        },
      });
    },
  },
  {
    id: "forecast",
    report: "forecast",
    title: "Demand forecast",
    description: "Weekly units sold for the top products, and the forecast for the coming weeks (dashed).",
    wide: true,
    params: { weeks: 4 },
    render(report, view) {
      const r = records(report);
      // one series per product, whatever the number of stores in scope
      const series = new Map();
      for (const x of r) {
        const key = String(x.sku);
        if (!series.has(key)) series.set(key, { name: x.name ?? key, history: new Map(), forecast: new Map(), total: 0 });
        const s = series.get(key);
        const week = String(x.week_start).slice(0, 10);
        const target = x.kind === "forecast" ? s.forecast : s.history;
        target.set(week, (target.get(week) ?? 0) + num(x.quantity));
        if (x.kind !== "forecast") s.total += num(x.quantity);
      }
      const top = [...series.values()].sort((a, b) => b.total - a.total).slice(0, 4);
      const weeks = [...new Set(top.flatMap((s) => [...s.history.keys(), ...s.forecast.keys()]))].sort();
      const datasets = [];
      top.forEach((s, i) => {
        const color = PALETTE[i];
        const history = weeks.map((w) => (s.history.has(w) ? s.history.get(w) : null));
        const lastHistory = [...s.history.keys()].sort().pop();
        const forecast = weeks.map((w) => (s.forecast.has(w) ? s.forecast.get(w) : w === lastHistory ? s.history.get(w) : null));
        datasets.push(line(truncate(s.name, 30), history, color, { pointRadius: 2, tension: 0.2, backgroundColor: color }));
        datasets.push(line(`${truncate(s.name, 30)} (forecast)`, forecast, color, {
          borderDash: [6, 5], pointRadius: 3, pointStyle: "rectRot", tension: 0.2, backgroundColor: "#fff",
        }));
      });
      const summary = report.summary ?? {};
      const wape = summary.backtest_wape;
      const naive = summary.naive_wape;
      const better = wape !== null && wape !== undefined && naive !== null && naive !== undefined && num(wape) < num(naive);
      view.stats([
        stat("Back-test error (WAPE)", fmtPct(wape), better),
        stat("Naive last-week WAPE", fmtPct(naive)),
        stat("Back-test weeks", fmtInt(summary.backtest_weeks)),
        stat("Horizon", `${report.filters?.params?.weeks ?? 4} weeks`),
      ]);
      const firstForecast = weeks.findIndex((w) => top.some((s) => s.forecast.has(w)));
      view.chart({
        data: { labels: weeks, datasets },
        plugins: [forecastShade(firstForecast)],
        options: {
          interaction: { mode: "index", intersect: false },
          scales: { x: { ticks: weekTicks }, y: countAxis("units per week") },
          plugins: {
            legend: { labels: { filter: (item) => !item.text.endsWith("(forecast)") } },
            tooltip: {
              filter: (item) => item.raw !== null,
              callbacks: { title: (items) => (items.length ? `Week of ${longDate(items[0].label)}` : ""), label: intLabel },
            },
          },
        },
      });
    },
  },
  {
    id: "recognition",
    report: "recognition",
    title: "Recognition quality",
    description: "False-accept rate (accepted faces that were someone else, or that the cashier rejected) and false-reject rate (known customers with face samples not recognised), per week, where the truth is known.",
    wide: true,
    split: true,
    render(report, view) {
      const r = records(report);
      const summary = report.summary ?? {};
      view.stats([
        stat("Decisions", fmtInt(summary.decisions ?? sum(r.map((x) => x.decisions)))),
        stat("With ground truth", fmtInt(summary.with_truth ?? sum(r.map((x) => x.with_truth)))),
        stat("False accepts", fmtPct(summary.false_accept_rate)),
        stat("False rejects", fmtPct(summary.false_reject_rate)),
      ]);
      const weeks = recognitionWeeks(r);
      view.chart({
        data: {
          labels: weeks.map((w) => w.week),
          datasets: [
            line("False-accept rate", weeks.map((w) => ratePct(w.falseAcceptRate)), COLORS.rose, { pointRadius: 3, tension: 0.2 }),
            line("False-reject rate", weeks.map((w) => ratePct(w.falseRejectRate)), COLORS.amber, { pointRadius: 3, tension: 0.2 }),
          ],
        },
        options: {
          interaction: { mode: "index", intersect: false },
          spanGaps: true,
          scales: {
            x: { ticks: weekTicks },
            y: { beginAtZero: true, suggestedMax: 10, title: { display: true, text: "share of decisions with known truth" }, ticks: { callback: (v) => `${v}%` } },
          },
          plugins: {
            tooltip: {
              callbacks: { title: (items) => (items.length ? `Week of ${longDate(items[0].label)}` : ""), label: percentLabel },
            },
          },
        },
      });
      // the latest weeks first; every row is in the CSV
      const latest = [...r].sort((a, b) => String(b.week).localeCompare(String(a.week)) || String(a.store).localeCompare(String(b.store)));
      const shown = latest.slice(0, 12);
      view.side.replaceChildren(
        table(
          [{ label: "Week" }, { label: "Store" }, { label: "Decisions", num: true }, { label: "Accepted", num: true }, { label: "False acc.", num: true }, { label: "False rej.", num: true }],
          shown.map((x) => [
            shortDate(x.week),
            truncate(x.store, 24),
            fmtInt(x.decisions),
            fmtInt(x.accepted),
            h("span", { title: `${fmtInt(x.false_accepts)} of ${fmtInt(x.with_truth)} with known truth` }, fmtPct(x.false_accept_rate)),
            h("span", { title: `${fmtInt(x.false_rejects)} of ${fmtInt(x.truth_findable)} findable customers` }, fmtPct(x.false_reject_rate)),
          ]),
        ),
        latest.length > shown.length ? h("div", { class: "more" }, `${fmtInt(latest.length - shown.length)} more in the CSV download.`) : null,
      );
    },
  },
  {
    id: "vip",
    report: "vip",
    title: "VIP activity",
    description: "Members who visited in the period, by spend.",
    wide: true,
    table: true,
    render(report, view) {
      const r = records(report).sort((a, b) => num(b.spend) - num(a.spend));
      const shown = r.slice(0, 12);
      view.stats([
        stat("Active VIPs", fmtInt(r.length)),
        stat("VIP spend", fmtMoney(sum(r.map((x) => x.spend)))),
        stat("Visits", fmtInt(sum(r.map((x) => x.visits)))),
      ]);
      view.body.replaceChildren(
        table(
          [{ label: "VIP number" }, { label: "Name" }, { label: "Level" }, { label: "Visits", num: true }, { label: "Spend", num: true }, { label: "Last visit" }],
          shown.map((x) => [
            String(x.vip_number ?? ""),
            String(x.name ?? ""),
            h("span", { class: `level ${String(x.level ?? "").toLowerCase()}` }, String(x.level ?? "")),
            fmtInt(x.visits),
            fmtMoney(x.spend),
            longDate(x.last_visit),
          ]),
        ),
        r.length > shown.length ? h("div", { class: "more" }, `${fmtInt(r.length - shown.length)} more in the CSV download.`) : null,
      );
      view.table({ rows: r.length, cells: shown.length });
    },
  },
];
