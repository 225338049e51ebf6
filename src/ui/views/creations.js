/** The last creations with every allocation step, and a form that applies a block specification. */
import { request } from "../api.js";
import { pipeline, stepList } from "../components.js";
import { badge, byId, h, renderIfChanged } from "../dom.js";
import * as f from "../format.js";
import { errorText, loadBlocks, loadCreations, state, subscribe } from "../state.js";

let visible = false;
/** Creations whose steps are unfolded, kept across re-renders. */
/** @type {Set<string>} */
const open = new Set();
let first = true;

const render = () =>
  renderIfChanged(byId("creation-list"), state.creations, (creations) => {
    if (creations === null) return h("div", { class: "empty" }, "loading…");
    if (creations.length === 0)
      return h("div", { class: "empty" }, "no block was created through this gateway yet");
    // The newest is unfolded the first time.
    if (first && creations[0]) {
      open.add(creations[0].id);
      first = false;
    }
    return creations.map((c) => {
      const details = h(
        "details",
        { class: "creation", "data-creation": c.id, open: open.has(c.id) },
        h(
          "summary",
          null,
          h("span", { class: "id", title: c.id }, c.id),
          badge(c.status),
          h("span", { class: "muted" }, c.cluster_id ?? "no cluster"),
          pipeline(c.steps),
          h("span", { class: "muted", title: c.created_at ?? "" }, f.ago(c.created_at)),
        ),
        h(
          "div",
          { class: "body" },
          h(
            "div",
            { class: "muted", style: { marginBottom: "6px" } },
            `component ${c.component ?? "–"} · created ${f.datetime(c.created_at)} · `,
            h("a", { href: `#/block/${encodeURIComponent(c.id)}` }, "open block"),
          ),
          c.error
            ? h(
                "div",
                { class: "block-error", style: { marginBottom: "6px" } },
                `${c.error.code}: ${c.error.message}`,
              )
            : null,
          stepList(c.steps),
        ),
      );
      details.addEventListener("toggle", () => {
        if (/** @type {HTMLDetailsElement} */ (details).open) open.add(c.id);
        else open.delete(c.id);
      });
      return details;
    });
  });

/** @param {SubmitEvent} ev */
const apply = async (ev) => {
  ev.preventDefault();
  const result = byId("apply-result");
  const text = /** @type {HTMLTextAreaElement} */ (byId("apply-spec")).value;
  let spec;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    result.className = "result error";
    result.textContent = `not JSON: ${err instanceof Error ? err.message : String(err)}`;
    return;
  }
  result.className = "result";
  result.textContent = "placing the block…";
  try {
    const { body } = await request("POST", "/api/createBlock", { json: spec, timeoutMs: 120_000 });
    result.className = "result ok";
    result.textContent = `created ${body?.id ?? "the block"} on ${body?.cluster_id ?? "a cluster"}`;
  } catch (err) {
    result.className = "result error";
    result.textContent = errorText(err);
  }
  loadCreations();
  loadBlocks();
};

export const creations = {
  init() {
    subscribe("creations", () => visible && render());
    byId("apply-form").addEventListener("submit", (ev) => apply(/** @type {SubmitEvent} */ (ev)));
  },
  show() {
    visible = true;
    render();
  },
  hide() {
    visible = false;
  },
};
