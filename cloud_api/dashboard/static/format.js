// Number, date and colour helpers shared by the dashboard's sections.

const LOCALE = "en-GB";
const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat(LOCALE, { notation: "compact", maximumFractionDigits: 1 });
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

export function num(value) {
  if (value === null || value === undefined || value === "") return 0;
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

export const sum = (values) => values.reduce((total, v) => total + num(v), 0);

export function fmtInt(value) {
  return value === null || value === undefined ? "—" : integer.format(num(value));
}

export function fmtMoney(value) {
  return value === null || value === undefined ? "—" : decimal.format(num(value));
}

export function fmtCompact(value) {
  if (value === null || value === undefined) return "—";
  const n = num(value);
  return Math.abs(n) < 10000 ? integer.format(n) : compact.format(n);
}

/** A share or rate as the API gives it (a fraction 0..1) shown as a percentage. */
export function fmtPct(fraction, digits = 1) {
  if (fraction === null || fraction === undefined || !Number.isFinite(Number(fraction))) return "—";
  return `${(num(fraction) * 100).toFixed(digits)}%`;
}

export const pct = (fraction) => Math.round(num(fraction) * 1000) / 10; // 0.1234 -> 12.3

export function isoDate(date) {
  const m = String(date.getMonth() + 1).padStart(2, "0");
  const d = String(date.getDate()).padStart(2, "0");
  return `${date.getFullYear()}-${m}-${d}`;
}

export function daysAgo(days, from = new Date()) {
  const date = new Date(from.getFullYear(), from.getMonth(), from.getDate());
  date.setDate(date.getDate() - days);
  return date;
}

function parts(iso) {
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso ?? ""));
  return match ? { y: +match[1], m: +match[2], d: +match[3] } : null;
}

/** "2025-03-04" -> "4 Mar" */
export function shortDate(iso) {
  const p = parts(iso);
  return p ? `${p.d} ${MONTHS[p.m - 1]}` : String(iso ?? "");
}

/** "2025-03-04" or "2025-03-04T10:00:00Z" -> "4 Mar 2025" */
export function longDate(iso) {
  const p = parts(iso);
  return p ? `${p.d} ${MONTHS[p.m - 1]} ${p.y}` : String(iso ?? "—");
}

export const PALETTE = [
  "#6366f1", "#14b8a6", "#f59e0b", "#f43f5e", "#0ea5e9", "#8b5cf6",
  "#10b981", "#f97316", "#ec4899", "#64748b", "#84cc16", "#06b6d4",
];

export const COLORS = {
  indigo: "#6366f1",
  teal: "#14b8a6",
  amber: "#f59e0b",
  rose: "#f43f5e",
  sky: "#0ea5e9",
  violet: "#8b5cf6",
  orange: "#f97316",
  slate: "#94a3b8",
};

export function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

const SCALE = [
  [0, [238, 242, 255]],
  [0.5, [129, 140, 248]],
  [1, [49, 46, 129]],
];

/** The heat-map colour for t in 0..1 (pale indigo to deep indigo). */
export function heat(t) {
  const x = Math.max(0, Math.min(1, t));
  const upper = SCALE.findIndex(([stop]) => stop >= x);
  const [s1, c1] = SCALE[Math.max(0, upper - 1)];
  const [s2, c2] = SCALE[upper];
  const f = s2 === s1 ? 0 : (x - s1) / (s2 - s1);
  const c = c1.map((v, i) => Math.round(v + (c2[i] - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

export function truncate(text, length) {
  const s = String(text ?? "");
  return s.length > length ? `${s.slice(0, length - 1)}…` : s;
}

/** A report's rows as objects keyed by its column names. */
export function records(report) {
  return report.rows.map((row) =>
    Object.fromEntries(report.columns.map((column, i) => [column, row[i]])),
  );
}

/** A small DOM builder: h("td", {class: "num"}, "12"). Text is always text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}
