/** Number, size and time formatting for the dashboard. */

/** @param {number | null | undefined} n @param {number} [digits] */
export const num = (n, digits = 1) => {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(Math.abs(n) >= 100 ? 0 : digits);
};

/** Milliseconds, with a unit that keeps 2-3 significant digits. @param {number | null | undefined} ms */
export const ms = (ms) => {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
};

/** @param {number | null | undefined} bytes */
export const bytes = (bytes) => {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
};

/** @param {number | null | undefined} p a percentage, 0..100 */
export const pct = (p) => (p === null || p === undefined || !Number.isFinite(p) ? "–" : `${p.toFixed(0)}%`);

/** @param {string | number | null | undefined} at ISO text or ms since the epoch */
const toMs = (at) =>
  at === null || at === undefined ? Number.NaN : typeof at === "number" ? at : Date.parse(at);

/** "12s ago", "3m ago", "2h ago", "4d ago". @param {string | number | null | undefined} at */
export const ago = (at) => {
  const t = toMs(at);
  if (!Number.isFinite(t)) return "–";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
};

/** "1h 02m", "3m 05s", "12s". @param {string | number | null | undefined} since */
export const uptime = (since) => {
  const t = toMs(since);
  if (!Number.isFinite(t)) return "–";
  const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
};

/** Local wall-clock time, hh:mm:ss. @param {string | number | null | undefined} at */
export const clock = (at) => {
  const t = toMs(at);
  if (!Number.isFinite(t)) return "–";
  return new Date(t).toLocaleTimeString([], { hour12: false });
};

/** Local date and time. @param {string | number | null | undefined} at */
export const datetime = (at) => {
  const t = toMs(at);
  if (!Number.isFinite(t)) return "–";
  const d = new Date(t);
  return `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${d.toLocaleTimeString([], { hour12: false })}`;
};

/** @param {string | null | undefined} text @param {number} [n] */
export const short = (text, n = 12) => (text ? (text.length > n ? `${text.slice(0, n)}…` : text) : "–");
