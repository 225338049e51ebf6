/** Clusters and their nodes, in full. */
import { clusterCard } from "../components.js";
import { byId, h, renderIfChanged } from "../dom.js";
import { state, subscribe } from "../state.js";

let visible = false;

const render = () =>
  renderIfChanged(byId("cluster-list"), state.clusters, (clusters) =>
    clusters === null
      ? h("div", { class: "empty" }, "loading clusters…")
      : clusters.length === 0
        ? h("div", { class: "empty" }, "no clusters registered")
        : clusters.map((c) => clusterCard(c, false)),
  );

export const clusters = {
  init() {
    subscribe("clusters", () => visible && render());
  },
  show() {
    visible = true;
    render();
  },
  hide() {
    visible = false;
  },
};
