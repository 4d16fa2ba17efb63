// A tap on an incoming-call notification's Accept or Decline: passed on by the service worker
// (sw.js posts "notification-action") or, when the tap opened Parley, in the address
// (?call=ID&action=accept|decline). No DOM.

/**
 * Call `onTap(action, callId)` for every tap the service worker passes on.
 * @param {(action: string, callId: string) => void} onTap
 */
export function listenForNotificationTaps(onTap) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.addEventListener("message", (e) => {
    if (e.data && e.data.type === "notification-action") onTap(e.data.action, e.data.call_id);
  });
}

/** The tap that opened this page, if any, taken out of the address. */
export function takeTapFromAddress() {
  const params = new URLSearchParams(location.search);
  const callId = params.get("call");
  if (!callId) return null;
  history.replaceState(null, "", `/${location.hash}`);
  return { action: params.get("action") || "accept", callId };
}

/**
 * Accept or decline the incoming call `callId`, now or once its offer arrives over the socket.
 * @param {import("./call.js").CallManager} calls @param {string} action @param {string} callId
 */
export function answerFromNotification(calls, action, callId) {
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
