// Connection check: which paths a call could take from here, found by ICE gathering against the
// configured STUN and TURN servers. Creates RTCPeerConnections of its own; knows nothing of the page.
//
// Direct paths are host and server-reflexive candidates (STUN). Each TURN URL is gathered on its
// own with iceTransportPolicy "relay", so a relay candidate proves that URL's transport: UDP, TCP
// or TLS (turns:). The candidate's relayProtocol, where the browser has it, has the last word.

/** @typedef {"direct"|"udp"|"tcp"|"tls"} PathKind */
/** @typedef {"works"|"failed"|"absent"} PathOutcome  absent: the server offers no such path */
/** @typedef {{kind: PathKind, outcome: PathOutcome}} PathResult */
/**
 * @typedef {{paths: PathResult[], turnConfigured: boolean, verdict: string}} CheckReport
 * paths in the order Direct, Relay over UDP, TCP, TLS; verdict a sentence for the person.
 */
/** @typedef {{iceServers: RTCIceServer[]}} IceConfig */

/** A probe gives up after this long, so the whole check finishes even when a server never answers. */
export const PROBE_TIMEOUT_MS = 5000;

/** @type {Record<PathKind, string>} */
export const PATH_LABELS = { direct: "Direct", udp: "Relay over UDP", tcp: "Relay over TCP", tls: "Relay over TLS" };

/** @type {Record<PathOutcome, string>} */
export const OUTCOME_WORDS = { works: "works", failed: "no answer", absent: "not set up" };

/** Whether this browser can run the check at all (it needs WebRTC). */
export function canCheck() {
  return typeof RTCPeerConnection === "function";
}

/**
 * Which transport a TURN URL reaches its server over, or null when it is not a TURN URL.
 * @param {string} url
 * @returns {"udp"|"tcp"|"tls"|null}
 */
export function turnTransport(url) {
  const match = /^(turns?):[^?]*(?:\?(.*))?$/i.exec(url.trim());
  if (!match) return null;
  if (match[1].toLowerCase() === "turns") return "tls";
  const transport = new URLSearchParams(match[2] || "").get("transport");
  return transport && transport.toLowerCase() === "tcp" ? "tcp" : "udp";
}

/** @param {RTCIceServer} server @returns {string[]} */
function urlsOf(server) {
  return Array.isArray(server.urls) ? server.urls : [server.urls];
}

/** @param {RTCIceCandidate} candidate @returns {string} host, srflx, prflx or relay */
function typeOf(candidate) {
  return candidate.type || (/ typ (\w+)/.exec(candidate.candidate) || [])[1] || "";
}

/**
 * Gather candidates with `config` until `enough` says so, gathering completes, or the timeout.
 * @param {RTCConfiguration} config
 * @param {(candidate: RTCIceCandidate) => boolean} enough
 * @param {number} timeoutMs
 * @returns {Promise<RTCIceCandidate[]>}
 */
function gather(config, enough, timeoutMs) {
  /** @type {RTCIceCandidate[]} */
  const found = [];
  return new Promise((resolve) => {
    /** @type {RTCPeerConnection} */
    let pc;
    try {
      pc = new RTCPeerConnection(config);
    } catch {
      resolve(found); // a URL the browser rejects is a path that does not work
      return;
    }
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      pc.close();
      resolve(found);
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icecandidate", (event) => {
      if (!event.candidate) return finish();
      if (!event.candidate.candidate) return; // Firefox's end-of-candidates marker
      found.push(event.candidate);
      if (enough(event.candidate)) finish();
    });
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") finish();
    });
    pc.createDataChannel("conncheck"); // something to negotiate, so ICE gathers
    pc.createOffer()
      .then((offer) => pc.setLocalDescription(offer))
      .catch(finish);
  });
}

/**
 * Do direct paths exist: a host candidate, or a server-reflexive one when STUN is configured.
 * @param {RTCIceServer[]} stun @param {number} timeoutMs @returns {Promise<boolean>}
 */
async function probeDirect(stun, timeoutMs) {
  const wantReflexive = stun.length > 0;
  const candidates = await gather(
    { iceServers: stun },
    (c) => typeOf(c) === "srflx" || (!wantReflexive && typeOf(c) === "host"),
    timeoutMs,
  );
  return candidates.some((c) => ["host", "srflx"].includes(typeOf(c)));
}

/**
 * Which transport a relay through this one TURN URL works over, or null when none answered.
 * @param {RTCIceServer} server @param {string} url @param {number} timeoutMs
 * @returns {Promise<"udp"|"tcp"|"tls"|null>}
 */
async function probeRelay(server, url, timeoutMs) {
  const candidates = await gather(
    { iceServers: [{ ...server, urls: [url] }], iceTransportPolicy: "relay" },
    (c) => typeOf(c) === "relay",
    timeoutMs,
  );
  const relay = candidates.find((c) => typeOf(c) === "relay");
  if (!relay) return null;
  const protocol = /** @type {any} */ (relay).relayProtocol;
  return ["udp", "tcp", "tls"].includes(protocol) ? protocol : turnTransport(url);
}

/**
 * The sentence a person reads first: can calls connect from here, and if not, why.
 * @param {PathResult[]} paths @param {boolean} turnConfigured @returns {string}
 */
export function verdictFor(paths, turnConfigured) {
  const works = (/** @type {PathKind} */ kind) => paths.some((p) => p.kind === kind && p.outcome === "works");
  const direct = works("direct");
  const relay = works("udp") || works("tcp") || works("tls");
  if (!turnConfigured) {
    return direct
      ? "Calls work only when a direct path exists: no relay server is set up."
      : "Calls cannot connect: no direct path was found and no relay server is set up.";
  }
  if (relay) return "Calls can connect: directly where possible, through the relay server otherwise.";
  return direct
    ? "Calls work only when a direct path exists: the relay server did not answer."
    : "Calls cannot connect: no direct path was found and the relay server did not answer.";
}

/**
 * Run every probe at once against `config`'s servers and report each path.
 * @param {IceConfig} config
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<CheckReport>}
 */
export async function checkConnection(config, { timeoutMs = PROBE_TIMEOUT_MS } = {}) {
  const servers = config.iceServers || [];
  const stun = servers
    .map((s) => ({ urls: urlsOf(s).filter((u) => /^stuns?:/i.test(u)) }))
    .filter((s) => s.urls.length);
  /** @type {{server: RTCIceServer, url: string}[]} */
  const turns = servers.flatMap((server) =>
    urlsOf(server)
      .filter((url) => turnTransport(url))
      .map((url) => ({ server, url })),
  );
  const [direct, ...relays] = await Promise.all([
    probeDirect(stun, timeoutMs),
    ...turns.map(({ server, url }) => probeRelay(server, url, timeoutMs)),
  ]);
  /** @type {PathResult[]} */
  const paths = [{ kind: "direct", outcome: direct ? "works" : "failed" }];
  for (const kind of /** @type {const} */ (["udp", "tcp", "tls"])) {
    const offered = turns.some(({ url }) => turnTransport(url) === kind);
    const outcome = relays.includes(kind) ? "works" : offered ? "failed" : "absent";
    paths.push({ kind, outcome });
  }
  const turnConfigured = turns.length > 0;
  return { paths, turnConfigured, verdict: verdictFor(paths, turnConfigured) };
}
