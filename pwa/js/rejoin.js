// Which call this tab is in, kept in sessionStorage, so a reload (not another device) rejoins it
// and its duration goes on from when it first connected.

const REJOIN_KEY = "parley.call";

/** The id of the call this tab is in, if any. */
export function readRejoin() {
  try {
    return sessionStorage.getItem(REJOIN_KEY);
  } catch {
    return null;
  }
}

/** When the call this tab rejoins first connected, for its duration; null if unknown. */
export function readSince() {
  try {
    const since = Number(sessionStorage.getItem(`${REJOIN_KEY}.since`));
    return since > 0 ? since : null;
  } catch {
    return null;
  }
}

/** Remember the call this tab is in and when it first connected. @param {string} callId @param {number|null} since */
export function rememberRejoin(callId, since) {
  try {
    sessionStorage.setItem(REJOIN_KEY, callId);
    if (since) sessionStorage.setItem(`${REJOIN_KEY}.since`, String(since));
    else sessionStorage.removeItem(`${REJOIN_KEY}.since`);
  } catch {
    // storage refused (private mode): a reload then drops the call, as before
  }
}

/** The call is over: a reload rejoins nothing. */
export function forgetRejoin() {
  try {
    sessionStorage.removeItem(REJOIN_KEY);
    sessionStorage.removeItem(`${REJOIN_KEY}.since`);
  } catch {
    // nothing to forget
  }
}
