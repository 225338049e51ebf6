/**
 * One block: what and where it is, its live charts, its instances, the allocation steps of its creation,
 * its events and its logs; scale and delete.
 */
import { enc, get, request } from "../api.js";
import { blockCharts, feedCharts, stepList } from "../components.js";
import { badge, byId, h, renderIfChanged, replace } from "../dom.js";
import * as f from "../format.js";
import { errorText, historyOf, loadBlocks, loadCreations, state, subscribe } from "../state.js";

/**
 * @typedef {{
 *   id: string,
 *   detail: any,
 *   panels: Record<string, import("../components.js").ChartPanel>,
 *   root: HTMLElement,
 *   parts: Record<string, HTMLElement>,
 *   timers: ReturnType<typeof setInterval>[],
 * }} Page
 */

/** @type {Page | null} */
let page = null;

/** @param {string} label @param {unknown} value @param {string} [title] */
const kv = (label, value, title) =>
  h("div", null, h("dt", null, label), h("dd", { title: title ?? "" }, value));

/** @param {string} title @param {HTMLElement} body @param {...unknown} extra */
const panel = (title, body, ...extra) =>
  h(
    "div",
    { class: "panel" },
    h("div", { class: "section-head tight" }, h("h3", null, title), ...extra),
    body,
  );

/** @param {Page} p */
const renderHead = (p) => {
  const b = p.detail;
  p.root.dataset.status = b?.status ?? "";
  renderIfChanged(p.parts.badge, b?.status ?? null, (s) => (s ? badge(s) : null));
  renderIfChanged(p.parts.info, b, (b) =>
    b
      ? h(
          "dl",
          { class: "kv" },
          kv("cluster", b.cluster_id ?? "–"),
          kv("component", b.component ?? "–", b.component ?? ""),
          kv("gRPC", h("code", null, b.grpc_url ?? "–"), b.grpc_url ?? ""),
          kv(
            "instances",
            `${b.instances.length}${b.min_instances !== null ? ` (min ${b.min_instances}, max ${b.max_instances})` : ""}`,
          ),
          kv("created", f.datetime(b.created_at), b.created_at ?? ""),
          kv("updated", f.datetime(b.updated_at), b.updated_at ?? ""),
          kv("controller", b.live ? "answering" : "not answering"),
          b.error
            ? kv("error", h("span", { class: "block-error" }, `${b.error.code}: ${b.error.message}`))
            : null,
        )
      : h("div", { class: "muted" }, "loading…"),
  );
  renderIfChanged(p.parts.instances, b ? { live: b.live, instances: b.instances } : null, (v) => {
    if (!v) return null;
    if (!v.live)
      return h("div", { class: "faint" }, "the block's controller did not answer: instances unknown");
    if (v.instances.length === 0) return h("div", { class: "faint" }, "no instances");
    return h(
      "table",
      { class: "table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", null, "Instance"),
          h("th", null, "Node"),
          h("th", null, "GPUs"),
          h("th", null, "URL"),
          h("th", { class: "num" }, "Up"),
        ),
      ),
      h(
        "tbody",
        null,
        v.instances.map((/** @type {any} */ i) =>
          h(
            "tr",
            { "data-instance": i.id, "data-node": i.node_id },
            h("td", { class: "mono" }, i.id),
            h("td", { class: "mono" }, i.node_id),
            h("td", { class: "mono" }, i.gpus.length ? i.gpus.join(", ") : "–"),
            h("td", { class: "mono muted" }, i.url ?? "–"),
            h("td", { class: "num", title: i.started_at ?? "" }, f.uptime(i.started_at)),
          ),
        ),
      ),
    );
  });
  renderIfChanged(p.parts.steps, b?.steps ?? null, (steps) => (steps ? stepList(steps) : null));
  const input = /** @type {HTMLInputElement} */ (p.parts.scaleInput);
  if (b) {
    if (b.min_instances !== null) input.min = String(b.min_instances);
    if (b.max_instances !== null) input.max = String(b.max_instances);
    // Follows the block until someone types a number of their own.
    if (document.activeElement !== input && input.dataset.edited !== "true")
      input.value = String(b.instances.length);
  }
  renderLogTargets(p);
};

