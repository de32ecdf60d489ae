// StoreSight Staff service worker: the APP SHELL only.
//
// - install: precache the shell (page, scripts, styles, manifest, icons) in a versioned cache;
// - activate: delete older shell caches;
// - fetch: shell files cache-first, refreshed from the network in the background;
//   everything else, and above all the API (/v1/...), is not intercepted at all: personal data
//   never goes through this worker and never lands in Cache Storage.
// - notificationclick: bring the app to the front on the arrival's card.
//
// The server replaces VERSION's "v1" with a hash of the shell's files (cloud_api.staff_app), so
// a release that changes any of them installs a new worker and drops the old cache.

const VERSION = "v1";
const CACHE = `storesight-staff-shell-${VERSION}`;
const CACHE_PREFIX = "storesight-staff-shell-";
const SHELL = [
  "/staff/",
  "/staff/app.js",
  "/staff/api.js",
  "/staff/cards.js",
  "/staff/format.js",
  "/staff/staff.css",
  "/staff/manifest.webmanifest",
  "/staff/icons/icon-192.png",
  "/staff/icons/icon-512.png",
  "/staff/icons/icon-maskable-512.png",
];
const SHELL_PATHS = new Set(SHELL);

/** A redirected response cannot answer a navigation: copy it into a plain one. */
async function plain(response) {
  if (!response.redirected) return response;
  const body = await response.blob();
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

async function fetchAndStore(cache, path) {
  const response = await fetch(new Request(path, { cache: "no-cache", credentials: "same-origin" }));
  if (!response.ok || response.type !== "basic") throw new Error(`${path}: HTTP ${response.status}`);
  await cache.put(path, await plain(response));
  return response;
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await Promise.all(SHELL.map((path) => fetchAndStore(cache, path)));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names.filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE).map((name) => caches.delete(name)),
      );
      await self.clients.claim();
    })(),
  );
});

/** Which cached shell file answers this request, or null to leave the request alone. */
function shellKey(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return null;
  if (url.pathname.startsWith("/v1/")) return null; // the API: never touched
  if (request.mode === "navigate") {
    return url.pathname === "/staff/" || url.pathname === "/staff/index.html" ? "/staff/" : null;
  }
  return SHELL_PATHS.has(url.pathname) ? url.pathname : null;
}

self.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (!key) return; // not ours: the browser fetches it as if there were no worker
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const cached = await cache.match(key);
      const update = fetchAndStore(cache, key);
      if (cached) {
        event.waitUntil(update.catch(() => undefined));
        return cached;
      }
      try {
        return await plain(await update);
      } catch {
        return fetch(event.request);
      }
    })(),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data?.arrival_id ?? null;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const client = windows.find((c) => new URL(c.url).pathname.startsWith("/staff/"));
      if (client) {
        await client.focus();
        if (id !== null) client.postMessage({ type: "show-arrival", arrival_id: id });
      } else {
        await self.clients.openWindow("/staff/");
      }
    })(),
  );
});
