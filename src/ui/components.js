/** Pieces shared by the views: block cards and their charts, cluster cards, allocation steps. */
import { Chart } from "./charts.js";
import { badge, h, renderIfChanged, replace } from "./dom.js";
import * as f from "./format.js";

export const STEP_NAMES = ["filter", "selection", "dry_run", "post_dry_run", "allocation"];

const COLORS = {
  rps: "#5794f2",
  eps: "#f2495c",
  p50: "#73bf69",
  p99: "#f2cc0c",
  inst: "#b877d9",
  inflight: "#ff9830",
};

// ---- charts ------------------------------------------------------------------------------------

/**
 * One titled chart panel: a header with the latest value(s) and the uPlot chart below.
 * @param {{ key: string, title: string, series: import("./charts.js").SeriesSpec[], height: number,
 *   compact?: boolean, format?: (v: number) => string, integer?: boolean, minMax?: number }} spec
 */
export const chartPanel = (spec) => {
  const value = h("span", { class: "reading" }, "–");
  const body = h("div", { class: "chart-body nodata" });
  const el = h(
    "div",
    { class: "chart", "data-chart": spec.key },
    h("div", { class: "chart-head" }, h("span", { class: "title" }, spec.title), value),
    body,
  );
  const chart = new Chart(body, spec);
  return { el, value, chart };
};

/** @typedef {ReturnType<typeof chartPanel>} ChartPanel */

/**
 * The block charts: requests/s, latency, instances (and in flight when not compact).
 * @param {boolean} compact
 * @param {number} height
 */
export const blockCharts = (compact, height) => {
  const panels = {
    rps: chartPanel({
      key: "rps",
      title: "Requests/s",
      height,
      compact,
      format: (v) => f.num(v),
      series: [
        { label: "req/s", color: COLORS.rps },
        { label: "errors/s", color: COLORS.eps, fill: false },
      ],
    }),
    latency: chartPanel({
      key: "latency",
      title: "Latency",
      height,
      compact,
      format: (v) => f.ms(v),
      series: [
        { label: "p50", color: COLORS.p50 },
        { label: "p99", color: COLORS.p99, fill: false },
      ],
    }),
    instances: chartPanel({
      key: "instances",
      title: "Instances",
      height,
      compact,
      integer: true,
      minMax: 1,
      format: (v) => String(Math.round(v)),
      series: [{ label: "instances", color: COLORS.inst, stepped: true }],
    }),
  };
  if (!compact) {
    return {
      ...panels,
      inflight: chartPanel({
        key: "inflight",
        title: "In flight",
        height,
        compact,
        format: (v) => f.num(v),
        series: [{ label: "in flight", color: COLORS.inflight }],
      }),
    };
  }
  return panels;
};

/**
 * Feeds a block's history to its charts, and writes the latest values where people (and tests) read
 * them: the chart headers and `data-*` attributes on the panels and on `host`.
 * @param {Record<string, ChartPanel>} panels
 * @param {import("./metrics.js").BlockHistory} hist
 * @param {HTMLElement} host
 * @param {{ min?: number | null, max?: number | null }} [bounds]
 */
export const feedCharts = (panels, hist, host, bounds = {}) => {
  const last = hist.last;
  panels.rps?.chart.setData([hist.t, hist.rps, hist.eps]);
  panels.latency?.chart.setData([hist.t, hist.p50, hist.p99]);
  panels.instances?.chart.setData([hist.t, hist.instances]);
  panels.inflight?.chart.setData([hist.t, hist.inFlight]);
  if (!last) return;
  const rps = hist.currentRps;
  const eps = hist.currentEps;
  if (panels.rps) {
    replace(
      panels.rps.value,
      f.num(rps),
      h("small", null, "/s"),
      eps ? h("span", { class: "v2", style: { color: COLORS.eps } }, `${f.num(eps)} err/s`) : null,
    );
    panels.rps.el.dataset.value = String(rps ?? "");
  }
  if (panels.latency) {
    replace(
      panels.latency.value,
      h("small", null, "p50 "),
      f.ms(last.latency_ms.p50),
      h("small", null, " p99 "),
      h("span", { style: { color: COLORS.p99 } }, f.ms(last.latency_ms.p99)),
    );
    panels.latency.el.dataset.p50 = String(last.latency_ms.p50 ?? "");
    panels.latency.el.dataset.p99 = String(last.latency_ms.p99 ?? "");
  }
  if (panels.instances) {
    const range =
      bounds.min !== undefined && bounds.min !== null && bounds.max !== undefined && bounds.max !== null
        ? ` of ${bounds.min}–${bounds.max}`
        : "";
    replace(panels.instances.value, String(last.instances), range ? h("small", null, range) : null);
    panels.instances.el.dataset.instances = String(last.instances);
  }
  if (panels.inflight) {
    replace(panels.inflight.value, f.num(last.in_flight));
    panels.inflight.el.dataset.value = String(last.in_flight);
  }
  host.dataset.instances = String(last.instances);
  host.dataset.rps = String(rps ?? "");
  host.dataset.inFlight = String(last.in_flight);
};