/** @param {Page} p */
const renderLogTargets = (p) => {
  const select = /** @type {HTMLSelectElement} */ (p.parts.logTarget);
  const ids = (p.detail?.instances ?? []).map((/** @type {any} */ i) => i.id);
  const want = ["", ...ids];
  const have = [...select.options].map((o) => o.value);
  if (want.join("\n") === have.join("\n")) return;
  const current = select.value;
  replace(
    select,
    h("option", { value: "" }, "block services"),
    ids.map((/** @type {string} */ id) => h("option", { value: id }, `instance ${id}`)),
  );
  select.value = want.includes(current) ? current : "";
};

/** @param {Page} p */
const loadDetail = async (p) => {
  try {
    p.detail = await get(`/api/blocks/${enc(p.id)}`);
    p.parts.error.hidden = true;
  } catch (err) {
    p.parts.error.hidden = false;
    p.parts.error.textContent = `GET /api/blocks/${p.id}: ${errorText(err)}`;
  }
  if (page === p) renderHead(p);
};

/** @param {Page} p */
const loadEvents = async (p) => {
  let events;
  try {
    events = await get(`/api/blocks/${enc(p.id)}/events`);
  } catch (err) {
    replace(p.parts.events, h("div", { class: "block-error" }, errorText(err)));
    return;
  }
  if (page !== p) return;
  renderIfChanged(p.parts.events, events, (events) =>
    !Array.isArray(events) || events.length === 0
      ? h("div", { class: "faint" }, "no events")
      : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "table" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                h("th", null, "At"),
                h("th", null, "Event"),
                h("th", null, "Outcome"),
                h("th", null, "Policy"),
                h("th", null, "Actions"),
                h("th", null, "Error"),
              ),
            ),
            h(
              "tbody",
              null,
              [...events]
                .sort((a, b) => Date.parse(b.at) - Date.parse(a.at))
                .slice(0, 100)
                .map((e) =>
                  h(
                    "tr",
                    { "data-event": e.id },
                    h("td", { class: "muted", title: e.at }, f.datetime(e.at)),
                    h("td", { class: "mono" }, e.event_name ?? "–"),
                    h("td", null, badge(e.outcome)),
                    h("td", { class: "mono muted" }, e.policy ?? "–"),
                    h(
                      "td",
                      { class: "mono" },
                      e.actions?.length
                        ? e.actions
                            .map((/** @type {any} */ a) =>
                              typeof a === "object" && a
                                ? (a.action ?? a.type ?? JSON.stringify(a))
                                : String(a),
                            )
                            .join(", ")
                        : "–",
                    ),
                    h("td", { class: "block-error" }, e.error ?? ""),
                  ),
                ),
            ),
          ),
        ),
  );
};

