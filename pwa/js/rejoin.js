// What outlives this page for a call: which call this tab is in (sessionStorage), so a reload (not
// another device) rejoins it, its duration going on from when it first connected and its camera on
// if it was; and the call reports the socket could not take, sent when it is back (localStorage).

import { callEnd } from "./protocol.js";

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
    sessionStorage.removeItem(`${REJOIN_KEY}.camera`);
  } catch {
    // nothing to forget
  }
}

// Camera on in a voice call: a reload of this tab comes back sending video too.
const CAMERA_KEY = `${REJOIN_KEY}.camera`;

/** Whether this tab had its camera on in the voice call `callId`. @param {string} callId */
export function cameraWasOn(callId) {
  try {
    return sessionStorage.getItem(CAMERA_KEY) === callId;
  } catch {
    return false;
  }
}

/** Remember whether the camera is on in the voice call `callId`. @param {string} callId @param {boolean} on */
export function rememberCamera(callId, on) {
  try {
    if (on) sessionStorage.setItem(CAMERA_KEY, callId);
    else sessionStorage.removeItem(CAMERA_KEY);
  } catch {
    // storage refused: a reload comes back as a voice call
  }
}

// Call reports the socket could not take (down as the call ended), sent when it is back. In
// localStorage, so another tab or a reload sends them too; the server takes a report only within
// 5 minutes of the end (REPORT_WINDOW in backend/signaling/store.py), so older ones are dropped.
const REPORTS_KEY = "parley.reports";
const REPORTS_KEPT = 10;
const REPORT_WINDOW_MS = 5 * 60 * 1000;

/** @returns {{frame: {call_id: string}, at: number}[]} the kept reports still worth sending */
function keptReports() {
  try {
    const kept = JSON.parse(localStorage.getItem(REPORTS_KEY) || "[]");
    const now = Date.now();
    return Array.isArray(kept) ? kept.filter((k) => k && k.frame && now - k.at < REPORT_WINDOW_MS) : [];
  } catch {
    return [];
  }
}

/** @param {{frame: {call_id: string}, at: number}[]} kept */
function storeReports(kept) {
  try {
    if (kept.length) localStorage.setItem(REPORTS_KEY, JSON.stringify(kept.slice(-REPORTS_KEPT)));
    else localStorage.removeItem(REPORTS_KEY);
  } catch {
    // storage refused or full: the report is lost, as it was before
  }
}

/** Keep a `call_report` frame the socket did not take. @param {{call_id: string}} frame */
export function keepReport(frame) {
  storeReports([...keptReports().filter((k) => k.frame.call_id !== frame.call_id), { frame, at: Date.now() }]);
}

/**
 * Send the kept reports through `send` (false: the socket is down again); keep the unsent ones.
 * A call the server still has live was ended here while its call_end could not go: end it first,
 * since the server takes a report only for an ended call.
 * @param {{call_id: string}[]} live the calls the server's welcome lists
 * @param {(frame: object) => boolean} send
 */
export function sendKeptReports(live, send) {
  const unsent = keptReports().filter((k) => {
    if (live.some((c) => c.call_id === k.frame.call_id) && !send(callEnd(k.frame.call_id))) return true;
    return !send(k.frame);
  });
  storeReports(unsent);
}
