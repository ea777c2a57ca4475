// ztv web example: sign in at an OIDC issuer (implicit flow), ask ztv for POST /v1/join with the
// ID token, and build the arguments of the Zoom Meeting SDK's ZoomMtg.join. A plain ES module,
// no build step; the functions exported here are pure, the rest drives the page.

/** Where things are unless the query string says otherwise (see index.html). */
export const DEFAULTS = {
  ztv: "http://127.0.0.1:8080", // `ztv dev` listens here
  clientId: "ztv-web-example", // the demo issuer's client ID: ztv's end_users.audience
  meetingNumber: "123456789",
  role: "0",
  with: "", // "", "zak" or "obf"
};

/** The page's settings: DEFAULTS overridden by the query string `search`. */
export function readConfig(search, origin) {
  const query = new URLSearchParams(search);
  const pick = (name, fallback) => query.get(name) ?? fallback;
  return {
    ztv: pick("ztv", DEFAULTS.ztv).replace(/\/+$/, ""),
    issuer: pick("issuer", `${origin}/issuer`).replace(/\/+$/, ""),
    clientId: pick("client_id", DEFAULTS.clientId),
    meetingNumber: pick("mn", DEFAULTS.meetingNumber),
    role: pick("role", DEFAULTS.role),
    with: pick("with", DEFAULTS.with),
    auto: pick("auto", ""),
    // Set by ztv's OAuth callback when it sends the browser back here (user_oauth.done_url).
    oauth: query.has("status")
      ? { status: query.get("status"), user: query.get("user"), error: query.get("error"), message: query.get("message") }
      : null,
  };
}

/** The body of POST /v1/join for the form's choices. */
export function joinRequestBody({ meetingNumber, role, with: token }) {
  const body = { meetingNumber: String(meetingNumber).replace(/\s+/g, ""), role: Number(role) };
  if (token === "zak") body.withZak = true;
  if (token === "obf") body.withObf = true;
  return body;
}

/**
 * ZoomMtg.join's arguments from ztv's join bundle, as Zoom documents them today: signature,
 * meetingNumber, userName, userEmail, passWord, tk, zak, obfToken. No sdkKey, although ztv
 * answers one: since Meeting SDK for web 4.0 the key travels in the signature (its appKey and
 * sdkKey claims) and Zoom's SDK key migration says to leave it out of join. The success and
 * error callbacks are added when the SDK is called.
 */
export function buildJoinArgs(bundle, { meetingNumber, userName, userEmail, passWord = "", tk = "" }) {
  const args = {
    signature: bundle.signature,
    meetingNumber: String(meetingNumber),
    userName,
    passWord,
  };
  if (userEmail) args.userEmail = userEmail;
  if (tk) args.tk = tk;
  if (bundle.zak) args.zak = bundle.zak;
  if (bundle.obfToken) args.obfToken = bundle.obfToken;
  return args;
}

/** The claims of a JWT, unverified: ztv verifies the token; the page only reads who it is. */
export function jwtClaims(token) {
  const part = token.split(".")[1] ?? "";
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

// ---- The page ---------------------------------------------------------------------------------

const KEYS = { session: "ztv-example.session", pending: "ztv-example.pending", auto: "ztv-example.auto" };
const $ = (id) => document.getElementById(id);

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** This page's URL without its fragment: where the issuer sends the browser back. */
function pageUrl() {
  return location.href.split("#")[0];
}

/** Shows the outcome of a step, for people in #status and for scripts as JSON in #outcome. */
function report(outcome) {
  $("outcome").textContent = JSON.stringify(outcome, null, 2);
  $("status").textContent = outcome.ok
    ? `${outcome.action}: ok`
    : `${outcome.action}: ${outcome.error}`;
  $("status").className = outcome.ok ? "" : "error";
}

/** The signed-in user, while their ID token has more than 30 s to live. */
function currentSession() {
  const session = JSON.parse(sessionStorage.getItem(KEYS.session) ?? "null");
  if (!session || session.claims.exp * 1000 < Date.now() + 30_000) return null;
  return session;
}

async function signIn(config) {
  const answer = await fetch(`${config.issuer}/.well-known/openid-configuration`);
  if (!answer.ok) throw new Error(`issuer discovery: HTTP ${answer.status}`);
  const { authorization_endpoint: endpoint } = await answer.json();
  const pending = { state: randomId(), nonce: randomId() };
  sessionStorage.setItem(KEYS.pending, JSON.stringify(pending));
  const url = new URL(endpoint);
  url.search = new URLSearchParams({
    response_type: "id_token",
    client_id: config.clientId,
    redirect_uri: pageUrl(),
    scope: "openid email profile",
    ...pending,
  }).toString();
  location.assign(url.href);
}

/** Back from the issuer: takes the ID token out of the fragment (and out of the history). */
function takeSignInAnswer() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has("id_token") && !fragment.has("error")) return;
  history.replaceState(null, "", pageUrl());
  const pending = JSON.parse(sessionStorage.getItem(KEYS.pending) ?? "null");
  sessionStorage.removeItem(KEYS.pending);
  if (!pending || fragment.get("state") !== pending.state) {
    throw new Error("sign-in: the state does not match; sign in again");
  }
  if (fragment.has("error")) {
    throw new Error(`sign-in: ${fragment.get("error")} ${fragment.get("error_description") ?? ""}`.trim());
  }
  const idToken = fragment.get("id_token");
  const claims = jwtClaims(idToken);
  if (claims.nonce !== pending.nonce) throw new Error("sign-in: the nonce does not match");
  sessionStorage.setItem(KEYS.session, JSON.stringify({ idToken, claims }));
}