/** @param {Page} p */
const loadLogs = async (p) => {
  const target = /** @type {HTMLSelectElement} */ (p.parts.logTarget).value;
  const tail = /** @type {HTMLSelectElement} */ (p.parts.logTail).value;
  const pre = p.parts.logs;
  const query = new URLSearchParams({ tail });
  if (target) query.set("instance", target);
  try {
    const logs = await get(`/api/blocks/${enc(p.id)}/logs?${query}`);
    if (page !== p) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    const text = (logs?.lines ?? []).join("\n");
    if (pre.textContent !== text) {
      pre.textContent = text || "(no output)";
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    pre.classList.remove("block-error");
  } catch (err) {
    pre.textContent = errorText(err);
    pre.classList.add("block-error");
  }
};

/** @param {Page} p @param {{ instances?: number, delta?: number }} body */
const scale = async (p, body) => {
  const result = p.parts.actionResult;
  p.parts.scaleInput.dataset.edited = "false";
  result.className = "result";
  result.textContent = "scaling…";
  try {
    const { body: view } = await request("POST", `/api/blocks/${enc(p.id)}/scale`, {
      json: body,
      timeoutMs: 120_000,
    });
    result.className = "result ok";
    result.textContent = `now ${view?.instances?.length ?? "?"} instances`;
  } catch (err) {
    result.className = "result error";
    result.textContent = errorText(err);
  }
  loadDetail(p);
  loadBlocks();
};

/** @param {Page} p */
const remove = async (p) => {
  if (!window.confirm(`Remove block ${p.id} from its cluster? Its instances stop.`)) return;
  const result = p.parts.actionResult;
  result.className = "result";
  result.textContent = "removing…";
  try {
    await request("DELETE", `/api/blocks/${enc(p.id)}`, { timeoutMs: 120_000 });
    result.className = "result ok";
    result.textContent = "removed";
  } catch (err) {
    result.className = "result error";
    result.textContent = errorText(err);
  }
  loadDetail(p);
  loadBlocks();
  loadCreations();
};

/** @param {string} id */
const build = (id) => {
  const root = byId("view-block");
  const parts = {
    badge: h("span"),
    info: h("div"),
    error: h("div", { class: "error-row", hidden: true }),
    instances: h("div"),
    steps: h("div"),
    events: h("div", null, h("div", { class: "faint" }, "loading…")),
    logs: h("pre", { class: "logs" }, "loading…"),
    logTarget: h("select", { "aria-label": "log source" }, h("option", { value: "" }, "block services")),
    logTail: h(
      "select",
      { "aria-label": "lines" },
      [100, 200, 500, 1000].map((n) =>
        h("option", { value: String(n), selected: n === 200 }, `last ${n} lines`),
      ),
    ),
    logFollow: h("input", { type: "checkbox", checked: true }),
    scaleInput: h("input", { type: "number", min: "0", step: "1", "aria-label": "instances" }),
    actionResult: h("span", { class: "result" }),
  };
  const panels = blockCharts(false, 180);
  /** @type {Page} */
  const p = { id, detail: null, panels, root, parts, timers: [] };
  replace(
    root,
    h(
      "div",
      { class: "detail-head" },
      h("a", { href: "#/", class: "crumb" }, "Blocks /"),
      h("h1", { "data-block-title": id }, id),
      parts.badge,
      h(
        "div",
        { class: "actions" },
        parts.actionResult,
        h(
          "button",
          {
            class: "btn",
            type: "button",
            title: "remove one instance",
            onclick: () => scale(p, { delta: -1 }),
          },
          "−1",
        ),
        h(
          "button",
          { class: "btn", type: "button", title: "add one instance", onclick: () => scale(p, { delta: 1 }) },
          "+1",
        ),
        parts.scaleInput,
        h(
          "button",
          {
            class: "btn",
            type: "button",
            onclick: () => {
              const n = Number(/** @type {HTMLInputElement} */ (parts.scaleInput).value);
              if (Number.isInteger(n) && n >= 0) scale(p, { instances: n });
            },
          },
          "Scale to",
        ),
        h("span", { class: "sep" }),
        h("button", { class: "btn btn-danger", type: "button", onclick: () => remove(p) }, "Delete"),
      ),
    ),
    parts.error,
    h("div", { class: "panel" }, parts.info),
    h(
      "div",
      { class: "detail-charts" },
      Object.values(panels).map((x) => x.el),
    ),
    h(
      "div",
      { class: "grid-2" },
      panel("Instances", parts.instances),
      panel("Allocation steps", parts.steps),
    ),
    h("div", { class: "stack" }, panel("Events", parts.events)),
    h(
      "div",
      { class: "stack" },
      panel(
        "Logs",
        parts.logs,
        h("span", { class: "spacer" }),
        parts.logTarget,
        parts.logTail,
        h("label", { class: "inline" }, parts.logFollow, "follow"),
        h("button", { class: "btn", type: "button", onclick: () => loadLogs(p) }, "Refresh"),
      ),
    ),
  );
  parts.scaleInput.addEventListener("input", () => {
    parts.scaleInput.dataset.edited = "true";
  });
  parts.logTarget.addEventListener("change", () => loadLogs(p));
  parts.logTail.addEventListener("change", () => loadLogs(p));
  return p;
};

const feed = () => {
  if (!page) return;
  feedCharts(page.panels, historyOf(page.id), page.root, {
    min: page.detail?.min_instances,
    max: page.detail?.max_instances,
  });
};

export const block = {
  init() {
    subscribe("metrics", feed);
  },
  /** @param {string} id */
  show(id) {
    if (page?.id === id) return;
    block.hide();
    const p = build(id);
    page = p;
    state.watched.add(id);
    p.root.dataset.block = id;
    feed();
    const live = () => !state.paused && page === p;
    loadDetail(p);
    loadEvents(p);
    loadLogs(p);
    p.timers.push(
      setInterval(() => live() && loadDetail(p), 3000),
      setInterval(() => live() && loadEvents(p), 3000),
      setInterval(
        () => live() && /** @type {HTMLInputElement} */ (p.parts.logFollow).checked && loadLogs(p),
        3000,
      ),
    );
  },
  hide() {
    if (!page) return;
    for (const t of page.timers) clearInterval(t);
    for (const x of Object.values(page.panels)) x.chart.destroy();
    state.watched.delete(page.id);
    page = null;
  },
};
