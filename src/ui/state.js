/**
 * What the dashboard knows, the polling that keeps it fresh, and the errors the API answered. Views
 * subscribe to topics ("clusters", "blocks", "creations", "metrics", "policies") and re-render from
 * `state` when one is published.
 */
import { ApiError, enc, get } from "./api.js";
import { h, replace } from "./dom.js";
import { BlockHistory } from "./metrics.js";

export const state = {
  /** @type {any[] | null} */
  clusters: null,
  /** @type {any[] | null} */
  blocks: null,
  /** @type {any[] | null} */
  creations: null,
  /** @type {any[] | null} */
  policies: null,
  /** @type {Map<string, BlockHistory>} */
  history: new Map(),
  paused: false,
  /** Block ids whose metrics are read every second besides the running ones (the open detail page). */
  /** @type {Set<string>} */
  watched: new Set(),
  /** @type {number} ms since the epoch of the last good answer */
  lastOk: 0,
  /** The API answered 401: polling waits for the sign-in form. */
  signedOut: false,
  /** @type {{ id: string, name: string, scopes: string[], anonymous?: boolean } | null} who the token is */
  principal: null,
};

/** @type {Map<string, Set<() => void>>} */
const subscribers = new Map();

/** @param {string} topic @param {() => void} fn @returns {() => void} unsubscribe */
export const subscribe = (topic, fn) => {
  let set = subscribers.get(topic);
  if (!set) {
    set = new Set();
    subscribers.set(topic, set);
  }
  set.add(fn);
  return () => set.delete(fn);
};

/** @param {string} topic */
export const publish = (topic) => {
  for (const fn of subscribers.get(topic) ?? []) {
    try {
      fn();
    } catch (err) {
      console.error(`render of ${topic} failed`, err);
    }
  }
};

/** @param {string} id */
export const historyOf = (id) => {
  let hist = state.history.get(id);
  if (!hist) {
    hist = new BlockHistory();
    state.history.set(id, hist);
  }
  return hist;
};

// ---- errors ------------------------------------------------------------------------------------

/** @type {Map<string, { text: string, dismissed: boolean }>} */
const errors = new Map();

const renderErrors = () => {
  const box = document.getElementById("errors");
  if (!box) return;
  const rows = [...errors.entries()]
    .filter(([, e]) => !e.dismissed)
    .map(([source, e]) =>
      h(
        "div",
        { class: "error-row", "data-source": source },
        h("span", { class: "src" }, source),
        h("span", { class: "msg" }, e.text),
        h(
          "button",
          {
            type: "button",
            title: "dismiss",
            onclick: () => {
              e.dismissed = true;
              renderErrors();
            },
          },
          "×",
        ),
      ),
    );
  replace(box, rows);
  updateConn();
};

/** @param {unknown} err */
export const errorText = (err) =>
  err instanceof ApiError ? err.text : err instanceof Error ? err.message : String(err);

/** @param {string} source e.g. "GET /api/clusters" @param {unknown} err */
export const reportError = (source, err) => {
  // A 401 is the sign-in form's to show (signin.js), not an error row per list.
  if (err instanceof ApiError && err.status === 401) return;
  const text = errorText(err);
  const prev = errors.get(source);
  if (prev && prev.text === text) return;
  errors.set(source, { text, dismissed: false });
  renderErrors();
};

/** @param {string} source */
export const clearError = (source) => {
  if (errors.delete(source)) renderErrors();
};

export const updateConn = () => {
  const conn = document.getElementById("conn");
  if (!conn) return;
  const label = /** @type {HTMLElement} */ (conn.querySelector("span"));
  const failing = [...errors.keys()].length;
  let s;
  let text;
  if (state.signedOut) {
    s = "paused";
    text = "signed out";
  } else if (state.paused) {
    s = "paused";
    text = "paused";
  } else if (state.lastOk === 0 && failing === 0) {
    s = "pending";
    text = "connecting";
  } else if (failing > 0) {
    s = "error";
    text = `${failing} API error${failing > 1 ? "s" : ""}`;
  } else {
    s = "ok";
    text = `live · ${new Date(state.lastOk).toLocaleTimeString([], { hour12: false })}`;
  }
  conn.dataset.state = s;
  label.textContent = text;
};

// ---- polling -----------------------------------------------------------------------------------

/**
 * Reads `path` into `state[key]` and publishes `topic`; an error is reported under the request's
 * name and the previous value is kept.
 * @param {"clusters" | "blocks" | "creations" | "policies"} key
 * @param {string} path
 */
const load = async (key, path) => {
  const source = `GET ${path.split("?")[0]}`;
  try {
    const body = await get(path);
    state[key] = Array.isArray(body) ? body : Array.isArray(body?.[key]) ? body[key] : [];
    state.lastOk = Date.now();
    clearError(source);
    updateConn();
    publish(key);
  } catch (err) {
    reportError(source, err);
  }
};

export const loadClusters = () => load("clusters", "/api/clusters");
export const loadBlocks = () => load("blocks", "/api/blocks");
export const loadCreations = () => load("creations", "/api/creations?limit=10");
export const loadPolicies = () => load("policies", "/api/policies");

/** @type {Set<string>} */
const metricsInFlight = new Set();

/** The ids whose metrics are read: running blocks and the watched ones. */
const metricIds = () => {
  const ids = new Set(state.watched);
  for (const b of state.blocks ?? []) if (b.status === "running") ids.add(b.id);
  return [...ids].slice(0, 48);
};

export const loadMetrics = async () => {
  const ids = metricIds().filter((id) => !metricsInFlight.has(id));
  if (ids.length === 0) return;
  await Promise.all(
    ids.map(async (id) => {
      metricsInFlight.add(id);
      try {
        historyOf(id).push(await get(`/api/blocks/${enc(id)}/metrics`));
        state.lastOk = Date.now();
      } catch (err) {
        historyOf(id).error = errorText(err);
      } finally {
        metricsInFlight.delete(id);
      }
    }),
  );
  updateConn();
  publish("metrics");
};

/** @type {{ fn: () => Promise<void> | void, ms: number, timer: ReturnType<typeof setTimeout> | null, when: () => boolean }[]} */
const pollers = [];

/**
 * Runs `fn` now and then every `ms` while not paused and `when()` holds.
 * @param {number} ms @param {() => Promise<void> | void} fn @param {() => boolean} [when]
 */
export const every = (ms, fn, when = () => true) => {
  const p = { fn, ms, timer: /** @type {ReturnType<typeof setTimeout> | null} */ (null), when };
  const tick = async () => {
    if (!state.paused && !state.signedOut && p.when()) {
      try {
        await p.fn();
      } catch (err) {
        console.error(err);
      }
    }
    p.timer = setTimeout(tick, p.ms);
  };
  pollers.push(p);
  tick();
};

/** Runs every poller now (after an action, or on resume). */
export const refreshAll = () => {
  if (state.signedOut) return;
  for (const p of pollers) if (p.when()) Promise.resolve(p.fn()).catch((err) => console.error(err));
};

/** @param {boolean} paused */
export const setPaused = (paused) => {
  state.paused = paused;
  updateConn();
  if (!paused) refreshAll();
};