// ---- blocks ------------------------------------------------------------------------------------

/** @param {any} inst */
export const instanceChip = (inst) =>
  h(
    "span",
    {
      class: "inst",
      "data-instance": inst.id,
      "data-node": inst.node_id,
      title: `${inst.id} on ${inst.node_id}${inst.url ? ` at ${inst.url}` : ""}${inst.started_at ? `, started ${f.datetime(inst.started_at)}` : ""}`,
    },
    h("span", null, inst.id),
    h("span", { class: "node" }, `@ ${inst.node_id}`),
    inst.gpus?.length ? h("span", { class: "gpu" }, `gpu ${inst.gpus.join(",")}`) : null,
  );

/** A block's card on the overview: what it is on the left, its live charts on the right. */
export class BlockCard {
  /** @param {string} id */
  constructor(id) {
    this.id = id;
    this.info = h("div", { class: "block-info" });
    this.chartsBox = h("div", { class: "block-charts" });
    this.note = h("div", { class: "chart-note", hidden: true });
    this.el = h(
      "article",
      { class: "block-card", "data-block-card": id },
      this.info,
      h("div", { style: { minWidth: "0" } }, this.chartsBox, this.note),
    );
    this.panels = blockCharts(true, 92);
    for (const p of Object.values(this.panels)) this.chartsBox.appendChild(p.el);
    /** @type {any} */
    this.view = null;
  }

  /** @param {any} view a BlockView */
  update(view) {
    this.view = view;
    this.el.dataset.status = view.status;
    renderIfChanged(this.info, view, (b) => [
      h(
        "div",
        { class: "block-title" },
        badge(b.status),
        h("a", { href: `#/block/${encodeURIComponent(b.id)}`, class: "block-id", title: b.id }, b.id),
      ),
      h(
        "dl",
        { class: "block-meta" },
        h("dt", null, "cluster"),
        h("dd", null, b.cluster_id ?? "–"),
        h("dt", null, "component"),
        h("dd", { title: b.component ?? "" }, b.component ?? "–"),
        h("dt", null, "instances"),
        h(
          "dd",
          null,
          `${b.instances.length}${b.min_instances !== null ? ` (min ${b.min_instances}, max ${b.max_instances})` : ""}`,
        ),
        h("dt", null, "gRPC"),
        h("dd", { class: "mono", title: b.grpc_url ?? "" }, b.grpc_url ?? "–"),
        h("dt", null, "created"),
        h("dd", { title: b.created_at ?? "" }, f.datetime(b.created_at)),
      ),
      b.error ? h("div", { class: "block-error" }, `${b.error.code}: ${b.error.message}`) : null,
      b.live
        ? h(
            "div",
            { class: "instances" },
            b.instances.length
              ? b.instances.map(instanceChip)
              : h("span", { class: "faint" }, "no instances"),
          )
        : h("div", { class: "faint" }, "controller did not answer: instances unknown"),
    ]);
  }

  /** @param {import("./metrics.js").BlockHistory | undefined} hist */
  updateMetrics(hist) {
    const running = this.view?.status === "running";
    if (!hist || (!hist.last && !running)) {
      // Nothing to chart: the card is its information alone.
      this.el.classList.toggle("inactive", !running);
      this.chartsBox.hidden = !running;
      this.note.hidden = true;
      return;
    }
    this.el.classList.remove("inactive");
    this.chartsBox.hidden = false;
    this.note.hidden = !hist.error;
    this.note.textContent = hist.error ? `metrics: ${hist.error}` : "";
    feedCharts(this.panels, hist, this.el, {
      min: this.view?.min_instances,
      max: this.view?.max_instances,
    });
  }

