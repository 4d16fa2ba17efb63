// Boot: sign-in state, the socket, calls and chat, the router, the service worker.

import { ApiError, api, iceConfig } from "./api.js";
import { CallManager, canCall } from "./call.js";
import { canCheck, checkConnection } from "./conncheck.js";
import { disablePush, enablePush, pushState } from "./push.js";
import { ChatStore } from "./chat.js";
import { SignalingClient } from "./signaling.js";
import { Updater } from "./updater.js";
import { renderAuth } from "./views/auth.js";
import { mountCallView, mountIncomingView } from "./views/callscreen.js";
import { renderRoom } from "./views/room.js";
import { renderRooms } from "./views/rooms.js";
import { mountUpdateBanner } from "./views/update.js";

const app = /** @type {HTMLElement} */ (document.getElementById("app"));
const title = /** @type {HTMLElement} */ (document.getElementById("title"));
const back = /** @type {HTMLElement} */ (document.getElementById("back"));
const signOutButton = /** @type {HTMLElement} */ (document.getElementById("signout"));
const connection = /** @type {HTMLElement} */ (document.getElementById("connection"));
const banner = /** @type {HTMLElement} */ (document.getElementById("banner"));
const toastEl = /** @type {HTMLElement} */ (document.getElementById("toast"));
const updateBanner = /** @type {HTMLElement} */ (document.getElementById("update"));

/** @type {{signaling: SignalingClient|null, calls: CallManager|null, chat: ChatStore|null, user: any}} */
const session = { signaling: null, calls: null, chat: null, user: null };
/** @type {any} */ (window).parley = session;
let stopView = () => {};
let toastTimer = 0;

/** A call (or a ringing one) would be cut by a reload: updates wait for it to end. */
function inCall() {
  const calls = session.calls;
  return Boolean(calls && (calls.incoming || (calls.call && calls.call.state !== "ended")));
}
const updater = new Updater({ busy: inCall });

/** @param {string} text */
function toast(text) {
  toastEl.textContent = text;
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toastEl.hidden = true), 4000);
}

async function boot() {
  mountUpdateBanner(updateBanner, updater);
  updater.start();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (e) => {
      if (e.data && e.data.type === "notification-action") notificationAction(e.data.action, e.data.call_id);
    });
  }
  back.addEventListener("click", () => (location.hash = "#/"));
  signOutButton.addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  try {
    startSession(await api("GET", "/api/me"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 0) showOffline();
    else showAuth();
  }
}

function showAuth() {
  stopView();
  stopView = () => {};
  app.classList.remove("panes", "in-room");
  title.textContent = "Parley";
  back.hidden = true;
  signOutButton.hidden = true;
  connection.textContent = "";
  renderAuth(app, {
    signIn: async (username, password) => startSession(await api("POST", "/api/login", { username, password })),
    signUp: async (username, password) => startSession(await api("POST", "/api/register", { username, password })),
  });
}

function showOffline() {
  banner.textContent = "You are offline. Parley reconnects when the network is back.";
  banner.hidden = false;
  window.addEventListener("online", () => location.reload(), { once: true });
}

/** @param {{id: number, username: string}} user */
function startSession(user) {
  session.user = user;
  const signaling = new SignalingClient();
  const calls = new CallManager({ signaling, iceConfig });
  calls.devices = JSON.parse(localStorage.getItem("parley.devices") || "{}");
  const chat = new ChatStore({ signaling, user });
  Object.assign(session, { signaling, calls, chat });
  signaling.addEventListener("state", (e) => {
    const { state, reason } = /** @type {CustomEvent} */ (e).detail;
    connection.textContent = state === "open" ? "" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
    if (state === "reconnecting" && reason === "closed-before-open") {
      // The upgrade may have been refused because the session ended elsewhere.
      api("GET", "/api/me").catch((error) => {
        if (error instanceof ApiError && error.status === 401) signOut();
      });
    }
  });
  // A reconnect is often a restarted server, so a deploy: look for a new version then too.
  signaling.addEventListener("welcome", () => updater.check());
  signaling.addEventListener("outdated", () => {
    connection.textContent = "Update needed";
    updater.markOutdated();
  });
  for (const type of ["call", "ended", "incoming", "incoming_end"]) calls.addEventListener(type, () => updater.changed());
  calls.addEventListener("ended", (e) => {
    const { call } = /** @type {CustomEvent} */ (e).detail;
    if (call.error) toast(call.error);
  });
  mountCallView(calls, signaling);
  mountIncomingView(calls);
  signaling.connect();
  signOutButton.hidden = false;
  chat.loadRooms().catch(() => {});
  route();
  offerNotifications();
  const params = new URLSearchParams(location.search);
  if (params.get("call")) {
    notificationAction(params.get("action") || "accept", /** @type {string} */ (params.get("call")));
    history.replaceState(null, "", `/${location.hash}`);
  }
}

