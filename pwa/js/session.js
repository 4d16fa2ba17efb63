// The signed-in session: who is signed in, their socket, calls and chats, the microphone, camera
// and speaker they chose, and signing out. No DOM: main.js wires it to the views (tests reach it
// as window.parley).
//   session.open(user)      the user's SignalingClient, CallManager and ChatStore (wire, then connect())
//   session.connect()       open the socket and load the chat list
//   session.inCall          true while a reload would cut a call (or a ringing one)
//   session.chooseDevices() remember the microphone, camera or speaker for the next call
//   session.close()         sign out on the server and on this device
// Events: "expired" (the session ended elsewhere: the server refused the socket and /api/me says 401).

import { ApiError, api, iceConfig } from "./api.js";
import { CallManager } from "./call.js";
import { ChatStore } from "./chat.js";
import { GroupCallManager } from "./groupcalls.js";
import { disablePush } from "./push.js";
import { SignalingClient } from "./signaling.js";

const DEVICES = "parley.devices";

export class Session extends EventTarget {
  constructor() {
    super();
    /** @type {SignalingClient|null} */
    this.signaling = null;
    /** @type {CallManager|null} */
    this.calls = null;
    /** @type {ChatStore|null} */
    this.chat = null;
    /** @type {GroupCallManager|null} the group calls (a mesh), beside the direct ones */
    this.groups = null;
    /** @type {{id: number, username: string}|null} */
    this.user = null;
  }

  /** @param {{id: number, username: string}} user */
  open(user) {
    this.user = user;
    const signaling = new SignalingClient();
    const calls = new CallManager({ signaling, iceConfig });
    calls.devices = JSON.parse(localStorage.getItem(DEVICES) || "{}");
    const chat = new ChatStore({ signaling, user });
    const groups = new GroupCallManager({ signaling, user, iceConfig });
    groups.devices = calls.devices;
    groups.busy = () => Boolean(calls.incoming || (calls.call && calls.call.state !== "ended"));
    Object.assign(this, { signaling, calls, chat, groups });
    signaling.addEventListener("state", (e) => {
      const { state, reason } = /** @type {CustomEvent} */ (e).detail;
      if (state !== "reconnecting" || reason !== "closed-before-open") return;
      // The upgrade may have been refused because the session ended elsewhere.
      api("GET", "/api/me").catch((error) => {
        if (error instanceof ApiError && error.status === 401) this.dispatchEvent(new Event("expired"));
      });
    });
    return { signaling, calls, chat, groups };
  }

  connect() {
    if (this.signaling) this.signaling.connect();
    if (this.chat) this.chat.loadRooms().catch(() => {});
  }

  /** A call (or a ringing one) would be cut by a reload: updates wait for it to end. */
  get inCall() {
    const calls = this.calls;
    const groups = this.groups;
    if (groups && (groups.incoming || (groups.call && groups.call.state !== "ended"))) return true;
    return Boolean(calls && (calls.incoming || (calls.call && calls.call.state !== "ended")));
  }

  /**
   * Change some of the remembered devices, keeping the rest (a speaker chosen in a call stays when
   * the settings change the microphone). An undefined id means the browser's default.
   * @param {import("./media.js").DeviceChoice} choice
   */
  chooseDevices(choice) {
    const stored = this.calls ? this.calls.devices : JSON.parse(localStorage.getItem(DEVICES) || "{}");
    const devices = { ...stored, ...choice };
    if (this.calls) this.calls.devices = devices;
    if (this.groups) this.groups.devices = devices;
    localStorage.setItem(DEVICES, JSON.stringify(devices));
  }

  async close() {
    const { signaling, calls, chat, groups } = this;
    await disablePush().catch(() => {});
    if (groups) groups.dispose();
    if (calls) calls.dispose();
    if (chat) chat.dispose();
    if (signaling) signaling.close();
    Object.assign(this, { signaling: null, calls: null, chat: null, groups: null, user: null });
    await api("POST", "/api/logout").catch(() => {});
  }
}
