// smsgate settings page: talks only to this gateway's /v1/admin API with the admin token kept
// in sessionStorage. No framework, no build step; every request's failure is shown, never hidden.
"use strict";

const TOKEN_KEY = "smsgate.admin.token";
const MFA_KEY = "smsgate.admin.mfa";
const STATUS_EVERY_MS = 5000;
const LOGS_EVERY_MS = 10000;
const CAMPAIGNS_EVERY_MS = 3000;
const STALE_AFTER_MS = 15000;
const PAGE = 25;

const $ = (id) => document.getElementById(id);

/** Builds an element: el("button", {type: "button", onclick: f}, "text", child). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A failed API call: the gateway's `{error, message, field}` or what the network said. */
class ApiFailure extends Error {
  constructor(status, body) {
    const message = body && body.message ? body.message : status ? `HTTP ${status}` : "the gateway did not answer";
    super(message);
    this.status = status;
    this.code = body && body.error ? body.error : status ? `http_${status}` : "network";
    this.field = body && body.field ? body.field : null;
  }
  /** The gateway has no such route (an older build): not the same as a missing provider. */
  missingRoute() {
    return (this.status === 404 && this.code === "not_found" && this.message === "no such route") || this.code === "method_not_allowed";
  }
  /** Text for a person at 2 a.m.: what failed and what to do about it. */
  explain() {
    if (this.code === "registry_read_only") return "Registry is read-only: no database. Change providers.toml and restart instead.";
    if (this.missingRoute()) return "This gateway does not offer this yet (no such route).";
    if (this.code === "network") return "The gateway did not answer. Check the connection and try again.";
    return this.message;
  }
}

const state = {
  me: null,
  version: null,
  source: null,
  providers: [], // as the server last said
  order: [], // names in the order on screen
  enabled: {}, // name -> bool on screen
  status: {}, // name -> status row
  statusAt: 0,
  statusError: null,
  editing: null,
  testSession: null,
  logCursors: [null],
  auditCursors: [null],
  campaigns: [],
  campaignCursors: [null],
  campaignNext: null,
  campaignMsgs: {}, // campaign id -> {kind, text} shown next to it, kept across refreshes
  confirmCancel: null, // the campaign whose Cancel waits for a second click
  optCursors: [null],
  optNext: null,
  timers: [],
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function mfaToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(MFA_KEY) || "null");
    // An unreadable expiry is left to the gateway to judge (it answers mfa_required).
    if (saved && saved.mfa_token && !(Date.parse(saved.expires_at) <= Date.now())) return saved.mfa_token;
  } catch (_) {
    /* a damaged entry is no token */
  }
  sessionStorage.removeItem(MFA_KEY);
  return null;
}

async function api(method, path, body, headers) {
  const init = { method, headers: Object.assign({ Authorization: `Bearer ${token()}` }, headers || {}), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (_) {
    throw new ApiFailure(0, null);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = { message: text.slice(0, 200) };
  }
  if (res.status === 401) {
    signOut("The gateway refused this token. Sign in again.");
    throw new ApiFailure(401, data);
  }
  if (!res.ok) throw new ApiFailure(res.status, data);
  return data;
}

// ---------------------------------------------------------------- formatting

function fmtTime(at) {
  if (!at) return "—";
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return String(at);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m} min ago` : `${Math.round(m / 60)} h ago`;
}

const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(x >= 0.995 || x === 0 ? 0 : 1)}%`);
const ms = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)} ms`);
const raw = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));

/** Ends `text` with a full stop unless it already ends a sentence. */
const sentence = (text) => (/[.!?)]$/.test(text) ? text : `${text}.`);

function banner(id, kind, text) {
  let node = document.getElementById(`banner-${id}`);
  if (!text) {
    if (node) node.remove();
    return;
  }
  if (!node) {
    node = el("p", { id: `banner-${id}`, class: `banner ${kind}`, role: kind === "error" ? "alert" : "status" });
    $("banners").append(node);
  }
  node.className = `banner ${kind}`;
  node.textContent = text;
}

function setMsg(node, kind, text) {
  node.className = `msg ${kind || ""}`;
  node.textContent = text || "";
}

function showFieldError(form, field, message) {
  const target = form.querySelector(`[data-for="${CSS.escape(field || "_form")}"]`) || form.querySelector('[data-for="_form"]');
  if (target) {
    // The gateway's messages often start with the field's name; next to the field it is noise.
    const bare = field && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
    target.textContent = field && target.dataset.for === "_form" ? `${field}: ${bare}` : bare;
    const input = form.querySelector(`[aria-describedby~="${target.id}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }
}