/** After sign-in, a clear prompt to let calls ring while Parley is closed. */
async function offerNotifications() {
  if ((await pushState().catch(() => "unsupported")) !== "prompt" || localStorage.getItem("parley.push-asked")) return;
  banner.replaceChildren("Get calls even when Parley is closed. ");
  const yes = document.createElement("button");
  yes.type = "button";
  yes.textContent = "Allow notifications";
  yes.addEventListener("click", async () => {
    banner.hidden = true;
    localStorage.setItem("parley.push-asked", "1");
    const on = await enablePush().catch(() => false);
    toast(on ? "Calls will ring on this device." : "Notifications stay off; you can allow them in the browser settings.");
  });
  const no = document.createElement("button");
  no.type = "button";
  no.textContent = "Not now";
  no.addEventListener("click", () => {
    banner.hidden = true;
    localStorage.setItem("parley.push-asked", "1");
  });
  banner.append(yes, no);
  banner.hidden = false;
}

/** Act on a tap on an incoming-call notification (from sw.js or the URL it opened). */
function notificationAction(/** @type {string} */ action, /** @type {string} */ callId) {
  const calls = session.calls;
  if (!calls) return;
  const act = () => {
    if (!calls.incoming || calls.incoming.callId !== callId) return false;
    if (action === "decline") calls.decline();
    else calls.accept();
    return true;
  };
  if (act()) return;
  // The offer arrives once the socket is up: act on it then (for up to 10 s).
  const onIncoming = () => {
    if (act()) calls.removeEventListener("incoming", onIncoming);
  };
  calls.addEventListener("incoming", onIncoming);
  setTimeout(() => calls.removeEventListener("incoming", onIncoming), 10000);
}

async function signOut() {
  const { signaling, calls, chat } = session;
  await disablePush().catch(() => {});
  if (calls) calls.dispose();
  if (chat) chat.dispose();
  if (signaling) signaling.close();
  Object.assign(session, { signaling: null, calls: null, chat: null, user: null });
  await api("POST", "/api/logout").catch(() => {});
  location.hash = "";
  location.reload();
}

// Two panes, the chat list and the open chat: side by side on a wide screen, one at a time on a
// phone (app.css decides from the width and main's `in-room` class).
const listPane = document.createElement("div");
listPane.className = "pane list-pane";
const roomPane = document.createElement("div");
roomPane.className = "pane room-pane";

function route() {
  const chat = session.chat;
  if (!chat) return;
  stopView();
  const match = location.hash.match(/^#\/room\/(\d+)$/);
  app.replaceChildren(listPane, roomPane);
  app.classList.add("panes");
  app.classList.toggle("in-room", Boolean(match));
  const calls = /** @type {CallManager} */ (session.calls);
  const stopList = renderRooms(listPane, chat, {
    activeRoomId: match ? Number(match[1]) : null,
    devices: calls.devices,
    chooseDevices: (choice) => {
      calls.devices = choice;
      localStorage.setItem("parley.devices", JSON.stringify(choice));
    },
    checkConnection: canCheck() ? async () => checkConnection(await iceConfig()) : null,
    openChat: async (username) => {
      const room = await chat.openRoom(username);
      location.hash = `#/room/${room.id}`;
    },
  });
  if (match) {
    const roomId = Number(match[1]);
    back.hidden = false;
    const setTitle = () => {
      const room = chat.room(roomId);
      title.textContent = room ? (room.peer.username === "echo" ? "Echo test" : room.peer.username) : "Chat";
    };
    setTitle();
    chat.addEventListener("rooms", setTitle);
    const stopRoom = renderRoom(roomPane, chat, roomId, {
      canCall,
      call: (media) => {
        const room = chat.room(roomId);
        if (!room) return;
        calls.start({ roomId, peer: room.peer, media }).catch((error) => toast(error.message));
      },
    });
    stopView = () => {
      stopList();
      stopRoom();
      chat.removeEventListener("rooms", setTitle);
    };
  } else {
    back.hidden = true;
    title.textContent = "Parley";
    const placeholder = document.createElement("p");
    placeholder.className = "no-room";
    placeholder.textContent = "Choose a chat, or open a new one by username.";
    roomPane.replaceChildren(placeholder);
    stopView = stopList;
  }
}

// --- install ---------------------------------------------------------------------------------

const installButton = /** @type {HTMLElement} */ (document.getElementById("install"));
/** @type {any} */
let installPrompt = null;
window.addEventListener("beforeinstallprompt", (e) => {
  e.preventDefault();
  installPrompt = e;
  installButton.hidden = false;
});
installButton.addEventListener("click", async () => {
  if (!installPrompt) return;
  installPrompt.prompt();
  await installPrompt.userChoice.catch(() => null);
  installPrompt = null;
  installButton.hidden = true;
});
const isIos = /iphone|ipad|ipod/i.test(navigator.userAgent);
const standalone = window.matchMedia("(display-mode: standalone)").matches || /** @type {any} */ (navigator).standalone;
if (isIos && !standalone && !localStorage.getItem("parley.ios-hint")) {
  banner.textContent = "Install Parley: tap Share, then “Add to Home Screen”.";
  banner.hidden = false;
  localStorage.setItem("parley.ios-hint", "1");
}

boot();
