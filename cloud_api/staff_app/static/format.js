// Small formatting helpers: times, money, labels. No data leaves this module.

const LOCALE = "en-GB";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const money = new Map();
const plain = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });

const pad = (n) => String(n).padStart(2, "0");

export function toDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Local "HH:MM". */
export function hhmm(iso) {
  const date = toDate(iso);
  return date ? `${pad(date.getHours())}:${pad(date.getMinutes())}` : "—";
}

/** "just now", "3 min ago", "1 h 5 min ago", "yesterday", "2 days ago". */
export function ago(iso, now = Date.now()) {
  const date = toDate(iso);
  if (!date) return "";
  const minutes = Math.floor((now - date.getTime()) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min ago` : `${hours} h ago`;
  const days = Math.floor(hours / 24);
  return days === 1 ? "yesterday" : `${days} days ago`;
}

/** "Today", "Yesterday", "Mon 28 Nov" (and the year when it is not this year). */
export function day(iso, now = new Date()) {
  const date = toDate(iso);
  if (!date) return "—";
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const diff = Math.round((start(now) - start(date)) / 86400000);
  if (diff === 0) return "Today";
  if (diff === 1) return "Yesterday";
  const text = `${DAYS[date.getDay()]} ${date.getDate()} ${MONTHS[date.getMonth()]}`;
  return date.getFullYear() === now.getFullYear() ? text : `${text} ${date.getFullYear()}`;
}

/** "12.30" + "EUR" -> "€12.30"; `whole` drops the cents ("€2,890") for big totals. */
export function fmtMoney(value, currency, { whole = false } = {}) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  const digits = whole ? { minimumFractionDigits: 0, maximumFractionDigits: 0 } : {};
  if (!currency) return whole ? integer.format(n) : plain.format(n);
  const key = `${currency}:${whole}`;
  try {
    if (!money.has(key)) {
      money.set(key, new Intl.NumberFormat(LOCALE, { style: "currency", currency, ...digits }));
    }
    return money.get(key).format(n);
  } catch {
    return `${whole ? integer.format(n) : plain.format(n)} ${currency}`;
  }
}

export const fmtInt = (value) =>
  value === null || value === undefined ? "—" : integer.format(Number(value) || 0);

const quantity = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 3 });

/** A receipt line's quantity (the API sends a decimal string: "1", "2.000", "0.45"). */
export const fmtQty = (value) => quantity.format(Number(value) || 0);

/** "gold" -> "Gold", "very_high" -> "Very high". */
export function label(value) {
  const text = String(value ?? "").replace(/[_-]+/g, " ").trim();
  return text ? text[0].toUpperCase() + text.slice(1) : "—";
}

/** "Ada Lovelace" -> "AL". */
export function initials(name) {
  const words = String(name ?? "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "";
  const first = words[0][0] ?? "";
  const last = words.length > 1 ? words[words.length - 1][0] : "";
  return (first + last).toUpperCase();
}

/** A CSS-class-safe token of a server value ("gold" -> "gold", anything odd -> "other"). */
export const token = (value) => (/^[a-z0-9_-]{1,32}$/i.test(String(value ?? "")) ? String(value).toLowerCase() : "other");

/** Build an element: h("p", {class: "x", dataset: {...}}, "text", child...). Text only, never HTML. */
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