function clearErrors(form) {
  form.querySelectorAll(".err").forEach((n) => (n.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
}

// ---------------------------------------------------------------- sign in

async function signIn(event) {
  event.preventDefault();
  const input = $("token");
  clearErrors($("signin-form"));
  const value = input.value.trim();
  if (!value) {
    showFieldError($("signin-form"), "token", "Enter the admin token.");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, value);
  $("signin-btn").disabled = true;
  try {
    await start();
    input.value = "";
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showFieldError($("signin-form"), "token", e.status === 403 ? "This token has no admin role." : e.explain ? e.explain() : String(e));
  } finally {
    $("signin-btn").disabled = false;
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(MFA_KEY);
  state.timers.forEach(clearInterval);
  state.timers = [];
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("token-err").textContent = message || "";
  $("token").focus();
}

/** Loads who we are, then everything else; throws when the token is no good. */
async function start() {
  let me;
  try {
    const mfa = mfaToken();
    me = await api("GET", "/v1/admin/me", undefined, mfa ? { "X-Admin-MFA": mfa } : undefined);
  } catch (e) {
    if (!e.missingRoute()) throw e;
    // A gateway without /me: the providers list still proves the token is an admin's.
    await api("GET", "/v1/admin/providers");
    me = { name: "admin", roles: ["admin"], mfa_required: false, mfa_ok: true, database: true, can_set_secrets: false };
  }
  state.me = me;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = `${me.name} (${(me.roles || []).join(", ")})`;
  banner("readonly", "warn", me.database === false ? "Registry is read-only: no database. Providers come from providers.toml; saving is disabled." : "");
  await loadProviders();
  refreshStatus();
  loadLogs();
  loadAudit();
  if (location.hash === "#campaigns") selectTab("campaigns");
  state.timers.push(setInterval(refreshStatus, STATUS_EVERY_MS));
  state.timers.push(setInterval(pollCampaigns, CAMPAIGNS_EVERY_MS));
  state.timers.push(setInterval(tick, 1000));
  state.timers.push(
    setInterval(() => {
      if (state.logCursors.length === 1) loadLogs(true);
    }, LOGS_EVERY_MS),
  );
}

// ---------------------------------------------------------------- providers

async function loadProviders() {
  $("providers-state").textContent = "Loading providers…";
  try {
    const data = await api("GET", "/v1/admin/providers");
    adoptProviders(data);
    $("providers-state").textContent = state.providers.length ? "" : "No providers configured.";
  } catch (e) {
    $("providers-state").textContent = `Could not load providers: ${e.explain()}`;
    $("providers-state").className = "state error";
    throw e;
  }
}

function adoptProviders(data) {
  const list = (data.providers || []).slice().sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
  state.providers = list;
  state.version = data.version ?? null;
  state.source = data.source ?? null;
  state.order = list.map((p) => p.name);
  state.enabled = Object.fromEntries(list.map((p) => [p.name, p.enabled !== false]));
  renderProviders();
  fillProviderSelects();
}

function dirty() {
  return (
    state.order.join("\n") !== state.providers.map((p) => p.name).join("\n") ||
    state.providers.some((p) => state.enabled[p.name] !== (p.enabled !== false))
  );
}

function renderProviders() {
  const list = $("provider-list");
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  list.replaceChildren();
  const readOnly = state.me && state.me.database === false;
  state.order.forEach((name, i) => {
    const p = state.providers.find((x) => x.name === name) || { name };
    const on = state.enabled[name];
    const item = el(
      "li",
      { class: `provider ${on ? "" : "off"}`, draggable: readOnly ? false : "true", "data-name": name },
      el("span", { class: "pos", "aria-hidden": "true" }, String(i + 1)),
      el(
        "div",
        { class: "ident" },
        el("strong", { class: "pname" }, name),
        el("span", { class: "kind" }, p.kind || ""),
        el("span", { class: "chip breaker", title: "circuit breaker" }),
      ),
      el(
        "dl",
        { class: "live" },
        el("div", {}, el("dt", {}, "success 1m"), el("dd", { "data-live": "rate" })),
        el("div", {}, el("dt", {}, "p50 / p95"), el("dd", { "data-live": "latency" })),
        el("div", {}, el("dt", {}, "calls 1m / 1h"), el("dd", { "data-live": "calls" })),
      ),
      el(
        "div",
        { class: "controls" },
        el(
          "label",
          { class: "switch" },
          el("input", {
            type: "checkbox",
            role: "switch",
            checked: on,
            disabled: readOnly,
            "data-key": `en-${name}`,
            "aria-label": `${name} enabled`,
            onchange: (ev) => {
              state.enabled[name] = ev.target.checked;
              renderProviders();
            },
          }),
          el("span", {}, on ? "on" : "off"),
        ),
        el("button", { type: "button", class: "icon", "data-key": `up-${name}`, disabled: readOnly || i === 0, "aria-label": `Move ${name} up`, onclick: () => move(name, -1) }, "↑"),
        el("button", { type: "button", class: "icon", "data-key": `down-${name}`, disabled: readOnly || i === state.order.length - 1, "aria-label": `Move ${name} down`, onclick: () => move(name, 1) }, "↓"),
        el("button", { type: "button", class: "quiet", "data-key": `edit-${name}`, onclick: () => openEditor(name) }, "Edit"),
      ),
    );
    item.addEventListener("dragstart", (ev) => {
      ev.dataTransfer.setData("text/plain", name);
      ev.dataTransfer.effectAllowed = "move";
    });
    item.addEventListener("dragover", (ev) => ev.preventDefault());
    item.addEventListener("drop", (ev) => {
      ev.preventDefault();
      const from = ev.dataTransfer.getData("text/plain");
      if (!from || from === name) return;
      state.order.splice(state.order.indexOf(from), 1);
      state.order.splice(state.order.indexOf(name) + (state.order.indexOf(name) >= i ? 1 : 0), 0, from);
      renderProviders();
    });
    list.append(item);
  });
  renderLive();
  if (focused) {
    const again = list.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again && !again.disabled) again.focus();
    else if (again) list.querySelector(`[data-key="${CSS.escape(focused.replace(/^(up|down)-/, (m) => (m === "up-" ? "down-" : "up-")))}"]`)?.focus();
  }
  const changed = dirty();
  $("order-save").disabled = readOnly || !changed;
  $("order-discard").disabled = !changed;
  if (changed) setMsg($("order-msg"), "warn", "Unsaved changes: traffic still follows the saved order.");
  else if ($("order-msg").classList.contains("warn")) setMsg($("order-msg"), "", "");
  const enabledCount = state.order.filter((n) => state.enabled[n]).length;
  if (changed && enabledCount === 0) setMsg($("order-msg"), "error", "At least one provider must stay enabled.");
  $("providers-meta").textContent = [state.version !== null ? `version ${state.version}` : null, state.source ? `from ${state.source}` : null].filter(Boolean).join(" · ");
}

/** Writes the live figures into the rows in place, so a refresh never disturbs a drag or focus. */
function renderLive() {
  for (const item of $("provider-list").children) {
    const name = item.dataset.name;
    const p = state.providers.find((x) => x.name === name) || {};
    const st = state.status[name] || {};
    const breaker = st.breaker || p.breaker || "unknown";
    const chip = item.querySelector(".breaker");
    chip.className = `chip breaker breaker-${breaker}`;
    chip.textContent = breakerText(breaker, st, p);
    item.querySelector('[data-live="rate"]').textContent = pct(st.success_rate_1m);
    item.querySelector('[data-live="latency"]').textContent = `${ms(st.p50_ms_1m)} / ${ms(st.p95_ms_1m)}`;
    item.querySelector('[data-live="calls"]').textContent = st.calls_1m === undefined ? "—" : `${st.calls_1m} / ${st.calls_1h}`;
  }
}

function breakerText(breaker, st, p) {
  if (breaker === "open") {
    const until = st.cooling_until ? Date.parse(st.cooling_until) - Date.now() : p.cooling_for_ms;
    return until > 0 ? `open · ${Math.ceil(until / 1000)} s` : "open";
  }
  return breaker.replace("_", "-");
}

function move(name, by) {
  const i = state.order.indexOf(name);
  const j = i + by;
  if (j < 0 || j >= state.order.length) return;
  [state.order[i], state.order[j]] = [state.order[j], state.order[i]];
  renderProviders();
}

async function saveOrder() {
  const btn = $("order-save");
  btn.disabled = true;
  setMsg($("order-msg"), "", "Saving…");
  try {
    const data = await api("PUT", "/v1/admin/providers/order", { order: state.order, enabled: state.enabled });
    adoptProviders(data);
    setMsg($("order-msg"), "ok", `Saved at ${fmtTime(new Date())} (version ${data.version}). Every instance follows within a second.`);
    refreshStatus();
    loadAudit();
  } catch (e) {
    setMsg($("order-msg"), "error", `Save failed: ${sentence(e.explain())} Nothing was changed.`);
    btn.disabled = false;
  }
}

function discardOrder() {
  state.order = state.providers.map((p) => p.name);
  state.enabled = Object.fromEntries(state.providers.map((p) => [p.name, p.enabled !== false]));
  setMsg($("order-msg"), "", "");
  renderProviders();
}

function fillProviderSelects() {
  for (const [id, blank] of [
    ["test-provider", null],
    ["f-provider", "any"],
  ]) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(...(blank ? [el("option", { value: "" }, blank)] : []), ...state.order.map((n) => el("option", { value: n }, n)));
    if (keep && state.order.includes(keep)) select.value = keep;
  }
}

// ---------------------------------------------------------------- live status

async function refreshStatus() {
  try {
    let data;
    try {
      data = await api("GET", "/v1/admin/status");
    } catch (e) {
      if (!e.missingRoute()) throw e;
      data = await api("GET", "/v1/admin/providers");
    }
    state.status = Object.fromEntries((data.providers || []).map((p) => [p.name, p]));
    state.statusAt = Date.now();
    state.statusError = null;
    // Another admin (or another tab) saved: follow unless this page holds unsaved changes.
    if (data.version !== undefined && state.version !== null && data.version !== state.version) {
      if (dirty()) banner("version", "warn", `Providers were changed elsewhere (now version ${data.version}). Discard your changes to see them.`);
      else {
        banner("version", "", "");
        await loadProviders();
        return;
      }
    }
    renderLive();
  } catch (e) {
    state.statusError = e.explain();
  }
  tick();
}

/** Says how old the live figures are, and loudly when they stopped coming. */
function tick() {
  const meta = $("providers-meta");
  const age = state.statusAt ? Date.now() - state.statusAt : null;
  const base = [state.version !== null ? `version ${state.version}` : null, state.source ? `from ${state.source}` : null];
  let live;
  if (age === null) live = state.statusError ? `live status unavailable: ${state.statusError}` : "live status loading…";
  else live = `live status ${ago(age)}`;
  meta.textContent = [...base, live].filter(Boolean).join(" · ");
  const stale = (age === null && state.statusError) || (age !== null && age > STALE_AFTER_MS);
  $("providers").classList.toggle("stale", Boolean(stale));
  banner("stale", "error", stale ? `Live status is stale (${age === null ? "never loaded" : `last update ${ago(age)}`})${state.statusError ? `: ${state.statusError}` : ""}.` : "");
}

// ---------------------------------------------------------------- provider editor

function openEditor(name) {
  const p = state.providers.find((x) => x.name === name);
  if (!p) return;
  state.editing = name;
  $("editor-h").textContent = `Provider ${name}`;
  const fixed = new Set(p.fixed || []);
  const readOnly = state.me && state.me.database === false;
  const config = p.config || {};
  const fields = [el("p", { class: "hint" }, `Kind ${p.kind || "?"}. Fields marked read-only are fixed by the provider.`)];
  for (const [key, value] of Object.entries(config)) {
    const id = `cfg-${key}`;
    const isFixed = fixed.has(key);
    const shape = Array.isArray(value) ? "list" : value === null ? "string" : typeof value;
    const text = shape === "list" ? value.join(", ") : shape === "object" ? JSON.stringify(value) : value === null || value === undefined ? "" : String(value);
    let input;
    if (shape === "boolean") {
      input = el("select", { id, name: key, disabled: isFixed || readOnly, "aria-describedby": `${id}-err` }, ["true", "false"].map((o) => el("option", { value: o, selected: o === text }, o)));
    } else if (key === "otp_mode" || key === "mode") {
      const options = Array.from(new Set([text, "local", "provider"].filter(Boolean)));
      input = el("select", { id, name: key, disabled: isFixed || readOnly, "aria-describedby": `${id}-err` }, options.map((o) => el("option", { value: o, selected: o === text }, o)));
    } else {
      input = el("input", { id, name: key, type: "text", value: text, readOnly: isFixed || readOnly, spellcheck: "false", "aria-describedby": `${id}-err` });
    }
    input.dataset.orig = text;
    input.dataset.kind = shape;
    fields.push(
      el(
        "div",
        { class: `field ${isFixed ? "fixed" : ""}` },
        el("label", { for: id }, key, isFixed ? el("span", { class: "tag" }, "read-only") : null),
        input,
        el("p", { class: "err", id: `${id}-err`, "data-for": `config.${key}`, role: "alert" }),
      ),
    );
  }
  for (const [key, masked] of Object.entries(p.secrets || {})) {
    const id = `sec-${key}`;
    const input = el("input", { id, name: key, type: "password", autocomplete: "off", hidden: true, placeholder: "new value", "aria-describedby": `${id}-err` });
    const replace = el(
      "button",
      {
        type: "button",
        class: "quiet",
        disabled: readOnly || (state.me && state.me.can_set_secrets === false),
        onclick: () => {
          input.hidden = false;
          replace.hidden = true;
          input.focus();
        },
      },
      "Replace",
    );
    fields.push(
      el(
        "div",
        { class: "field secret" },
        el("label", { for: id }, key),
        el("div", { class: "row" }, el("code", { class: "masked" }, masked || "not set"), replace, input),
        state.me && state.me.can_set_secrets === false ? el("p", { class: "hint" }, "Secrets cannot be set here: the gateway has no master key.") : null,
        el("p", { class: "err", id: `${id}-err`, "data-for": `secrets.${key}`, role: "alert" }),
      ),
    );
  }
  $("editor-fields").replaceChildren(...fields);
  $("editor-save").disabled = readOnly;
  setMsg($("editor-msg"), "", "");
  clearErrors($("editor-form"));
  $("editor").hidden = false;
  $("editor-h").scrollIntoView({ block: "start" });
  $("editor-fields").querySelector("input:not([readonly]):not([hidden]), select:not([disabled])")?.focus();
}

async function saveEditor(event) {
  event.preventDefault();
  const form = $("editor-form");
  clearErrors(form);
  const config = {};
  const secrets = {};
  let unreadable = null;
  form.querySelectorAll("[id^=cfg-]").forEach((input) => {
    if (input.readOnly || input.disabled || input.value === input.dataset.orig) return;
    const v = input.value.trim();
    const kind = input.dataset.kind;
    if (kind === "number") config[input.name] = v === "" || Number.isNaN(Number(v)) ? v : Number(v);
    else if (kind === "boolean") config[input.name] = v === "true";
    else if (kind === "list") config[input.name] = v ? v.split(",").map((s) => s.trim()).filter(Boolean) : [];
    else if (kind === "object") {
      try {
        config[input.name] = JSON.parse(v);
      } catch (_) {
        unreadable = unreadable || input.name;
      }
    } else config[input.name] = v;
  });
  if (unreadable) {
    showFieldError(form, `config.${unreadable}`, "is not valid JSON");
    return;
  }
  form.querySelectorAll("[id^=sec-]").forEach((input) => {
    if (!input.hidden && input.value) secrets[input.name] = input.value;
  });
  const body = {};
  if (Object.keys(config).length) body.config = config;
  if (Object.keys(secrets).length) body.secrets = secrets;
  if (!Object.keys(body).length) {
    setMsg($("editor-msg"), "", "Nothing changed.");
    return;
  }
  $("editor-save").disabled = true;
  setMsg($("editor-msg"), "", "Saving…");
  try {
    await api("PATCH", `/v1/admin/providers/${encodeURIComponent(state.editing)}`, body);
    const name = state.editing;
    await loadProviders();
    openEditor(name);
    setMsg($("editor-msg"), "ok", `Saved at ${fmtTime(new Date())}.`);
    loadAudit();
  } catch (e) {
    setMsg($("editor-msg"), "error", `Save failed: ${e.explain()}`);
    if (e.field) showFieldError(form, e.field, e.message);
  } finally {
    $("editor-save").disabled = state.me && state.me.database === false;
  }
}

// ---------------------------------------------------------------- test sender

function resultBlock(node, ok, lines, answer) {
  const parts = [el("p", { class: `outcome ${ok ? "ok" : "error"}` }, ...lines)];
  if (answer !== undefined) {
    const text = answer === null ? "(none: no provider was asked; the gateway checked the code itself)" : raw(answer);
    parts.push(el("details", { open: true }, el("summary", {}, "Raw provider answer"), el("pre", { class: "raw" }, text)));
  }
  node.replaceChildren(...parts);
}

async function testSend(event) {
  event.preventDefault();
  const form = $("test-send-form");
  clearErrors(form);
  const provider = $("test-provider").value;
  const phone = $("test-phone").value.trim();
  if (!phone) {
    showFieldError(form, "phone", "Enter the phone number to send to.");
    return;
  }
  $("test-send").disabled = true;
  $("test-verify-form").hidden = true;
  $("test-verify-result").replaceChildren();
  $("test-send-result").replaceChildren(el("p", { class: "state" }, `Sending through ${provider}…`));
  try {
    const r = await api("POST", `/v1/admin/providers/${encodeURIComponent(provider)}/test`, { phone });
    state.testSession = r.session_id;
    resultBlock(
      $("test-send-result"),
      r.status === "sent",
      [el("strong", { class: "badge", "data-status": r.status }, r.status), ` via ${r.provider} · HTTP ${r.http_status ?? "—"} · ${ms(r.response_time_ms)}`],
      r.raw,
    );
    if (r.status === "sent") {
      $("test-verify-form").hidden = false;
      $("test-code").value = "";
      $("test-code").focus();
    }
    loadLogs(true);
  } catch (e) {
    $("test-send-result").replaceChildren();
    if (e.field === "phone" || e.code === "invalid_phone") showFieldError(form, "phone", e.message);
    else resultBlock($("test-send-result"), false, [`Send failed: ${e.explain()}`]);
  } finally {
    $("test-send").disabled = false;
  }
}

async function testVerify(event) {
  event.preventDefault();
  const form = $("test-verify-form");
  clearErrors(form);
  const code = $("test-code").value.trim();
  if (!/^[0-9]{4,10}$/.test(code)) {
    showFieldError(form, "code", "Enter the digits of the code.");
    return;
  }
  $("test-verify").disabled = true;
  try {
    const provider = $("test-provider").value;
    const r = await api("POST", `/v1/admin/providers/${encodeURIComponent(provider)}/test/verify`, { session_id: state.testSession, code });
    resultBlock($("test-verify-result"), r.status === "verified", [el("strong", { class: "badge", "data-status": r.status }, r.status)], r.raw);
    loadLogs(true);
  } catch (e) {
    if (e.field === "code") showFieldError(form, "code", e.message);
    else resultBlock($("test-verify-result"), false, [`Verify failed: ${e.explain()}`]);
  } finally {
    $("test-verify").disabled = false;
  }
}

// ---------------------------------------------------------------- MFA and logs

function showMfa(show) {
  $("mfa").hidden = !show;
  $("logs-body").hidden = show;
}

async function mfaSend() {
  $("mfa-err").textContent = "";
  $("mfa-send").disabled = true;
  try {
    const r = await api("POST", "/v1/admin/mfa/send");
    state.mfaSession = r.session_id;
    $("mfa-form").hidden = false;
    $("mfa-send").textContent = "Send another code";
    $("mfa-code").focus();
  } catch (e) {
    $("mfa-err").textContent = `Could not send the code: ${e.explain()}`;
  } finally {
    $("mfa-send").disabled = false;
  }
}

async function mfaVerify(event) {
  event.preventDefault();
  $("mfa-err").textContent = "";
  try {
    const r = await api("POST", "/v1/admin/mfa/verify", { session_id: state.mfaSession, code: $("mfa-code").value.trim() });
    sessionStorage.setItem(MFA_KEY, JSON.stringify(r));
    $("mfa-form").hidden = true;
    $("mfa-code").value = "";
    showMfa(false);
    loadLogs();
  } catch (e) {
    $("mfa-err").textContent = `Not confirmed: ${e.explain()}`;
    $("mfa-code").setAttribute("aria-invalid", "true");
    $("mfa-code").focus();
  }
}

function logQuery() {
  const f = new FormData($("log-filters"));
  const q = new URLSearchParams();
  for (const key of ["phone", "provider", "outcome", "type"]) {
    const v = String(f.get(key) || "").trim();
    if (v) q.set(key, v);
  }
  for (const key of ["since", "until"]) {
    const v = String(f.get(key) || "");
    if (v) q.set(key, new Date(v).toISOString());
  }
  const cursor = state.logCursors[state.logCursors.length - 1];
  if (cursor) q.set("cursor", cursor);
  q.set("limit", String(PAGE));
  return q.toString();
}

async function loadLogs(quiet) {
  const note = $("logs-state");
  const needMfa = state.me && state.me.mfa_required && !state.me.mfa_ok && !mfaToken();
  if (needMfa) {
    showMfa(true);
    return;
  }
  showMfa(false);
  if (!quiet) {
    note.className = "state";
    note.textContent = "Loading logs…";
  }
  const mfa = mfaToken();
  try {
    const data = await api("GET", `/v1/admin/logs?${logQuery()}`, undefined, mfa ? { "X-Admin-MFA": mfa } : undefined);
    renderLogs(data);
    $("logs-meta").textContent = `updated ${fmtTime(new Date())}`;
    note.className = "state";
    note.textContent = data.items && data.items.length ? "" : state.logCursors.length > 1 ? "No older entries." : "No log entries match.";
  } catch (e) {
    if (e.code === "mfa_required") {
      sessionStorage.removeItem(MFA_KEY);
      showMfa(true);
      return;
    }
    if (e.field && $("log-filters").querySelector(`[data-for="${CSS.escape(e.field)}"]`)) {
      clearErrors($("log-filters"));
      $("log-filter-box").open = true;
      showFieldError($("log-filters"), e.field, e.message);
    }
    note.className = "state error";
    note.textContent = `Could not load logs: ${e.explain()}${$("log-rows").children.length ? " Rows below may be stale." : ""}`;
  }
}

function renderLogs(data) {
  const rows = (data.items || []).map((r) =>
    el(
      "tr",
      { class: `outcome-${r.outcome || ""}` },
      el("td", { "data-label": "When" }, fmtTime(r.at)),
      el("td", { "data-label": "Phone" }, r.phone || "—"),
      el("td", { "data-label": "Provider" }, r.provider || "—"),
      el("td", { "data-label": "Type" }, [r.source === "otp_event" ? "otp" : r.source, r.type].filter(Boolean).join(" · ")),
      el("td", { "data-label": "Outcome" }, el("span", { class: "chip" }, r.outcome || "—")),
      el("td", { "data-label": "HTTP" }, r.http_status ?? "—"),
      el("td", { "data-label": "Time" }, ms(r.response_time_ms)),
      el("td", { "data-label": "Error", class: "wrap" }, r.error || ""),
    ),
  );
  $("log-rows").replaceChildren(...rows);
  $("log-table").hidden = rows.length === 0;
  state.logNext = data.next_cursor || null;
  $("logs-older").disabled = !state.logNext;
  $("logs-newest").disabled = state.logCursors.length === 1;
}

// ---------------------------------------------------------------- audit

async function loadAudit() {
  const note = $("audit-state");
  note.className = "state";
  note.textContent = "Loading audit trail…";
  const cursor = state.auditCursors[state.auditCursors.length - 1];
  try {
    const data = await api("GET", `/v1/admin/audit?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    const items = (data.items || []).map((a) =>
      el(
        "li",
        {},
        el("div", { class: "line" }, el("strong", {}, a.action), " ", el("code", {}, a.target || ""), el("span", { class: "meta" }, ` by ${a.actor} · ${fmtTime(a.at)}`)),
        el(
          "details",
          {},
          el("summary", {}, "Before and after"),
          el("div", { class: "diff" }, el("div", {}, el("h3", {}, "Before"), el("pre", {}, raw(a.before ?? null))), el("div", {}, el("h3", {}, "After"), el("pre", {}, raw(a.after ?? null)))),
        ),
      ),
    );
    $("audit-list").replaceChildren(...items);
    state.auditNext = data.next_cursor || null;
    $("audit-older").disabled = !state.auditNext;
    $("audit-newest").disabled = state.auditCursors.length === 1;
    $("audit-meta").textContent = `updated ${fmtTime(new Date())}`;
    note.textContent = items.length ? "" : "No changes recorded yet.";
  } catch (e) {
    note.className = "state error";
    note.textContent = `Could not load the audit trail: ${e.explain()}`;
  }
}

// ---------------------------------------------------------------- tabs

/** Shows one tab's panel; the choice survives a reload through the URL's #fragment. */
function selectTab(name, focus) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t.id === `tab-${name}`;
    t.setAttribute("aria-selected", on ? "true" : "false");
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) t.focus();
  }
  if (history.replaceState) history.replaceState(null, "", name === "settings" ? location.pathname : `#${name}`);
  if (name === "campaigns" && state.me) {
    loadCampaigns();
    loadOptOuts();
  }
}

/** Arrow keys, Home and End move between tabs (the WAI-ARIA tabs pattern). */
function tabKeys(ev) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const i = tabs.indexOf(ev.target);
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  selectTab(tabs[(to + tabs.length) % tabs.length].id.slice(4), true);
}

// ---------------------------------------------------------------- campaigns

/** Statuses whose counts still move, so the list keeps refreshing. */
const LIVE_STATUSES = new Set(["running", "scheduled"]);
/** Counts shown for each campaign, in this order; zero ones marked `optional` are left out. */
const COUNTS = [
  ["queued", "queued"],
  ["sent", "sent"],
  ["delivered", "delivered"],
  ["failed", "failed"],
  ["skipped_opt_out", "skipped (opt-out)"],
  ["held_quiet_hours", "held (quiet hours)"],
  ["ambiguous", "ambiguous"],
  ["cancelled", "cancelled", true],
  ["duplicate", "duplicates", true],
  ["invalid", "invalid", true],
];

/** Counts that need a look when above zero. */
const BAD_COUNTS = new Set(["failed", "ambiguous"]);

/** Messages that will not move any more: everything but queued, sending and held. */
function finished(c) {
  const n = c.counts || {};
  return Math.max(0, (n.total || 0) - (n.queued || 0) - (n.sending || 0) - (n.held_quiet_hours || 0));
}

async function loadCampaigns(quiet) {
  const note = $("campaigns-state");
  if (!quiet) {
    note.className = "state";
    note.textContent = "Loading campaigns…";
  }
  const cursor = state.campaignCursors[state.campaignCursors.length - 1];
  try {
    const data = await api("GET", `/v1/campaigns?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    state.campaigns = data.campaigns || [];
    state.campaignNext = data.next_cursor || null;
    state.campaignsError = null;
    renderCampaigns();
    $("campaigns-meta").textContent = `updated ${fmtTime(new Date())}`;
    note.className = "state";
    note.textContent = state.campaigns.length ? "" : state.campaignCursors.length > 1 ? "No older campaigns." : "No campaigns yet. Start one with POST /v1/campaigns.";
  } catch (e) {
    state.campaignsError = e;
    note.className = "state error";
    note.textContent = `Could not load campaigns: ${e.explain()}${state.campaigns.length ? " The list below may be stale." : ""}`;
  }
}

function campaignButton(c, action, label, extra) {
  return el(
    "button",
    Object.assign({ type: "button", "data-key": `${action}-${c.id}`, "aria-label": `${label} campaign ${c.name}`, onclick: () => controlCampaign(c, action) }, extra || {}),
    label,
  );
}

function renderCampaigns() {
  const list = $("campaign-list");
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  const items = state.campaigns.map((c) => {
    const n = c.counts || {};
    const total = n.total || 0;
    const done = finished(c);
    const status = c.status || "unknown";
    const when = [c.type, `created ${fmtTime(c.created_at)}`, c.schedule_at ? `scheduled for ${fmtTime(c.schedule_at)}` : null];
    const counts = COUNTS.filter(([key, , optional]) => !optional || n[key]).map(([key, label]) =>
      el("div", { class: `count count-${key}` }, el("dt", {}, label), el("dd", { "data-count": key, class: BAD_COUNTS.has(key) && n[key] ? "bad" : null }, String(n[key] ?? 0))),
    );
    const controls = [];
    if (LIVE_STATUSES.has(status)) controls.push(campaignButton(c, "pause", "Pause"));
    if (status === "paused") controls.push(campaignButton(c, "resume", "Resume"));
    if (LIVE_STATUSES.has(status) || status === "paused") {
      if (state.confirmCancel === c.id) {
        controls.push(
          el("span", { class: "confirm", role: "group", "aria-label": `Confirm cancelling ${c.name}` }, "Cancel for good? ",
            campaignButton(c, "cancel", "Yes, cancel", { class: "danger", "data-key": `confirm-${c.id}` }),
            el("button", { type: "button", class: "quiet", "data-key": `keep-${c.id}`, onclick: () => askCancel(null, `cancel-${c.id}`) }, "Keep it")),
        );
      } else {
        controls.push(el("button", { type: "button", class: "quiet", "data-key": `cancel-${c.id}`, "aria-label": `Cancel campaign ${c.name}`, onclick: () => askCancel(c.id, `confirm-${c.id}`) }, "Cancel…"));
      }
    }
    const msg = state.campaignMsgs[c.id];
    return el(
      "li",
      { class: `campaign status-${status}`, "data-id": c.id },
      el(
        "div",
        { class: "line" },
        el("strong", { class: "cname" }, c.name || c.id),
        el("span", { class: `chip status status-${status}`, "data-status": status }, status),
        el("span", { class: "meta" }, when.filter(Boolean).join(" · ")),
      ),
      el(
        "div",
        { class: "bar" },
        el("progress", { max: String(Math.max(total, 1)), value: String(total ? done : 0), "aria-label": `Progress of ${c.name}` }),
        el("span", { class: "meta" }, `${done} of ${total} finished`),
      ),
      el("dl", { class: "live counts" }, counts),
      controls.length ? el("div", { class: "controls" }, controls) : null,
      el("p", { class: `msg ${msg ? msg.kind : ""}`, role: "alert", tabindex: "-1", "data-msg": c.id }, msg ? msg.text : ""),
    );
  });
  list.replaceChildren(...items);
  if (focused) list.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  $("campaigns-older").disabled = !state.campaignNext;
  $("campaigns-newest").disabled = state.campaignCursors.length === 1;
}

function askCancel(id, focusKey) {
  state.confirmCancel = id;
  renderCampaigns();
  $("campaign-list").querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

async function controlCampaign(c, action) {
  const done = { pause: "Paused.", resume: "Resumed.", cancel: "Cancelled." }[action];
  for (const b of $("campaign-list").querySelectorAll(`li[data-id="${CSS.escape(c.id)}"] button`)) b.disabled = true;
  state.confirmCancel = null;
  try {
    const updated = await api("POST", `/v1/campaigns/${encodeURIComponent(c.id)}/${action}`, {});
    state.campaigns = state.campaigns.map((x) => (x.id === c.id ? updated : x));
    state.campaignMsgs[c.id] = { kind: "ok", text: done };
    renderCampaigns();
    // Focus stays on the campaign: its first button, or its message once none is left.
    const item = $("campaign-list").querySelector(`li[data-id="${CSS.escape(c.id)}"]`);
    (item?.querySelector("button") || item?.querySelector("[data-msg]"))?.focus();
  } catch (e) {
    state.campaignMsgs[c.id] = { kind: "error", text: `${action[0].toUpperCase()}${action.slice(1)} refused: ${sentence(e.explain())}` };
    // The refusal usually means the page was behind: show what the gateway has now.
    await loadCampaigns(true);
    renderCampaigns();
  }
}

/** Refreshes the shown page while one of its campaigns can still change. */
function pollCampaigns() {
  if ($("pane-campaigns").hidden || state.campaignCursors.length > 1) return;
  if (state.campaigns.some((c) => LIVE_STATUSES.has(c.status))) loadCampaigns(true);
}

// ---------------------------------------------------------------- opt-outs

async function loadOptOuts(quiet) {
  const note = $("optouts-state");
  if (!quiet) {
    note.className = "state";
    note.textContent = "Loading opt-outs…";
  }
  const after = state.optCursors[state.optCursors.length - 1];
  try {
    const data = await api("GET", `/v1/opt-outs?limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    const rows = (data.opt_outs || []).map((o) =>
      el(
        "tr",
        { "data-phone": o.phone },
        el("td", { "data-label": "Phone" }, o.phone),
        el("td", { "data-label": "Scope" }, el("span", { class: "chip" }, o.scope)),
        el("td", { "data-label": "Source" }, o.source),
        el("td", { "data-label": "Since" }, fmtTime(o.created_at)),
        el(
          "td",
          { "data-label": "" },
          el("button", { type: "button", class: "quiet", "data-key": `rm-${o.phone}-${o.scope}`, "aria-label": `Remove ${o.phone} (${o.scope})`, onclick: () => removeOptOut(o) }, "Remove"),
        ),
      ),
    );
    $("optout-rows").replaceChildren(...rows);
    $("optout-table").hidden = rows.length === 0;
    state.optNext = data.next_after || null;
    $("optouts-more").disabled = !state.optNext;
    $("optouts-first").disabled = state.optCursors.length === 1;
    $("optouts-meta").textContent = `updated ${fmtTime(new Date())}`;
    note.className = "state";
    note.textContent = rows.length ? "" : state.optCursors.length > 1 ? "No more opt-outs." : "No opt-outs: every number may get campaign messages.";
  } catch (e) {
    note.className = "state error";
    note.textContent = `Could not load opt-outs: ${e.explain()}${$("optout-rows").children.length ? " Rows below may be stale." : ""}`;
  }
}

async function removeOptOut(o) {
  const msg = $("optouts-msg");
  try {
    await api("DELETE", `/v1/opt-outs?phone=${encodeURIComponent(o.phone)}&scope=${encodeURIComponent(o.scope)}`);
    setMsg(msg, "ok", `Removed ${o.phone} (${o.scope}).`);
  } catch (e) {
    setMsg(msg, "error", `Could not remove ${o.phone}: ${sentence(e.explain())}`);
  }
  await loadOptOuts(true);
  $("optouts-refresh").focus();
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("order-save").addEventListener("click", saveOrder);
  $("order-discard").addEventListener("click", discardOrder);
  $("editor-form").addEventListener("submit", saveEditor);
  $("editor-close").addEventListener("click", () => {
    $("editor").hidden = true;
    document.querySelector(`[data-key="edit-${CSS.escape(state.editing || "")}"]`)?.focus();
  });
  $("test-send-form").addEventListener("submit", testSend);
  $("test-verify-form").addEventListener("submit", testVerify);
  $("mfa-send").addEventListener("click", mfaSend);
  $("mfa-form").addEventListener("submit", mfaVerify);
  $("log-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors($("log-filters"));
    state.logCursors = [null];
    loadLogs();
  });
  $("logs-reset").addEventListener("click", () => {
    $("log-filters").reset();
    state.logCursors = [null];
    loadLogs();
  });
  $("logs-older").addEventListener("click", () => {
    if (!state.logNext) return;
    state.logCursors.push(state.logNext);
    loadLogs();
  });
  $("logs-refresh").addEventListener("click", () => loadLogs());
  $("logs-newest").addEventListener("click", () => {
    state.logCursors = [null];
    loadLogs();
  });
  $("audit-older").addEventListener("click", () => {
    if (!state.auditNext) return;
    state.auditCursors.push(state.auditNext);
    loadAudit();
  });
  $("audit-newest").addEventListener("click", () => {
    state.auditCursors = [null];
    loadAudit();
  });
  for (const t of document.querySelectorAll('[role="tab"]')) {
    t.addEventListener("click", () => selectTab(t.id.slice(4)));
    t.addEventListener("keydown", tabKeys);
  }
  $("campaigns-refresh").addEventListener("click", () => loadCampaigns());
  $("campaigns-older").addEventListener("click", () => {
    if (!state.campaignNext) return;
    state.campaignCursors.push(state.campaignNext);
    loadCampaigns();
  });
  $("campaigns-newest").addEventListener("click", () => {
    state.campaignCursors = [null];
    loadCampaigns();
  });
  $("optouts-refresh").addEventListener("click", () => loadOptOuts());
  $("optouts-more").addEventListener("click", () => {
    if (!state.optNext) return;
    state.optCursors.push(state.optNext);
    loadOptOuts();
  });
  $("optouts-first").addEventListener("click", () => {
    state.optCursors = [null];
    loadOptOuts();
  });
  // Filters stay folded on a phone, where they would push the rows off the screen.
  $("log-filter-box").open = window.matchMedia("(min-width: 720px)").matches;
  if (token()) {
    start().catch((e) => signOut(e.explain ? e.explain() : String(e)));
  } else {
    $("token").focus();
  }
});
