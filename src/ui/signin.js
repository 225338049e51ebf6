/**
 * Signing in: the API token the dashboard presents. `aios up` prints the dashboard's URL with the admin
 * token in its fragment the first time (`#token=aios_...`), which api.js keeps and takes out of the
 * address bar. When the API answers 401 (no token, a revoked or expired one) the sign-in form asks for
 * one; the topbar names the token in use and has a sign-out link.
 */
import { ApiError, adoptTokenFromUrl, get, getToken, onUnauthenticated, setToken } from "./api.js";
import { byId } from "./dom.js";
import { errorText, refreshAll, state, updateConn } from "./state.js";

/** @param {string} [message] why the form is shown */
const showSignIn = (message) => {
  state.signedOut = true;
  state.principal = null;
  renderWho();
  updateConn();
  const box = byId("signin");
  const result = byId("signin-result");
  result.textContent = message ?? "";
  result.className = message ? "result error" : "result";
  if (box.hidden) {
    box.hidden = false;
    /** @type {HTMLInputElement} */ (byId("signin-token")).focus();
  }
};

const hideSignIn = () => {
  byId("signin").hidden = true;
  byId("signin-result").textContent = "";
  /** @type {HTMLInputElement} */ (byId("signin-token")).value = "";
};

/** The topbar: who is signed in, and the sign-out link while a token is kept. */
const renderWho = () => {
  const who = byId("whoami");
  const out = byId("signout");
  const p = state.principal;
  who.hidden = p === null;
  who.textContent = p ? (p.anonymous ? "anonymous" : p.name) : "";
  who.title = p ? `${p.id}: ${p.scopes.join(", ") || "no scopes"}` : "";
  out.hidden = getToken() === null;
};

/**
 * Asks who the token is: signed in (polling resumes) or the form, with the API's reason.
 * @returns {Promise<boolean>}
 */
const checkToken = async () => {
  try {
    const body = await get("/api/whoami");
    state.principal = body.principal;
    state.signedOut = false;
    hideSignIn();
    renderWho();
    updateConn();
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignIn(getToken() ? `the token was refused: ${err.message}` : "this gateway needs a token");
    } else {
      // Not the token's fault (the gateway is down): the lists' errors say so; try again later.
      console.error("whoami failed", errorText(err));
    }
    return false;
  }
};

export const initSignIn = () => {
  adoptTokenFromUrl();
  // A token URL opened in a tab already showing the dashboard changes the fragment only.
  window.addEventListener("hashchange", () => {
    if (adoptTokenFromUrl()) checkToken().then((ok) => ok && refreshAll());
  });
  onUnauthenticated((err) => {
    if (!state.signedOut)
      showSignIn(getToken() ? `the token was refused: ${err.message}` : "this gateway needs a token");
  });
  byId("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId("signin-token"));
    const token = input.value.trim();
    if (!token) return;
    setToken(token);
    if (await checkToken()) refreshAll();
  });
  byId("signout").addEventListener("click", async (e) => {
    e.preventDefault();
    setToken(null);
    state.principal = null;
    renderWho();
    // Without a token the API may still let this browser in (an anonymous install): ask.
    if (await checkToken()) refreshAll();
  });
  renderWho();
  return checkToken();
};