  destroy() {
    for (const p of Object.values(this.panels)) p.chart.destroy();
    this.el.remove();
  }
}

// ---- clusters ----------------------------------------------------------------------------------

/**
 * Node memory in MiB as the process runtime reports it; a value too large for MiB is taken as bytes
 * (Kubernetes quantities).
 * @param {number} v
 */
const memBytes = (v) => (v > 1e8 ? v : v * 1024 * 1024);

/** @param {number | null | undefined} p 0..100 */
const meter = (p) => {
  if (p === null || p === undefined || !Number.isFinite(p)) return h("span", { class: "faint" }, "–");
  const cls = p >= 90 ? "bar hot" : p >= 70 ? "bar warn" : "bar";
  return h(
    "div",
    { class: "meter" },
    h(
      "div",
      { class: cls, style: { flex: "1" } },
      h("span", { class: "fill", style: { width: `${Math.min(100, Math.max(0, p))}%` } }),
    ),
    h("span", null, f.pct(p)),
  );
};

/** MiB, as nvidia-smi reports GPU memory. @param {number | null} mib */
const mib = (mib) => (mib === null ? "–" : f.bytes(mib * 1024 * 1024));

/** A GPU: its id and utilization (percent); memory in the tooltip. @param {any} gpu */
const gpuChip = (gpu) => {
  const util = gpu.utilization === null ? "" : ` ${f.pct(gpu.utilization)}`;
  const mem = gpu.memory_total !== null ? `, memory ${mib(gpu.memory_used)} / ${mib(gpu.memory_total)}` : "";
  return h("span", { class: "gpu-chip", title: `${gpu.id}${mem}` }, `${gpu.id}${util}`);
};

/** "2 × GPU · 26%": the count and the mean utilization. @param {any[]} gpus */
const gpuSummary = (gpus) => {
  const utils = gpus.map((g) => g.utilization).filter((u) => typeof u === "number");
  const mean = utils.length ? utils.reduce((s, u) => s + u, 0) / utils.length : null;
  return `${gpus.length} GPU${mean === null ? "" : ` · ${f.pct(mean)}`}`;
};

/**
 * @param {any} c a ClusterView
 * @param {boolean} compact
 */
export const clusterCard = (c, compact) => {
  const healthy = c.nodes.filter((/** @type {any} */ n) => n.healthy).length;
  const gpus = c.nodes.reduce((/** @type {number} */ s, /** @type {any} */ n) => s + n.gpus.length, 0);
  return h(
    "div",
    { class: "cluster-card", "data-cluster": c.id },
    h(
      "div",
      { class: "cluster-head" },
      h("span", {
        class: `dot ${c.reachable ? "ok" : "bad"}`,
        title: c.reachable ? "controller reachable" : "controller unreachable",
      }),
      h("span", { class: "name" }, c.id),
      c.status ? badge(c.status) : null,
      h(
        "span",
        { class: "muted" },
        `${healthy}/${c.nodes.length} nodes healthy · ${gpus} GPUs · ${c.block_count} blocks`,
      ),
      h("span", { class: "spacer" }),
      c.controller_url ? h("span", { class: "url" }, c.controller_url) : null,
    ),
    c.error ? h("div", { class: "cluster-error" }, c.error) : null,
    c.nodes.length === 0
      ? h("div", { class: "chart-note" }, "no nodes")
      : h(
          "table",
          { class: "table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Node"),
              compact ? null : h("th", null, "Health"),
              h("th", { style: { width: "22%" } }, "CPU"),
              h("th", { style: { width: "22%" } }, "Memory"),
              compact ? null : h("th", { class: "num" }, "Allocatable / total"),
              h("th", null, "GPUs"),
            ),
          ),
          h(
            "tbody",
            null,
            c.nodes.map((/** @type {any} */ n) =>
              h(
                "tr",
                { "data-node": n.id, "data-healthy": String(n.healthy) },
                h(
                  "td",
                  {
                    class: "mono nowrap",
                    title: n.healthy ? "healthy" : `unhealthy${n.reason ? `: ${n.reason}` : ""}`,
                  },
                  compact ? [h("span", { class: `dot ${n.healthy ? "ok" : "bad"}` }), " "] : null,
                  n.id,
                ),
                compact
                  ? null
                  : h(
                      "td",
                      { title: n.reason ?? "" },
                      badge(n.healthy ? "healthy" : "unhealthy"),
                      !n.healthy && n.reason ? h("div", { class: "muted" }, n.reason) : null,
                    ),
                h("td", null, meter(n.cpu_utilization_percent)),
                h(
                  "td",
                  {
                    title: n.memory
                      ? `${f.bytes(memBytes(n.memory.total))} total, ${f.bytes(memBytes(n.memory.allocatable))} allocatable`
                      : "",
                  },
                  meter(n.memory?.usage_percent),
                ),
                compact
                  ? null
                  : h(
                      "td",
                      { class: "num nowrap" },
                      n.memory
                        ? `${f.bytes(memBytes(n.memory.allocatable))} / ${f.bytes(memBytes(n.memory.total))}`
                        : "–",
                    ),
                h(
                  "td",
                  null,
                  n.gpus.length === 0
                    ? h("span", { class: "faint" }, "none")
                    : compact
                      ? h(
                          "span",
                          { class: "gpu-chip", title: n.gpus.map((/** @type {any} */ g) => g.id).join(", ") },
                          gpuSummary(n.gpus),
                        )
                      : h("div", { class: "gpus" }, n.gpus.map(gpuChip)),
                ),
              ),
            ),
          ),
        ),
  );
};

