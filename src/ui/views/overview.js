/** The overview: totals, every block with its live charts, the clusters, the last creations. */
import { BlockCard, clusterCard, pipeline } from "../components.js";
import { badge, byId, h, renderIfChanged, replace } from "../dom.js";
import * as f from "../format.js";
import { state, subscribe } from "../state.js";

/** @type {Map<string, BlockCard>} */
const cards = new Map();
let visible = false;

/** @param {any} b */
const passes = (b) => {
  const filter = /** @type {HTMLSelectElement} */ (byId("block-filter")).value;
  if (filter === "all") return true;
  if (filter === "active") return b.status !== "removed";
  return b.status === filter;
};

/** @param {string} label @param {unknown} value @param {string} [sub] @param {boolean} [bad] */
const tile = (label, value, sub, bad) =>
  h(
    "div",
    { class: `tile${bad ? " bad" : ""}`, "data-tile": label },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    sub ? h("div", { class: "sub" }, sub) : null,
  );

const renderTiles = () => {
  const clusters = state.clusters ?? [];
  const blocks = state.blocks ?? [];
  const nodes = clusters.flatMap((c) => c.nodes);
  const healthy = nodes.filter((n) => n.healthy).length;
  const reachable = clusters.filter((c) => c.reachable).length;
  const gpus = nodes.reduce((s, n) => s + n.gpus.length, 0);
  const running = blocks.filter((b) => b.status === "running");
  const failed = blocks.filter((b) => b.status === "failed").length;
  const instances = running.reduce((s, b) => s + b.instances.length, 0);
  let rps = 0;
  let inFlight = 0;
  for (const b of running) {
    const hist = state.history.get(b.id);
    rps += hist?.currentRps ?? 0;
    inFlight += hist?.last?.in_flight ?? 0;
  }
  replace(
    byId("tiles"),
    tile(
      "Clusters",
      [String(reachable), h("small", null, ` / ${clusters.length}`)],
      reachable < clusters.length ? `${clusters.length - reachable} unreachable` : "all reachable",
      reachable < clusters.length,
    ),
    tile(
      "Nodes healthy",
      [String(healthy), h("small", null, ` / ${nodes.length}`)],
      healthy < nodes.length ? `${nodes.length - healthy} unhealthy` : undefined,
      healthy < nodes.length,
    ),
    tile("GPUs", String(gpus)),
    tile(
      "Blocks running",
      [String(running.length), h("small", null, ` / ${blocks.filter((b) => b.status !== "removed").length}`)],
      failed ? `${failed} failed` : undefined,
      failed > 0,
    ),
    tile("Instances", String(instances)),
    tile("Requests/s", f.num(rps), "all running blocks"),
    tile("In flight", f.num(inFlight)),
  );
};

const renderBlocks = () => {
  const list = byId("block-list");
  const blocks = (state.blocks ?? []).filter(passes);
  const seen = new Set();
  for (const b of blocks) {
    seen.add(b.id);
    let card = cards.get(b.id);
    if (!card) {
      card = new BlockCard(b.id);
      cards.set(b.id, card);
    }
    card.update(b);
    list.appendChild(card.el); // keeps the API's order (newest first); moving a node keeps its charts
    card.updateMetrics(state.history.get(b.id));
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.destroy();
      cards.delete(id);
    }
  }
  const empty = list.querySelector(":scope > .empty");
  if (blocks.length === 0 && !empty) {
    list.appendChild(h("div", { class: "empty" }, state.blocks === null ? "loading blocks…" : "no blocks"));
  } else if (blocks.length > 0 && empty) empty.remove();
};

const renderMetrics = () => {
  for (const [id, card] of cards) card.updateMetrics(state.history.get(id));
  renderTiles();
};

const renderClusters = () => {
  renderIfChanged(byId("overview-clusters"), state.clusters, (clusters) =>
    clusters === null
      ? h("div", { class: "empty" }, "loading clusters…")
      : clusters.length === 0
        ? h("div", { class: "empty" }, "no clusters registered")
        : clusters.map((c) => clusterCard(c, true)),
  );
};

const renderCreations = () => {
  renderIfChanged(byId("overview-creations"), state.creations?.slice(0, 5) ?? null, (creations) =>
    creations === null
      ? h("div", { class: "empty" }, "loading…")
      : creations.length === 0
        ? h("div", { class: "empty" }, "no block was created through this gateway yet")
        : h(
            "div",
            { class: "panel", style: { padding: "0" } },
            h(
              "table",
              { class: "table" },
              h(
                "tbody",
                null,
                creations.map((c) =>
                  h(
                    "tr",
                    { "data-creation": c.id },
                    h("td", null, h("a", { href: `#/block/${encodeURIComponent(c.id)}` }, c.id)),
                    h("td", null, badge(c.status)),
                    h("td", { class: "muted" }, c.cluster_id ?? "–"),
                    h("td", null, pipeline(c.steps)),
                    h("td", { class: "num muted", title: c.created_at ?? "" }, f.ago(c.created_at)),
                  ),
                ),
              ),
            ),
          ),
  );
};

export const overview = {
  init() {
    const when = (/** @type {() => void} */ fn) => () => {
      if (visible) fn();
    };
    subscribe(
      "blocks",
      when(() => {
        renderBlocks();
        renderTiles();
      }),
    );
    subscribe("metrics", when(renderMetrics));
    subscribe(
      "clusters",
      when(() => {
        renderClusters();
        renderTiles();
      }),
    );
    subscribe("creations", when(renderCreations));
    byId("block-filter").addEventListener("change", () => renderBlocks());
  },
  show() {
    visible = true;
    renderTiles();
    renderBlocks();
    renderClusters();
    renderCreations();
  },
  hide() {
    visible = false;
  },
};
