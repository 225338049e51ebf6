/**
 * A tiny element builder: `h("div", { class: "x", onclick }, child, [more])`. Strings become text nodes
 * (never HTML), null/false/undefined children are skipped, arrays are flattened.
 */

/**
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export const h = (tag, attrs, ...children) => {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
      } else if (key === "class") {
        el.className = String(value);
      } else if (key === "style" && typeof value === "object") {
        Object.assign(el.style, value);
      } else if (value === true) {
        el.setAttribute(key, "");
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, children);
  return el;
};

/**
 * @param {Node} parent
 * @param {unknown} children
 */
export const append = (parent, children) => {
  if (children === null || children === undefined || children === false) return;
  if (Array.isArray(children)) {
    for (const child of children) append(parent, child);
  } else if (children instanceof Node) {
    parent.appendChild(children);
  } else {
    parent.appendChild(document.createTextNode(String(children)));
  }
};

/**
 * Replaces the children of `el`.
 * @param {Element} el
 * @param {...unknown} children
 */
export const replace = (el, ...children) => {
  const frag = document.createDocumentFragment();
  append(frag, children);
  el.replaceChildren(frag);
};

/** @type {WeakMap<Element, string>} */
const lastRendered = new WeakMap();

/**
 * Re-renders `el` from `data` only when `data` changed since its last render (by JSON), so open
 * `<details>`, selections and scroll positions survive a poll that brought nothing new.
 * @template T
 * @param {Element} el
 * @param {T} data
 * @param {(data: T) => unknown} render
 */
export const renderIfChanged = (el, data, render) => {
  const key = JSON.stringify(data) ?? "";
  if (lastRendered.get(el) === key) return;
  lastRendered.set(el, key);
  replace(el, render(data));
};

/** @param {string} id */
export const byId = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no element #${id}`);
  return el;
};

/**
 * A status badge: `<span class="badge s-running">running</span>`.
 * @param {string | null | undefined} status
 * @param {string} [text]
 */
export const badge = (status, text) =>
  h("span", { class: `badge s-${String(status ?? "unknown").toLowerCase()}` }, text ?? status ?? "unknown");
