// Parley's service worker: an app-shell cache (never /api or /ws), the update handshake, and
// incoming-call notifications from Web Push.

// The server fills this line in when it serves this file (backend/web.py): `version` is a hash of
// every file of the app, so any change to the app changes this worker and browsers install it;
// `shell` lists every file to cache, taken from the pwa/ folder so the list cannot go stale.
const BUILD = { version: "unbuilt", shell: ["/"] };
const CACHE = `parley-${BUILD.version}`;

self.addEventListener("install", (event) => {
  // cache: "reload" so the new worker caches the new files, never copies from the HTTP cache.
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(BUILD.shell.map((url) => new Request(url, { cache: "reload" })))),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("message", (event) => {
  // The page sends this when the person taps Update (never during a call): the new worker takes
  // over and the page reloads into the new code.
  if (event.data && event.data.type === "skip-waiting") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/ws" || url.pathname === "/ca.crt") return;
  if (request.mode === "navigate") {
    // Network first so a deploy is seen at once; the cached shell when offline.
    event.respondWith(
      fetch(request).catch(() => fromCache("/index.html").then((hit) => hit || Response.error())),
    );
    return;
  }
  event.respondWith(fromCache(request).then((hit) => hit || fetch(request)));
});

/** Answer from this worker's own cache, so a page never mixes files of two versions. */
function fromCache(/** @type {RequestInfo} */ request) {
  return caches.open(CACHE).then((cache) => cache.match(request));
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    return;
  }
  if (data.type === "call_offer") {
    // A group call (PushCallOffer.group) says so: Accept joins the group's call.
    const media = `${data.group ? "group " : ""}${data.media === "video" ? "video" : "voice"}`;
    const caller = (data.from && data.from.username) || "Someone";
    event.waitUntil(
      self.registration.showNotification(`${caller} is calling (${media})`, {
        body: `Incoming ${media} call on Parley`,
        tag: data.call_id,
        renotify: true,
        requireInteraction: true,
        icon: "/icons/icon-192.png",
        badge: "/icons/badge-96.png",
        vibrate: [600, 400, 600, 400, 600],
        data: { call_id: data.call_id, room_id: data.room_id },
        actions: [
          { action: "accept", title: "Accept" },
          { action: "decline", title: "Decline" },
        ],
      }),
    );
    return;
  }
  if (["call_cancelled", "call_timeout", "call_answered_elsewhere", "call_rejected", "call_end"].includes(data.type)) {
    event.waitUntil(
      self.registration
        .getNotifications({ tag: data.call_id })
        .then((list) => list.forEach((notification) => notification.close())),
    );
  }
});

self.addEventListener("notificationclick", (event) => {
  const { call_id: callId, room_id: roomId } = event.notification.data || {};
  const action = event.action || "accept";
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows[0];
      if (open) {
        open.postMessage({ type: "notification-action", action, call_id: callId, room_id: roomId });
        return open.focus();
      }
      return self.clients.openWindow(`/?call=${encodeURIComponent(callId)}&action=${action}#/room/${roomId}`);
    }),
  );
});
