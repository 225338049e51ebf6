/**
 * Block metrics kept in the browser: each read of `GET /api/blocks/{id}/metrics` becomes one point;
 * requests/s and errors/s are the differences of successive totals over the time between the reads.
 * Points older than WINDOW_SEC are dropped.
 */

export const WINDOW_SEC = 300;

/**
 * @typedef {{
 *   block_id: string, at: number, requests_total: number, errors_total: number, in_flight: number,
 *   latency_ms: { p50: number | null, p99: number | null }, instances: number
 * }} BlockMetrics
 */

export class BlockHistory {
  constructor() {
    /** @type {number[]} seconds */
    this.t = [];
    /** @type {(number | null)[]} */
    this.rps = [];
    /** @type {(number | null)[]} */
    this.eps = [];
    /** @type {(number | null)[]} */
    this.p50 = [];
    /** @type {(number | null)[]} */
    this.p99 = [];
    /** @type {number[]} */
    this.instances = [];
    /** @type {number[]} */
    this.inFlight = [];
    /** @type {BlockMetrics | null} */
    this.last = null;
    /** @type {string | null} the last read's error, cleared by the next good one */
    this.error = null;
  }

  /** @param {BlockMetrics} m */
  push(m) {
    const prev = this.last;
    if (prev && m.at <= prev.at) return;
    let rps = null;
    let eps = null;
    if (prev) {
      const dt = (m.at - prev.at) / 1000;
      // A total that went down is a restarted counter: no rate for that interval.
      if (dt > 0 && m.requests_total >= prev.requests_total)
        rps = (m.requests_total - prev.requests_total) / dt;
      if (dt > 0 && m.errors_total >= prev.errors_total) eps = (m.errors_total - prev.errors_total) / dt;
    }
    this.t.push(m.at / 1000);
    this.rps.push(rps);
    this.eps.push(eps);
    this.p50.push(m.latency_ms.p50);
    this.p99.push(m.latency_ms.p99);
    this.instances.push(m.instances);
    this.inFlight.push(m.in_flight);
    this.last = m;
    this.error = null;
    const cutoff = m.at / 1000 - WINDOW_SEC;
    let drop = 0;
    while (drop < this.t.length && /** @type {number} */ (this.t[drop]) < cutoff) drop++;
    if (drop > 0) {
      for (const arr of [this.t, this.rps, this.eps, this.p50, this.p99, this.instances, this.inFlight]) {
        arr.splice(0, drop);
      }
    }
  }

  /** The latest requests/s (null before two reads). */
  get currentRps() {
    return this.rps.length ? (this.rps[this.rps.length - 1] ?? null) : null;
  }

  get currentEps() {
    return this.eps.length ? (this.eps[this.eps.length - 1] ?? null) : null;
  }
}