// ---- allocation steps --------------------------------------------------------------------------

/** A detail value on one line: `score 0.82 · node_info {...}`, a list joined, an error's text. @param {unknown} v */
const valueText = (v) => {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "object") return String(v);
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== "object")) return v.length ? v.join(", ") : "(none)";
    return JSON.stringify(v);
  }
  const o = /** @type {Record<string, unknown>} */ (v);
  if (typeof o.error === "string") return `error: ${o.error}`;
  return Object.entries(o)
    .map(([k, x]) => `${k} ${x !== null && typeof x === "object" ? JSON.stringify(x) : String(x)}`)
    .join(" · ");
};

/** A step's detail: a key/value table for an object, JSON otherwise. @param {unknown} detail */
export const stepDetail = (detail) => {
  if (detail === null || detail === undefined) return h("span", { class: "faint" }, "–");
  if (typeof detail !== "object" || Array.isArray(detail))
    return h("pre", { class: "json" }, JSON.stringify(detail, null, 2));
  const entries = Object.entries(detail);
  if (entries.length === 0) return h("span", { class: "faint" }, "{}");
  return h(
    "table",
    { class: "detail-tbl" },
    entries.map(([k, v]) =>
      h(
        "tr",
        null,
        h("td", null, k),
        h("td", { class: v && typeof v === "object" && "error" in v ? "block-error" : "" }, valueText(v)),
      ),
    ),
  );
};

/** The five steps in order as chips, the ones not reached dashed. @param {any[]} steps */
export const pipeline = (steps) => {
  /** @type {(HTMLElement | string)[]} */
  const parts = [];
  STEP_NAMES.forEach((name, i) => {
    const tries = steps.filter((s) => s.step === name);
    const last = tries[tries.length - 1];
    const cls = !last ? "missing" : last.ok ? "ok" : "fail";
    if (i > 0) parts.push(h("span", { class: "arrow" }, "›"));
    parts.push(
      h(
        "span",
        {
          class: `step-chip ${cls}`,
          "data-step-chip": name,
          title: last
            ? `${name} ${last.ok ? "ok" : "failed"} at ${f.clock(last.at)}`
            : `${name}: not reached`,
        },
        tries.length > 1 ? `${name} ×${tries.length}` : name,
      ),
    );
  });
  return h("div", { class: "pipeline" }, parts);
};

/** Every recorded step with its detail. @param {any[]} steps */
export const stepList = (steps) => {
  if (!steps.length)
    return h(
      "div",
      { class: "faint" },
      "no allocation steps recorded (the block was not created through this gateway)",
    );
  const t0 = Date.parse(steps[0].at);
  return h(
    "div",
    { class: "steps" },
    steps.map((s) =>
      h(
        "div",
        { class: `step ${s.ok ? "ok" : "fail"}`, "data-step": s.step, "data-ok": String(s.ok) },
        h("div", { class: "name" }, h("span", null, s.ok ? "✓" : "✕"), h("span", null, s.step)),
        h("div", null, stepDetail(s.detail)),
        h(
          "div",
          { class: "at", title: s.at },
          Number.isFinite(t0) ? `+${Date.parse(s.at) - t0} ms` : f.clock(s.at),
        ),
      ),
    ),
  );
};
