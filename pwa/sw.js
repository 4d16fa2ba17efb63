// Parley's service worker: an app-shell cache (never /api or /ws), the update handshake, and
// incoming-call notifications from Web Push.

const VERSION = "parley-v1";
const SHELL = [
  "/",
  "/index.html",
  "/manifest.webmanifest",
  "/css/app.css",
  "/js/api.js",
  "/js/call.js",
  "/js/chat.js",
  "/js/main.js",
  "/js/media.js",
  "/js/protocol.js",
  "/js/push.js",
  "/js/signaling.js",
  "/js/views/auth.js",
  "/js/views/call.js",
  "/js/views/dom.js",
  "/js/views/room.js",
  "/js/views/rooms.js",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
  "/icons/maskable-512.png",
  "/icons/badge-96.png",
  "/icons/apple-touch-icon-180.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== VERSION).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("message", (event) => {
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
      fetch(request).catch(() => caches.match("/index.html").then((hit) => hit || Response.error())),
    );
    return;
  }
  event.respondWith(
    caches.match(request).then((hit) => hit || fetch(request)),
  );
});

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    return;
  }
  if (data.type === "call_offer") {
    const media = data.media === "video" ? "video" : "voice";
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
