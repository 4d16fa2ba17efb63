// The signalling wire protocol: frame constructors for what this client sends. The frames, their
// types and the server's limits come from wire.js, generated from backend/signaling/protocol.py
// (`flask --app backend protocol-js`; docs/protocol.md). One JSON object per WebSocket text frame.
import { LIMITS, PROTOCOL_VERSION } from "./wire.js";

/** @typedef {import("./wire.js").User} User */
/** @typedef {import("./wire.js").IceCandidateInit} IceCandidateInit */
/** @typedef {import("./wire.js").SessionDescription} Description */
/** @typedef {import("./wire.js").CallInfo} CallInfo */
/**
 * Server -> client, by the names this client's modules use.
 * @typedef {import("./wire.js").Welcome} Welcome
 * @typedef {import("./wire.js").Pong} Pong
 * @typedef {import("./wire.js").Presence} Presence
 * @typedef {import("./wire.js").ChatDeliver} ChatDelivered
 * @typedef {import("./wire.js").ChatAck} ChatAck
 * @typedef {import("./wire.js").Receipt} Receipt
 * @typedef {import("./wire.js").CallOffer} CallOfferIn
 * @typedef {import("./wire.js").CallRinging} CallRinging
 * @typedef {import("./wire.js").CallAnswer} CallAnswerIn
 * @typedef {import("./wire.js").IceCandidate} IceIn
 * @typedef {import("./wire.js").CallDescription} DescriptionIn
 * @typedef {import("./wire.js").CallMedia} CallMediaIn
 * @typedef {import("./wire.js").CallRejected} CallRejected
 * @typedef {import("./wire.js").CallCancelled|import("./wire.js").CallTimeout|import("./wire.js").CallBusy|import("./wire.js").CallAnsweredElsewhere} CallOver
 * @typedef {import("./wire.js").CallEnd} CallEndIn
 * @typedef {import("./wire.js").CallMerged} CallMerged
 * @typedef {import("./wire.js").CallResumed} CallResumed
 * @typedef {import("./wire.js").Error} ErrorIn
 */

/** The protocol this code speaks; a `welcome` with a higher one means this code is too old. */
export { PROTOCOL_VERSION };

/** Longest chat `text` the server stores, in Unicode code points. */
export const MAX_TEXT = LIMITS.MAX_TEXT;

export const newId = () => crypto.randomUUID();

export const ping = (/** @type {number} */ t) => ({ type: "ping", t });
export const chatMessage = (/** @type {number} */ roomId, /** @type {string} */ clientId, /** @type {string} */ text) =>
  ({ type: "chat_message", room_id: roomId, client_id: clientId, text });
export const callOffer = (/** @type {string} */ callId, /** @type {number} */ roomId, /** @type {number} */ to, /** @type {"audio"|"video"} */ media, /** @type {string} */ sdp) =>
  ({ type: "call_offer", call_id: callId, room_id: roomId, to, media, sdp });
export const callAnswer = (/** @type {string} */ callId, /** @type {string} */ sdp) => ({ type: "call_answer", call_id: callId, sdp });
export const iceCandidate = (/** @type {string} */ callId, /** @type {IceCandidateInit|null} */ candidate) =>
  ({ type: "ice_candidate", call_id: callId, candidate });
/** `restart`: an offer from a new peer connection (after a reload); the other side replaces its own. */
export const callDescription = (/** @type {string} */ callId, /** @type {Description} */ description, restart = false) =>
  (restart ? { type: "call_description", call_id: callId, description, restart } : { type: "call_description", call_id: callId, description });
/** `unsupported`: this browser cannot take calls (no WebRTC), so it turns every offer down at once. */
export const callRejected = (/** @type {string} */ callId, /** @type {"declined"|"busy"|"timeout"|"unsupported"} */ reason) =>
  ({ type: "call_rejected", call_id: callId, reason });
export const callEnd = (/** @type {string} */ callId) => ({ type: "call_end", call_id: callId });
/** Whether this side's microphone (`audio`) and camera (`video`) are on. */
export const callMedia = (/** @type {string} */ callId, /** @type {boolean} */ audio, /** @type {boolean} */ video) =>
  ({ type: "call_media", call_id: callId, audio, video });
export const callResume = (/** @type {string} */ callId) => ({ type: "call_resume", call_id: callId });
/** How the call went on this side, sent once after it ended (stats.js ReportCard.summary). */
export const callReport = (/** @type {string} */ callId, /** @type {import("./stats.js").Report} */ report) =>
  ({ type: "call_report", call_id: callId, ...report });

// Group calls (a mesh, groupcalls.js): every description and candidate goes `to` one participant.
export const groupCallStart = (/** @type {string} */ callId, /** @type {number} */ roomId, /** @type {"audio"|"video"} */ media) =>
  ({ type: "group_call_start", call_id: callId, room_id: roomId, media });
export const groupCallJoin = (/** @type {string} */ callId) => ({ type: "group_call_join", call_id: callId });
/** Leave the call, or (not in it) decline its ring on every device. */
export const groupCallLeave = (/** @type {string} */ callId) => ({ type: "group_call_leave", call_id: callId });
/** `restart`: an offer from a new connection (after a reload or resume); `to` replaces its own. */
export const groupDescription = (/** @type {string} */ callId, /** @type {number} */ to, /** @type {Description} */ description, restart = false) =>
  ({ ...callDescription(callId, description, restart), to });
export const groupCandidate = (/** @type {string} */ callId, /** @type {number} */ to, /** @type {IceCandidateInit|null} */ candidate) =>
  ({ ...iceCandidate(callId, candidate), to });

// Group calls through the SFU (sfulink.js): `pc` names the connection, "publish" (what we send)
// or "subscribe" (what we receive); Parley relays them to Janus.
export const sfuDescription = (/** @type {string} */ callId, /** @type {"publish"|"subscribe"} */ pc, /** @type {Description} */ description) =>
  ({ type: "sfu_description", call_id: callId, pc, description });
export const sfuCandidate = (/** @type {string} */ callId, /** @type {"publish"|"subscribe"} */ pc, /** @type {IceCandidateInit|null} */ candidate) =>
  ({ type: "sfu_candidate", call_id: callId, pc, candidate });
