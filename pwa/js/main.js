// Boot and wiring, nothing else: start the updater and the install offer, find out who is signed
// in, and connect each module's events to another's intents. The jobs live in their own modules:
// session.js (socket, calls, chats, sign-out), router.js (the address), notifyaction.js (taps on a
// call's notification), updater.js, and the views (screens, call screen, banners, toast).

import { ApiError, api, iceConfig } from "./api.js";
import { canCall } from "./call.js";
import { canCheck, checkConnection } from "./conncheck.js";
import { ringSource } from "./groupcalls.js";
import { answerFromNotification, listenForNotificationTaps, takeTapFromAddress } from "./notifyaction.js";
import { goToList, goToRoom, onAddressChange, roomInAddress } from "./router.js";
import { Ringer } from "./ringer.js";
import { Session } from "./session.js";
import { Updater } from "./updater.js";
import { unlockAudioOnTap } from "./views/audiounlock.js";
import { mountCallView, mountIncomingView } from "./views/callscreen.js";
import { mountConnectionStatus } from "./views/connection.js";
import { mountGroupView } from "./views/groupscreen.js";
import { mountInstall } from "./views/install.js";
import { networkChanges } from "./views/network.js";
import { offerNotifications } from "./views/notifyoffer.js";
import { Screens } from "./views/screens.js";
import { toast } from "./views/toast.js";
import { mountUpdateBanner } from "./views/update.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const banner = $("banner");

const session = new Session();
const ringer = new Ringer();
/** @type {any} */ (window).parley = Object.assign(session, { ringer }); // tests hear it as window.parley.ringer
const updater = new Updater({ busy: () => session.inCall });
const screens = new Screens({ back: goToList, signOut });
session.addEventListener("expired", signOut);

async function boot() {
  mountUpdateBanner($("update"), updater);
  updater.start();
  listenForNotificationTaps((action, callId) => {
    if (session.calls) answerFromNotification(session.calls, action, callId);
    if (session.groups) answerFromNotification(session.groups, action, callId);
  });
  onAddressChange(route);
  try {
    startSession(await api("GET", "/api/me"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 0) screens.offline();
    else
      screens.auth({
        signIn: async (username, password) => startSession(await api("POST", "/api/login", { username, password })),
        signUp: async (username, password) => startSession(await api("POST", "/api/register", { username, password })),
      });
  }
}

/** @param {{id: number, username: string}} user */
function startSession(user) {
  const { signaling, calls, chat, groups } = session.open(user);
  // Online again or another network: the live call restarts ICE at once (views/network.js hears it).
  networkChanges().addEventListener("change", (e) => {
    if (calls.call) calls.call.networkChanged(/** @type {CustomEvent} */ (e).detail.reason);
    if (groups.call) groups.call.networkChanged(/** @type {CustomEvent} */ (e).detail.reason);
  });
  mountConnectionStatus($("connection"), signaling);
  // A reconnect is often a restarted server, so a deploy: look for a new version then too.
  signaling.addEventListener("welcome", () => updater.check());
  signaling.addEventListener("outdated", () => updater.markOutdated());
  for (const manager of [calls, groups]) {
    for (const type of ["call", "ended", "incoming", "incoming_end"]) manager.addEventListener(type, () => updater.changed());
    manager.addEventListener("ended", (e) => {
      const { call } = /** @type {CustomEvent} */ (e).detail;
      if (call.error) toast(call.error);
    });
  }
  mountCallView(calls, signaling, { chooseDevices: (choice) => session.chooseDevices(choice) });
  mountIncomingView(calls);
  mountGroupView(groups, signaling, { roomName: (roomId) => chat.room(roomId)?.name || "the group" });
  ringer.follow(/** @type {any} */ (ringSource(calls, groups))); // ringback while it rings there, a ringtone while the dialog shows
  session.connect();
  route();
  offerNotifications(banner);
  const tap = takeTapFromAddress();
  if (tap) answerFromNotification(calls, tap.action, tap.callId);
  if (tap) answerFromNotification(groups, tap.action, tap.callId);
}

/** Show the screen the address names: the chat list, and the chat it opens beside it. */
function route() {
  const { chat, calls, groups } = session;
  if (!chat || !calls || !groups) return;
  screens.chats(chat, roomInAddress(), {
    devices: calls.devices,
    chooseDevices: (choice) => session.chooseDevices(choice),
    checkConnection: canCheck() ? async () => checkConnection(await iceConfig()) : null,
    openChat: async (username) => goToRoom((await chat.openRoom(username)).id),
    canCall,
    call: async (roomId, media) => {
      try {
        // A room this page has not had the summary of yet (a group made a moment ago) is fetched first:
        // a tap on Video call never does nothing.
        const room = await chat.roomNow(roomId);
        if (!room) throw new Error("This chat is not available any more.");
        await (room.kind === "group" ? groups.start(roomId, media) : calls.start({ roomId, peer: room.peer, media }));
      } catch (error) {
        toast(error instanceof Error ? error.message : String(error));
      }
    },
    joinCall: (roomId) => groups.join(roomId).catch((error) => toast(error.message)),
  });
}

async function signOut() {
  await session.close();
  location.hash = "";
  location.reload();
}

mountInstall($("install"), banner);
unlockAudioOnTap(() => ringer.unlock());
boot();
