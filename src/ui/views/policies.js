/** The stored policies, and the form that uploads one (`POST /api/policies`, multipart). */
import { request } from "../api.js";
import { byId, h, renderIfChanged } from "../dom.js";
import * as f from "../format.js";
import { POLICY_KINDS } from "../kinds.js";
import { errorText, loadPolicies, state, subscribe } from "../state.js";

let visible = false;
/** The URI just uploaded, highlighted once in the table. */
/** @type {string | null} */
let fresh = null;

const filters = () => ({
  kind: /** @type {HTMLSelectElement} */ (byId("policy-kind-filter")).value,
  text: /** @type {HTMLInputElement} */ (byId("policy-search")).value.trim().toLowerCase(),
});

const render = () => {
  const { kind, text } = filters();
  const all = state.policies;
  const rows =
    all?.filter(
      (p) =>
        (!kind || p.kind === kind) &&
        (!text ||
          String(p.uri).toLowerCase().includes(text) ||
          String(p.description ?? "")
            .toLowerCase()
            .includes(text)),
    ) ?? null;
  byId("policy-count").textContent = all
    ? rows && rows.length !== all.length
      ? `${rows.length} of ${all.length}`
      : String(all.length)
    : "";
  const tbody = /** @type {HTMLElement} */ (byId("policy-table").querySelector("tbody"));
  renderIfChanged(tbody, { rows, fresh }, ({ rows }) => {
    if (rows === null) return h("tr", null, h("td", { colspan: 7, class: "muted" }, "loading…"));
    if (rows.length === 0) return h("tr", null, h("td", { colspan: 7, class: "muted" }, "no policies"));
    return [...rows]
      .sort((a, b) => String(a.uri).localeCompare(String(b.uri)))
      .map((p) =>
        h(
          "tr",
          { "data-uri": p.uri, class: p.uri === fresh ? "fresh" : "" },
          h(
            "td",
            null,
            h("div", { class: "mono" }, p.uri),
            p.description ? h("div", { class: "muted", style: { maxWidth: "520px" } }, p.description) : null,
          ),
          h("td", null, h("span", { class: "kind" }, p.kind)),
          h("td", { class: "num nowrap" }, f.bytes(p.size)),
          h("td", { class: "mono nowrap", title: p.sha256 ?? "" }, f.short(p.sha256, 12)),
          h(
            "td",
            { class: "mono nowrap" },
            (p.exports ?? [])
              .filter((/** @type {string} */ e) => !e.startsWith("_"))
              .map((/** @type {string} */ e) => h("div", null, e)),
          ),
          h(
            "td",
            { class: "muted nowrap" },
            p.limits
              ? [
                  h("div", null, `${f.num(p.limits.fuel)} fuel`),
                  h("div", null, f.bytes(p.limits.memory_bytes)),
                ]
              : "–",
          ),
          h("td", { class: "muted nowrap", title: p.created_at ?? "" }, f.ago(p.created_at ?? p.updated_at)),
        ),
      );
  });
};

/** @param {SubmitEvent} ev */
const upload = async (ev) => {
  ev.preventDefault();
  const form = /** @type {HTMLFormElement} */ (ev.target);
  const result = byId("policy-result");
  const button = /** @type {HTMLButtonElement} */ (byId("policy-submit"));
  const data = new FormData(form);
  if (!String(data.get("description") ?? "").trim()) data.delete("description");
  const uri = String(data.get("uri") ?? "").trim();
  data.set("uri", uri);
  button.disabled = true;
  result.className = "result";
  result.textContent = "uploading…";
  try {
    const { status, body } = await request("POST", "/api/policies", { form: data, timeoutMs: 60_000 });
    result.className = "result ok";
    result.textContent =
      status === 201
        ? `stored ${body?.uri ?? uri} (${body?.kind ?? data.get("kind")}, ${f.bytes(body?.size)})`
        : `${body?.uri ?? uri} was already stored with these bytes`;
    fresh = body?.uri ?? uri;
    /** @type {HTMLInputElement} */ (byId("policy-file")).value = "";
    await loadPolicies();
    byId("policy-table")
      .querySelector(`tr[data-uri="${CSS.escape(fresh ?? "")}"]`)
      ?.scrollIntoView({ block: "nearest" });
  } catch (err) {
    result.className = "result error";
    result.textContent = errorText(err);
  } finally {
    button.disabled = false;
  }
};

export const policies = {
  init() {
    const kindSelect = byId("policy-kind");
    const kindFilter = byId("policy-kind-filter");
    for (const kind of POLICY_KINDS) {
      kindSelect.appendChild(h("option", { value: kind }, kind));
      kindFilter.appendChild(h("option", { value: kind }, kind));
    }
    subscribe("policies", () => visible && render());
    byId("policy-form").addEventListener("submit", (ev) => upload(/** @type {SubmitEvent} */ (ev)));
    byId("policy-search").addEventListener("input", () => render());
    kindFilter.addEventListener("change", () => render());
  },
  show() {
    visible = true;
    render();
    loadPolicies();
  },
  hide() {
    visible = false;
  },
  isVisible: () => visible,
};
