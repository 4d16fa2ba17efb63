// The screens under the bar: sign-in, the offline notice, and the chats: the list and the open room,
// side by side on a wide screen and one at a time on a phone (app.css decides from the width and
// #app's `in-room` class). The bar's title, Back and Sign out follow the screen shown.

import { renderAuth } from "./auth.js";
import { h } from "./dom.js";
import { renderRoom } from "./room.js";
import { renderRooms, roomLabel } from "./rooms.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @typedef {{signIn: (u: string, p: string) => Promise<void>, signUp: (u: string, p: string) => Promise<void>}} AuthIntents
 * @typedef {{devices: {audioDeviceId?: string, videoDeviceId?: string},
 *            chooseDevices: (choice: {audioDeviceId?: string, videoDeviceId?: string}) => void,
 *            checkConnection: (() => Promise<import("../conncheck.js").CheckReport>) | null,
 *            openChat: (username: string) => Promise<void>,
 *            canCall: boolean,
 *            call: (roomId: number, media: "audio"|"video") => void,
 *            joinCall?: (roomId: number) => void}} ChatIntents
 */

export class Screens {
  /** @param {{back: () => void, signOut: () => void}} intents the bar's two buttons */
  constructor(intents) {
    this.app = $("app");
    this.title = $("title");
    this.back = $("back");
    this.signOut = $("signout");
    this.banner = $("banner");
    this.listPane = h("div", { class: "pane list-pane" });
    this.roomPane = h("div", { class: "pane room-pane" });
    this.stop = () => {};
    this.goBack = intents.back; // also where a room goes once its user left it
    this.back.addEventListener("click", intents.back);
    this.signOut.addEventListener("click", intents.signOut);
  }

  /** @param {AuthIntents} intents */
  auth(intents) {
    this.stop();
    this.stop = () => {};
    this.app.classList.remove("panes", "in-room");
    this.title.textContent = "Parley";
    this.back.hidden = true;
    this.signOut.hidden = true;
    renderAuth(this.app, intents);
  }

  /** Who is signed in cannot be known without the network: say so, and start again once it is back. */
  offline() {
    this.banner.textContent = "You are offline. Parley reconnects when the network is back.";
    this.banner.hidden = false;
    window.addEventListener("online", () => location.reload(), { once: true });
  }

  /**
   * The chat list, and the chat `roomId` beside it (or a placeholder when none is open).
   * @param {import("../chat.js").ChatStore} chat @param {number|null} roomId @param {ChatIntents} intents
   */
  chats(chat, roomId, intents) {
    this.stop();
    this.signOut.hidden = false;
    this.app.replaceChildren(this.listPane, this.roomPane);
    this.app.classList.add("panes");
    this.app.classList.toggle("in-room", roomId !== null);
    const stopList = renderRooms(this.listPane, chat, {
      activeRoomId: roomId,
      devices: intents.devices,
      chooseDevices: intents.chooseDevices,
      checkConnection: intents.checkConnection,
      openChat: intents.openChat,
      joinCall: intents.joinCall,
    });
    if (roomId === null) {
      this.back.hidden = true;
      this.title.textContent = "Parley";
      this.roomPane.replaceChildren(h("p", { class: "no-room" }, "Choose a chat, or open a new one by username."));
      this.stop = stopList;
      return;
    }
    this.back.hidden = false;
    const setTitle = () => {
      const room = chat.room(roomId);
      this.title.textContent = room ? roomLabel(room, chat.user) : "Chat";
    };
    setTitle();
    chat.addEventListener("rooms", setTitle);
    const stopRoom = renderRoom(this.roomPane, chat, roomId, {
      canCall: intents.canCall,
      call: (media) => intents.call(roomId, media),
      joinCall: intents.joinCall && (() => intents.joinCall?.(roomId)),
      left: this.goBack,
    });
    this.stop = () => {
      stopList();
      stopRoom();
      chat.removeEventListener("rooms", setTitle);
    };
  }
}
