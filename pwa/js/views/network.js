// The browser's network events as one source for code that must not touch the DOM (the
// CallManager restarts ICE on them): "change" with detail {reason: "online"|"connection"} when the
// browser comes back online or navigator.connection says the network changed (where it exists).

/** @returns {EventTarget} */
export function networkChanges() {
  const source = new EventTarget();
  /** @param {"online"|"connection"} reason */
  const raise = (reason) => source.dispatchEvent(new CustomEvent("change", { detail: { reason } }));
  window.addEventListener("online", () => raise("online"));
  const connection = /** @type {EventTarget|undefined} */ (/** @type {any} */ (navigator).connection);
  // Going offline changes the connection too; a restart then has no network (nor fresh TURN
  // credentials) to gather on: wait for the change that brings one, or for "online".
  if (connection) connection.addEventListener("change", () => navigator.onLine && raise("connection"));
  return source;
}