/** A ztv error, with what ztv said and the request ID to find it in ztv's log and audit. */
class ZtvError extends Error {
  constructor(status, body, requestId) {
    super(`${status} ${body?.error?.code ?? ""}: ${body?.error?.message ?? "no error body"}`);
    this.status = status;
    this.requestId = requestId;
  }
}

/** POST `path` to ztv as the signed-in user; a request ID of ours ties it to ztv's audit. */
async function postToZtv(config, path, body) {
  const session = currentSession();
  if (!session) throw new Error("sign in first");
  const requestId = `web-${randomId()}`;
  const response = await fetch(config.ztv + path, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${session.idToken}`,
      "Content-Type": "application/json",
      "X-Request-Id": requestId,
    },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => null);
  const servedId = response.headers.get("x-request-id") ?? requestId;
  if (!response.ok) throw new ZtvError(response.status, answer, servedId);
  return { answer, status: response.status, requestId: servedId };
}

let joinArgs = null;

async function join(config) {
  const form = Object.fromEntries(new FormData($("join-form")));
  const { claims } = currentSession() ?? { claims: {} };
  const { answer, status, requestId } = await postToZtv(config, "/v1/join", joinRequestBody(form));
  joinArgs = buildJoinArgs(answer, {
    meetingNumber: joinRequestBody(form).meetingNumber,
    userName: form.userName || claims.name || claims.email,
    userEmail: claims.email,
    passWord: form.passWord,
  });
  $("join-args").textContent = JSON.stringify(joinArgs, null, 2);
  $("start-zoom").disabled = !sdk;
  report({ action: "join", ok: true, status, requestId, answered: Object.keys(answer).sort(), expiresAt: answer.expiresAt });
}

async function connect(config) {
  const { answer, requestId } = await postToZtv(config, "/v1/oauth/authorize", {});
  report({ action: "connect", ok: true, step: "to Zoom's consent page", requestId });
  location.assign(answer.authorizeUrl);
}

/** The vendored Zoom Meeting SDK (`vendor-sdk.sh`), or null. */
let sdk = null;

async function findSdk() {
  try {
    const answer = await fetch("vendor/zoom/sdk.json", { cache: "no-store" });
    return answer.ok ? await answer.json() : null;
  } catch {
    return null;
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(script);
  });
}

/** Zoom's client view: its dependencies, then init, then join with `args`. */
async function startZoom(args) {
  for (const lib of ["react", "react-dom", "redux", "redux-thunk", "lodash"]) {
    await loadScript(`vendor/zoom/lib/vendor/${lib}.min.js`);
  }
  await loadScript(`vendor/zoom/zoom-meeting-${sdk.version}.min.js`);
  const { ZoomMtg } = window;
  ZoomMtg.setZoomJSLib(new URL("vendor/zoom/lib", location.href).href, "/av");
  ZoomMtg.preLoadWasm();
  ZoomMtg.prepareWebSDK();
  ZoomMtg.init({
    leaveUrl: pageUrl(),
    patchJsMedia: true,
    success: () =>
      ZoomMtg.join({
        ...args,
        success: () => report({ action: "zoom", ok: true }),
        error: (error) => report({ action: "zoom", ok: false, error: JSON.stringify(error) }),
      }),
    error: (error) => report({ action: "zoom", ok: false, error: JSON.stringify(error) }),
  });
}

/** Runs a step, reporting what went wrong (a refused CORS request is a TypeError here). */
async function run(action, step) {
  try {
    await step();
  } catch (error) {
    report({ action, ok: false, error: `${error.name}: ${error.message}`, status: error.status ?? null, requestId: error.requestId ?? null });
  }
}

function showUser() {
  const session = currentSession();
  $("user").textContent = session ? `${session.claims.name ?? ""} <${session.claims.email}>`.trim() : "nobody";
}

async function main() {
  const config = readConfig(location.search, location.origin);
  $("ztv-url").textContent = config.ztv;
  $("issuer-url").textContent = config.issuer;
  const form = $("join-form");
  form.meetingNumber.value = config.meetingNumber;
  form.role.value = config.role;
  form.with.value = config.with;
  $("status").textContent = "Ready.";

  await run("sign-in", async () => takeSignInAnswer());
  showUser();
  if (config.oauth) {
    const { status, user, error, message } = config.oauth;
    report(status === "ok"
      ? { action: "connect", ok: true, user }
      : { action: "connect", ok: false, error: `${error}: ${message}` });
  }

  $("sign-in").onclick = () => run("sign-in", () => signIn(config));
  $("sign-out").onclick = () => { sessionStorage.removeItem(KEYS.session); showUser(); };
  form.onsubmit = (event) => { event.preventDefault(); run("join", () => join(config)); };
  $("connect").onclick = () => run("connect", () => connect(config));
  $("start-zoom").onclick = () => run("zoom", () => startZoom(joinArgs));

  sdk = await findSdk();
  $("sdk").textContent = sdk ? `${sdk.version} (vendored)` : "not vendored: run examples/web/vendor-sdk.sh";

  // ?auto=join|connect: sign in once if need be, then run the step.
  if (config.auto === "join" || config.auto === "connect") {
    if (!currentSession()) {
      if (sessionStorage.getItem(KEYS.auto)) {
        if (!$("outcome").textContent) report({ action: "sign-in", ok: false, error: "sign-in did not complete" });
        return;
      }
      sessionStorage.setItem(KEYS.auto, "1");
      return run("sign-in", () => signIn(config));
    }
    sessionStorage.removeItem(KEYS.auto);
    await run(config.auto, () => (config.auto === "join" ? join(config) : connect(config)));
  }
}

if (typeof document !== "undefined") main();
