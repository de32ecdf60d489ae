// One arrival card: the DOM for an ArrivalCard (see the brief), built with createElement and
// textContent only (names, brands and products are untrusted text).
//
// Stable hooks (the end-to-end test relies on them): article.arrival[data-arrival-id], img.face,
// .name, .vip-number, .level, .purchase-level, .categories, .brands, .last-visits,
// .last-purchases, time.arrived, button.greet, .greeted-by.

import { ago, day, fmtInt, fmtMoney, fmtQty, h, hhmm, initials, label, token } from "./format.js";

const MAX_CHIPS = 4;
const MAX_VISITS = 3;
const MAX_PURCHASES = 3;

export const displayName = (card) => card.member?.name || "Frequent customer";

/** A signature of everything a card shows, to skip re-rendering unchanged cards. */
export const signature = (card, me) => JSON.stringify([card, me?.id ?? null]);

function face(card) {
  const name = card.member?.name ?? "";
  if (card.face_jpeg_base64) {
    const img = h("img", { class: "face", alt: name ? `Photo of ${name}` : "Customer photo", decoding: "async" });
    img.src = `data:image/jpeg;base64,${card.face_jpeg_base64}`;
    return img;
  }
  const text = initials(name);
  return h(
    "div",
    { class: `face placeholder${text ? "" : " silhouette"}`, role: "img", "aria-label": "No photo" },
    text,
  );
}

function chips(className, title, values) {
  const list = (values ?? []).filter((v) => v !== null && v !== undefined && String(v).trim());
  const shown = list.slice(0, MAX_CHIPS);
  const more = list.length - shown.length;
  return h(
    "div",
    { class: `chip-row ${className}` },
    h("span", { class: "chip-title" }, title),
    h(
      "ul",
      { class: "chips", "aria-label": title },
      shown.length ? shown.map((v) => h("li", { class: "chip" }, String(v))) : h("li", { class: "chip none" }, "None yet"),
      more > 0 ? h("li", { class: "chip more" }, `+${more}`) : null,
    ),
  );
}

function lastVisits(card) {
  const visits = (card.last_visits ?? []).slice(0, MAX_VISITS);
  return h(
    "section",
    { class: "history last-visits" },
    h("h3", {}, "Last visits here"),
    visits.length
      ? h(
          "ul",
          {},
          visits.map((v) =>
            h(
              "li",
              {},
              h("span", { class: "visit-when" }, `${day(v.at)} · ${hhmm(v.at)}`),
              h("span", { class: "amount" }, v.total === null || v.total === undefined ? "no purchase" : fmtMoney(v.total, v.currency)),
            ),
          ),
        )
      : h("p", { class: "empty-line" }, "First visit to this store"),
  );
}

function lastPurchases(card) {
  const purchases = (card.last_purchases ?? []).slice(0, MAX_PURCHASES);
  return h(
    "section",
    { class: "history last-purchases" },
    h("h3", {}, "Last purchases"),
    purchases.length
      ? h(
          "ul",
          {},
          purchases.map((p) => {
            const qty = Number(p.quantity) !== 1 && Number(p.quantity) > 0 ? ` ×${fmtQty(p.quantity)}` : "";
            const detail = [p.brand, p.category, day(p.at)].filter(Boolean).join(" · ");
            return h(
              "li",
              {},
              h("span", { class: "product" }, `${p.name ?? "Item"}${qty}`),
              h("span", { class: "detail" }, detail),
            );
          }),
        )
      : h("p", { class: "empty-line" }, "No purchases on record"),
  );
}

function greetedFooter(card, me) {
  const g = card.greeted;
  const mine = me && g.by_user_id === me.id;
  return h(
    "div",
    { class: "greeted-box" },
    h("span", { class: "tick", "aria-hidden": "true" }),
    h("p", { class: "greeted-by" }, `Greeted by ${g.by_name || "a colleague"} at ${hhmm(g.at)}`),
    mine ? h("span", { class: "by-you" }, "by you") : null,
  );
}

export function renderCard(card, me, { now = Date.now() } = {}) {
  const member = card.member;
  const kind = token(card.kind);
  const name = displayName(card);
  const article = h("article", {
    class: `arrival kind-${kind}${card.greeted ? " is-greeted" : ""}`,
    dataset: { arrivalId: String(card.arrival_id) },
    "aria-label": `${name}, arrived at ${hhmm(card.at)}`,
  });

  const who = h(
    "div",
    { class: "who" },
    h("h2", { class: "name" }, name),
    h(
      "div",
      { class: "badges" },
      member
        ? [
            h("span", { class: `level level-${token(member.level)}`, dataset: { level: String(member.level ?? "") } }, label(member.level)),
            h("span", { class: "vip-number" }, member.vip_number ?? ""),
          ]
        : h("span", { class: "kind-badge" }, "Not a member yet"),
    ),
  );
  const when = h(
    "div",
    { class: "when" },
    h("time", { class: "arrived", datetime: card.at }, hhmm(card.at)),
    h("span", { class: "ago" }, ago(card.at, now)),
  );

  const stats = h(
    "dl",
    { class: "stats" },
    h(
      "div",
      {},
      h("dt", {}, "Spend level"),
      h("dd", { class: `purchase-level pl-${token(card.purchase_level)}`, dataset: { level: String(card.purchase_level ?? "") } }, label(card.purchase_level)),
    ),
    h("div", {}, h("dt", {}, "Visits"), h("dd", { class: "visits" }, fmtInt(card.visit_count))),
    h("div", {}, h("dt", {}, "Spent"), h("dd", { class: "spend" }, fmtMoney(card.lifetime_spend, card.currency, { whole: true }))),
  );

  const action = card.greeted
    ? greetedFooter(card, me)
    : h("button", { class: "greet", type: "button" }, h("span", { class: "greet-label" }, "Greeted"));

  article.append(
    h("p", { class: "ribbon", "aria-hidden": "true" }, "Now arriving"),
    h("header", { class: "card-head" }, face(card), who, when),
    stats,
    h(
      "div",
      { class: "prefs" },
      chips("categories", "Likes", card.preferences?.categories),
      chips("brands", "Brands", card.preferences?.brands),
    ),
    h("div", { class: "histories" }, lastVisits(card), lastPurchases(card)),
    h("footer", { class: "card-foot" }, action),
  );
  return article;
}

/** Refresh the "3 min ago" line of a rendered card. */
export function refreshAgo(article, card, now = Date.now()) {
  const el = article.querySelector(".ago");
  if (el) el.textContent = ago(card.at, now);
}
