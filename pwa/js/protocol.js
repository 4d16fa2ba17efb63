// The signalling wire protocol (mirror of backend/signaling/protocol.py; docs/protocol.md).
// Every message is one JSON object per WebSocket text frame with a "type".

/** @typedef {{id: number, username: string}} User */
/** @typedef {{candidate: string, sdpMid?: string|null, sdpMLineIndex?: number|null, usernameFragment?: string|null}} IceCandidateInit */
/** @typedef {{type: "offer"|"answer", sdp: string}} Description */
/** @typedef {{call_id: string, room_id: number, media: "audio"|"video", state: "ringing"|"active", role: "caller"|"callee", peer: User, polite: boolean}} CallInfo */
/**
 * Server -> client.
 * @typedef {{type: "welcome", protocol: number, user: User, online: number[], calls: CallInfo[]}} Welcome
 * @typedef {{type: "pong", t?: number}} Pong
 * @typedef {{type: "presence", user_id: number, online: boolean}} Presence
 * @typedef {{type: "chat_message", message: object}} ChatDelivered
 * @typedef {{type: "chat_ack", client_id: string, message: object, delivered: boolean}} ChatAck
 * @typedef {{type: "receipt", room_id: number, delivered_id: number, read_id: number}} Receipt the other person's markers: own messages up to delivered_id reached a device of theirs, up to read_id they read
 * @typedef {{type: "call_offer", call_id: string, room_id: number, from: User, media: "audio"|"video", sdp: string, polite: boolean}} CallOfferIn
 * @typedef {{type: "call_ringing", call_id: string, polite: boolean}} CallRinging
 * @typedef {{type: "call_answer", call_id: string, sdp: string, from: User, polite: boolean}} CallAnswerIn
 * @typedef {{type: "ice_candidate", call_id: string, candidate: IceCandidateInit|null, from: User}} IceIn
 * @typedef {{type: "call_description", call_id: string, description: Description, restart?: boolean, from: User}} DescriptionIn
 * @typedef {{type: "call_media", call_id: string, audio: boolean, video: boolean, from: User}} CallMediaIn
 * @typedef {{type: "call_rejected", call_id: string, reason: "declined"|"busy"|"timeout"|"unsupported"}} CallRejected
 * @typedef {{type: "call_cancelled"|"call_timeout"|"call_busy"|"call_answered_elsewhere", call_id: string}} CallOver
 * @typedef {{type: "call_end", call_id: string, reason: "hangup"|"disconnected"|"gone"}} CallEndIn
 * @typedef {{type: "call_merged", call_id: string, into: string}} CallMerged
 * @typedef {{type: "call_resumed", call_id: string, polite: boolean}} CallResumed
 * @typedef {{type: "error", reason: string, message: string, ref_type?: string, call_id?: string}} ErrorIn
 */

/** The protocol this code speaks; a `welcome` with a higher one means this code is too old. */
export const PROTOCOL_VERSION = 1;

/** Longest chat `text` the server stores, in Unicode code points (MAX_TEXT in backend/chat.py). */
export const MAX_TEXT = 4000;

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
