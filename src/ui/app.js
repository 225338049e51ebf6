/**
 * The aios dashboard: hash routes over the gateway's console API (`/api/...`), polled.
 *
 *   #/            overview: totals, blocks with live charts, clusters, recent creations
 *   #/block/ID    one block: charts, instances, allocation steps, events, logs, scale and delete
 *   #/clusters    clusters and nodes
 *   #/policies    policies and the upload form
 *   #/creations   the last creations with their steps; apply a block specification
 *
 * Lists are read every 3-5 s, the metrics of running blocks every second; five minutes of points are
 * kept in the page. Every call carries the API token (signin.js): from `#token=` in the URL aios up
 * prints, or the sign-in form shown when the API answers 401.
 */
import { byId } from "./dom.js";
import { initSignIn } from "./signin.js";
import {
  every,
  loadBlocks,
  loadClusters,
  loadCreations,
  loadMetrics,
  loadPolicies,
  refreshAll,
  setPaused,
  state,
  updateConn,
} from "./state.js";
import { block } from "./views/block.js";
import { clusters } from "./views/clusters.js";
import { creations } from "./views/creations.js";
import { overview } from "./views/overview.js";
import { policies } from "./views/policies.js";

/** @type {Record<string, { init(): void, show(arg?: any): void, hide(): void }>} */
const views = { overview, block, clusters, policies, creations };
let current = "";

const route = () => {
  const hash = location.hash.replace(/^#\/?/, "");
  const [head = "", ...rest] = hash.split("/");
  let name = "overview";
  /** @type {string | undefined} */
  let arg;
  if (head === "block" && rest.length) {
    name = "block";
    arg = decodeURIComponent(rest.join("/"));
  } else if (head in views && head !== "block") {
    name = head;
  }
  if (current && (current !== name || name === "block")) views[current]?.hide();
  for (const section of document.querySelectorAll("main > .view")) {
    /** @type {HTMLElement} */ (section).hidden = /** @type {HTMLElement} */ (section).dataset.view !== name;
  }
  for (const a of document.querySelectorAll(".tabs a")) {
    const r = /** @type {HTMLElement} */ (a).dataset.route;
    a.classList.toggle("active", r === name || (name === "block" && r === "overview"));
  }
  current = name;
  document.title = arg ? `${arg} · aios` : name === "overview" ? "aios" : `${name} · aios`;
  views[name]?.show(arg);
  window.scrollTo(0, 0);
  refreshAll();
};

const start = () => {
  // First: a token in the URL (#token=...) is kept and taken out of the address bar before routing.
  initSignIn();
  for (const view of Object.values(views)) view.init();
  const pause = byId("pause");
  pause.addEventListener("click", () => {
    setPaused(!state.paused);
    pause.textContent = state.paused ? "Resume" : "Pause";
  });
  window.addEventListener("hashchange", route);
  route();
  updateConn();
  every(3000, loadClusters, () => current === "overview" || current === "clusters");
  every(3000, loadBlocks);
  every(5000, loadCreations, () => current === "overview" || current === "creations");
  every(5000, loadPolicies, () => current === "policies");
  every(1000, loadMetrics);
  // Back in a tab after a while: fresh data at once rather than at the next tick.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshAll();
  });
};

start();
