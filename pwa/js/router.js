// The address names the screen: "#/" (or nothing) the chat list, "#/room/N" the chat with id N.
// No DOM: main.js re-renders the screens when it changes.

/** The id of the chat the address opens, or null for the chat list. */
export function roomInAddress() {
  const match = location.hash.match(/^#\/room\/(\d+)$/);
  return match ? Number(match[1]) : null;
}

/** @param {number} roomId */
export function goToRoom(roomId) {
  location.hash = `#/room/${roomId}`;
}

export function goToList() {
  location.hash = "#/";
}

/** @param {() => void} onChange */
export function onAddressChange(onChange) {
  window.addEventListener("hashchange", onChange);
}
