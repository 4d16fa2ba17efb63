// A connection's ICE servers and their TURN credentials, which expire (coturn's TURN REST scheme):
// fetched again when close to expiry, before gathering starts (a first offer or answer, an ICE
// restart), else the relay refuses the allocation and a relay-only path never comes up. No DOM and
// no signalling.

const CREDENTIAL_MARGIN_MS = 60000; // credentials this close to expiry are fetched again

/** @typedef {{iceServers: RTCIceServer[], iceTransportPolicy?: RTCIceTransportPolicy, ttl?: number}} IceConfig */

/** @param {IceConfig} config @returns {RTCConfiguration} */
export const rtcConfig = (config) => ({ iceServers: config.iceServers, iceTransportPolicy: config.iceTransportPolicy || "all" });

export class Credentials {
  /**
   * @param {IceConfig} config what the connection is built with @param {number} fetchedAt when
   *   `config` was fetched (Date.now()) @param {() => Promise<IceConfig>} fetch fetches it again
   */
  constructor(config, fetchedAt, fetch) {
    this.fetch = fetch;
    this.fetchedAt = fetchedAt;
    this.ttlMs = (config.ttl || 0) * 1000;
  }

  /**
   * Give `pc` fresh credentials if its own are close to expiry; if they cannot be fetched (the
   * network may be half up) it keeps the old ones. @param {RTCPeerConnection} pc @param {string} why
   */
  async refresh(pc, why) {
    if (!this.ttlMs || Date.now() + CREDENTIAL_MARGIN_MS < this.fetchedAt + this.ttlMs) return;
    try {
      const config = await this.fetch();
      if (pc.signalingState === "closed") return;
      pc.setConfiguration(rtcConfig(config));
      this.fetchedAt = Date.now();
      this.ttlMs = (config.ttl || 0) * 1000;
    } catch (error) {
      console.warn(`no fresh TURN credentials; ${why} with the old ones`, error);
    }
  }
}
