// The JSON API over fetch: same-origin cookies, errors as ApiError with the server's message.

export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * @param {"GET"|"POST"|"PATCH"|"DELETE"} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {RequestInit} */
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "You are offline. Parley will retry when the network is back.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `request failed (${response.status})`);
  }
  return data;
}

/** Fetch ICE servers for a new RTCPeerConnection; plain STUN-less config when unavailable. */
export async function iceConfig() {
  try {
    const body = await api("GET", "/api/ice-servers");
    return {
      iceServers: body.iceServers || [],
      iceTransportPolicy: body.iceTransportPolicy || "all",
      ttl: body.ttl || 0,
    };
  } catch {
    return { iceServers: [], iceTransportPolicy: "all", ttl: 0 };
  }
}

// Group rooms (docs/api.md): each answers the room's summary, except leaving (nothing).
export const groups = {
  /** @param {string} name @param {string[]} usernames */
  create: (name, usernames) => api("POST", "/api/groups", { name, usernames }),
  /** @param {number} roomId @param {string} username */
  add: (roomId, username) => api("POST", `/api/rooms/${roomId}/members`, { username }),
  /** @param {number} roomId @param {string} name */
  rename: (roomId, name) => api("PATCH", `/api/rooms/${roomId}`, { name }),
  /** @param {number} roomId */
  leave: (roomId) => api("DELETE", `/api/rooms/${roomId}/members/me`),
};
