// pbxkit web console: plain JavaScript over the admin API (/api/openapi.json). The token is kept
// in sessionStorage for this tab only; the live event stream is read with fetch (EventSource
// cannot send the Authorization header) and each event refreshes the list it concerns.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("pbxkit-token") || "";
let streamAbort = null;
let cdrPage = 1;
let editing = null; // the number of the extension being edited, or null when adding
// players holds the voicemail players loaded so far, by "mailbox/id": each an <audio> element
// playing an object URL of the message's WAV, fetched with the token. A message's audio never
// changes, so a refresh of the list keeps them (one playing goes on playing).
let players = new Map();

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  if (res.status === 401) {
    signOut("The token was not accepted.");
    throw new Error("unauthorized");
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.status + " " + res.statusText);
  return data;
}

// apiBlob fetches a file of the API (a voicemail message's audio) with the token.
async function apiBlob(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (res.status === 401) {
    signOut("The token was not accepted.");
    throw new Error("unauthorized");
  }
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error(data.error || res.status + " " + res.statusText);
  }
  return res.blob();
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function row(cells, attrs) {
  const tr = el("tr", null, attrs);
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function button(text, onClick, attrs) {
  const b = el("button", text, Object.assign({ type: "button" }, attrs || {}));
  b.addEventListener("click", onClick);
  return b;
}

function showError(err) {
  if (err && err.message !== "unauthorized") $("#app-error").textContent = err.message;
}

function fmtTime(t) { return t ? new Date(t).toLocaleString() : ""; }

// ---- sign-in ----

async function signIn(t) {
  token = t;
  try {
    await api("GET", "/api/extensions");
  } catch (err) {
    $("#login-error").textContent = err.message === "unauthorized" ? "The token was not accepted." : err.message;
    return;
  }
  sessionStorage.setItem("pbxkit-token", token);
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#signout").hidden = false;
  $("#status").textContent = "signed in";
  $("#login-error").textContent = "";
  refreshAll();
  startEvents();
}

function signOut(msg) {
  token = "";
  sessionStorage.removeItem("pbxkit-token");
  if (streamAbort) streamAbort.abort();
  dropPlayers(new Set());
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#signout").hidden = true;
  $("#status").textContent = "signed out";
  $("#login-error").textContent = msg || "";
}

// ---- lists ----

function refreshAll() {
  refreshCalls(); refreshExtensions(); refreshRegistrations(); refreshQueues(); refreshConferences(); refreshCDRs();
  refreshVoicemail();
}

async function refreshCalls() {
  try {
    const calls = await api("GET", "/api/calls");
    const tbody = $("#calls tbody");
    tbody.replaceChildren(...calls.map((c) => row([c.caller, c.dialled, c.callee, c.state, fmtTime(c.start),
      c.recording ? "recording" : "", callActions(c)],
      { "data-id": c.id, class: c.state + (c.recording ? " recording" : "") })));
  } catch (err) { showError(err); }
}

// callActions are a live call's buttons: hang up, and start or stop recording it (the event
// stream's call.recording_* events refresh the list).
function callActions(c) {
  const span = el("span");
  const path = "/api/calls/" + encodeURIComponent(c.id);
  span.appendChild(button("Hang up", () => api("DELETE", path).catch(showError), { class: "hangup" }));
  span.appendChild(document.createTextNode(" "));
  if (c.recording) {
    span.appendChild(button("Stop recording", () => api("DELETE", path + "/recording").catch(showError), { class: "stop-record" }));
  } else {
    span.appendChild(button("Record", () => api("POST", path + "/recording").catch(showError), { class: "record" }));
  }
  return span;
}

let registered = {};

async function refreshExtensions() {
  try {
    const exts = await api("GET", "/api/extensions");
    $("#extensions tbody").replaceChildren(...exts.map((e) => row([e.number, e.name, e.enabled ? "yes" : "no",
      e.dnd ? "on" : "", e.forward_always, e.record ? "on" : "", registered[e.number] ? "yes" : "",
      actions(e)], { "data-number": e.number })));
  } catch (err) { showError(err); }
}

function actions(e) {
  const span = el("span");
  span.appendChild(button("Edit", () => startEdit(e), { class: "edit" }));
  span.appendChild(document.createTextNode(" "));
  span.appendChild(button("Remove", async () => {
    if (!confirm("Remove extension " + e.number + "?")) return;
    try { await api("DELETE", "/api/extensions/" + encodeURIComponent(e.number)); refreshExtensions(); } catch (err) { showError(err); }
  }, { class: "remove" }));
  return span;
}

async function refreshRegistrations() {
  try {
    const regs = await api("GET", "/api/registrations");
    registered = {};
    for (const r of regs) registered[r.extension] = true;
    $("#registrations tbody").replaceChildren(...regs.map((r) => row([r.extension, r.contact, r.source, r.transport,
      r.user_agent, fmtTime(r.expires_at)], { "data-extension": r.extension })));
    refreshExtensions();
  } catch (err) { showError(err); }
}

async function refreshQueues() {
  try {
    const queues = await api("GET", "/api/queues");
    const box = $("#queues");
    box.replaceChildren();
    if (queues.length === 0) box.appendChild(el("p", "No queues.", { class: "muted" }));
    for (const q of queues) {
      box.appendChild(el("h3", q.name + " (" + q.strategy + "): " + q.waiting + " waiting, " + q.answered + " answered, " + q.abandoned + " abandoned"));
      const table = el("table", null, { "data-queue": q.name });
      table.appendChild(row(["Agent", "State", ""]));
      for (const a of q.agents) {
        const state = a.logged_out ? "logged out" : a.paused ? "paused " + a.pause_reason : "ready";
        const verb = a.paused ? "unpause" : "pause";
        table.appendChild(row([a.extension, state, button(verb === "pause" ? "Pause" : "Unpause", async () => {
          try {
            await api("POST", "/api/queues/" + encodeURIComponent(q.name) + "/agents/" + encodeURIComponent(a.extension) + "/" + verb);
            refreshQueues();
          } catch (err) { showError(err); }
        })], { "data-agent": a.extension }));
      }
      box.appendChild(table);
    }
  } catch (err) { showError(err); }
}

// ---- conferences ----

// confAsked and confShown number the conference listings asked for and the newest shown: events
// come in bursts (a room ending takes everyone out), and an older answer arriving late must not
// replace a newer one.
let confAsked = 0;
let confShown = 0;

async function refreshConferences() {
  const n = ++confAsked;
  try {
    const rooms = await api("GET", "/api/conferences");
    if (n < confShown) return;
    confShown = n;
    const box = $("#conferences");
    box.replaceChildren();
    if (rooms.length === 0) box.appendChild(el("p", "No conferences.", { class: "muted", id: "conf-empty" }));
    for (const r of rooms) {
      const count = r.participants.length;
      box.appendChild(el("h3", "Room " + r.name + ": " + count + (count === 1 ? " participant" : " participants")));
      const table = el("table", null, { "data-room": r.name });
      const head = el("tr");
      for (const h of ["Participant", "Codec", "Joined", "State", ""]) head.appendChild(el("th", h));
      table.appendChild(el("thead")).appendChild(head);
      const tbody = table.appendChild(el("tbody"));
      for (const p of r.participants) {
        const flags = [p.muted ? "muted" : "", p.moderator ? "moderator" : ""].filter((x) => x).join(", ");
        tbody.appendChild(row([p.name, p.codec, fmtTime(p.joined), flags, confActions(r.name, p)],
          { "data-id": p.id, "data-muted": p.muted ? "true" : "false" }));
      }
      box.appendChild(table);
    }
  } catch (err) { showError(err); }
}

// confActions are a participant's buttons: mute or unmute, and kick (asked first: a caller is
// hung up). The event stream's conference.* events refresh the list.
function confActions(room, p) {
  const span = el("span");
  const path = "/api/conferences/" + encodeURIComponent(room) + "/participants/" + p.id;
  const verb = p.muted ? "unmute" : "mute";
  span.appendChild(button(p.muted ? "Unmute" : "Mute", async () => {
    try { await api("POST", path + "/" + verb); refreshConferences(); } catch (err) { showError(err); refreshConferences(); }
  }, { class: verb }));
  span.appendChild(document.createTextNode(" "));
  span.appendChild(button("Kick", async () => {
    if (!confirm("Take " + (p.name || "participant " + p.id) + " out of room " + room + "? A caller is hung up.")) return;
    try { await api("DELETE", path); refreshConferences(); } catch (err) { showError(err); refreshConferences(); }
  }, { class: "kick" }));
  return span;
}

async function refreshCDRs() {
  const q = new URLSearchParams({ page: cdrPage, per_page: 20 });
  for (const [param, id] of [["from", "#cdr-from"], ["to", "#cdr-to"], ["ext", "#cdr-ext"], ["disposition", "#cdr-disposition"]]) {
    const v = $(id).value.trim();
    if (v) q.set(param, v);
  }
  try {
    const page = await api("GET", "/api/cdrs?" + q);
    $("#cdrs tbody").replaceChildren(...page.items.map((c) => row([fmtTime(c.start), c.caller, c.dialled, c.callee,
      c.disposition, c.duration_sec + " s", c.hangup_by], { "data-call-id": c.call_id })));
    $("#cdr-page").textContent = "page " + page.page;
    $("#cdr-prev").disabled = page.page <= 1;
    $("#cdr-next").disabled = !page.has_more;
  } catch (err) { showError(err); }
}

// ---- voicemail ----

// vmAsked numbers the list requests: an answer to an older one than the last shown is dropped.
let vmAsked = 0;

async function refreshVoicemail() {
  const asked = ++vmAsked;
  const q = new URLSearchParams();
  const mailbox = $("#vm-mailbox").value.trim();
  if (mailbox) q.set("mailbox", mailbox);
  if ($("#vm-folder").value) q.set("folder", $("#vm-folder").value);
  try {
    const qs = q.toString();
    const msgs = await api("GET", "/api/voicemail" + (qs ? "?" + qs : ""));
    if (asked !== vmAsked) return; // a newer request (another filter, a later event) answers
    dropPlayers(new Set(msgs.map(vmKey)));
    $("#voicemail tbody").replaceChildren(...msgs.map((m) => row([m.mailbox,
      m.caller_name ? m.caller_name + " (" + m.caller + ")" : m.caller, fmtTime(m.created_at), m.duration_sec + " s",
      m.folder === "new" ? "new" : "heard", player(m), vmActions(m)],
      { "data-mailbox": m.mailbox, "data-id": m.id, "data-folder": m.folder })));
    $("#vm-empty").hidden = msgs.length > 0;
  } catch (err) {
    if (asked !== vmAsked) return;
    $("#voicemail tbody").replaceChildren(); // not the list of another filter beside this one
    showError(err);
  }
}

function vmKey(m) { return m.mailbox + "/" + m.id; }

// player is the message's <audio controls>: loaded already, or a Play button that fetches the
// audio (with the token, which an <audio src> cannot send) and turns into the player.
function player(m) {
  const loaded = players.get(vmKey(m));
  if (loaded) return loaded;
  const span = el("span");
  const audio = el("audio", null, { controls: "", preload: "none", hidden: "" });
  const play = button("Play", async () => {
    play.disabled = true;
    const signedIn = token;
    try {
      const blob = await apiBlob(m.audio_url);
      if (token !== signedIn) return; // signed out (or in again) meanwhile: nothing to play
      const earlier = players.get(vmKey(m)); // a Play of the same message in a redrawn list
      if (earlier) { earlier.pause(); URL.revokeObjectURL(earlier.src); }
      audio.src = URL.createObjectURL(blob);
      players.set(vmKey(m), audio);
      audio.hidden = false;
      play.remove();
      if (!span.isConnected) refreshVoicemail(); // the list was redrawn meanwhile: show it there
      audio.play().catch(() => {}); // the player stays for the user to start when autoplay is refused
    } catch (err) { play.disabled = false; showError(err); }
  }, { class: "play" });
  span.append(play, audio);
  return span;
}

// dropPlayers frees the players of messages not in keep.
function dropPlayers(keep) {
  for (const [key, audio] of players) {
    if (keep.has(key)) continue;
    audio.pause();
    URL.revokeObjectURL(audio.src);
    players.delete(key);
  }
}

function vmActions(m) {
  const span = el("span");
  const path = "/api/voicemail/" + encodeURIComponent(m.mailbox) + "/" + m.id;
  if (m.folder === "new") {
    span.appendChild(button("Mark heard", async () => {
      try { await api("PATCH", path, { folder: "saved" }); refreshVoicemail(); } catch (err) { showError(err); }
    }, { class: "heard" }));
    span.appendChild(document.createTextNode(" "));
  }
  span.appendChild(button("Delete", async () => {
    const from = m.caller_name || m.caller || "an unknown caller";
    if (!confirm("Delete the message from " + from + " in mailbox " + m.mailbox + "?")) return;
    try { await api("DELETE", path); refreshVoicemail(); } catch (err) { showError(err); refreshVoicemail(); }
  }, { class: "delete" }));
  return span;
}

// ---- extension form ----

function startEdit(e) {
  editing = e.number;
  $("#ext-form-title").textContent = "Edit extension " + e.number;
  $("#ext-number").value = e.number;
  $("#ext-number").disabled = true;
  $("#ext-name").value = e.name;
  $("#ext-password").value = "";
  $("#ext-password").placeholder = "unchanged";
  $("#ext-forward").value = e.forward_always;
  $("#ext-dnd").checked = e.dnd;
  $("#ext-record").checked = e.record;
  $("#ext-enabled").checked = e.enabled;
  $("#ext-voicemail").checked = e.voicemail;
  $("#ext-pin").value = "";
  $("#ext-pin").placeholder = e.vm_pin_set ? "unchanged" : "none";
  $("#ext-save").textContent = "Save";
  $("#ext-cancel").hidden = false;
}

function resetForm() {
  editing = null;
  $("#ext-form").reset();
  $("#ext-form-title").textContent = "Add an extension";
  $("#ext-number").disabled = false;
  $("#ext-password").placeholder = "";
  $("#ext-pin").placeholder = "";
  $("#ext-save").textContent = "Add";
  $("#ext-cancel").hidden = true;
}

async function saveExtension(ev) {
  ev.preventDefault();
  const body = {
    name: $("#ext-name").value, forward_always: $("#ext-forward").value.trim(),
    dnd: $("#ext-dnd").checked, enabled: $("#ext-enabled").checked, record: $("#ext-record").checked,
    voicemail: $("#ext-voicemail").checked,
  };
  const pw = $("#ext-password").value;
  if (pw) body.password = pw;
  const pin = $("#ext-pin").value;
  if (pin) body.vm_pin = pin;
  try {
    if (editing) {
      await api("PATCH", "/api/extensions/" + encodeURIComponent(editing), body);
    } else {
      body.number = $("#ext-number").value.trim();
      await api("POST", "/api/extensions", body);
    }
    $("#app-error").textContent = "";
    resetForm();
    refreshExtensions();
  } catch (err) { showError(err); }
}

// ---- live events ----

async function startEvents() {
  if (streamAbort) streamAbort.abort();
  const ctl = new AbortController();
  streamAbort = ctl;
  while (!ctl.signal.aborted && token) {
    try {
      const res = await fetch("/api/events", { headers: { Authorization: "Bearer " + token }, signal: ctl.signal });
      if (res.status === 401) { signOut("The token was not accepted."); return; }
      await readStream(res.body.getReader());
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    $("#live").textContent = "(reconnecting)";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// readStream splits the text/event-stream into messages and handles each.
async function readStream(reader) {
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const msg = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = msg.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

function onEvent(ev) {
  if (ev.kind === "ready") {
    $("#live").textContent = "(live)";
    refreshCalls();
    refreshConferences(); // what changed while the stream was away
    return;
  }
  const room = ev.room ? "room " + ev.room + (ev.participant ? " #" + ev.participant : "") : "";
  const li = el("li", new Date(ev.time).toLocaleTimeString() + " " + ev.kind + " " +
    [room, ev.caller, ev.callee, ev.extension, ev.queue, ev.digit, ev.status, ev.reason, ev.path].filter((x) => x).join(" "));
  const list = $("#events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 100) list.removeChild(list.lastChild);
  if (ev.kind.startsWith("call.")) refreshCalls();
  // The record reaches the database a moment after the call ends (records are written in
  // batches): look again shortly.
  if (ev.kind === "call.ended") { refreshCDRs(); setTimeout(refreshCDRs, 1000); setTimeout(refreshCDRs, 3000); }
  // A call that ended may have left a message (it is filed as the caller hangs up).
  if (ev.kind === "call.ended") { refreshVoicemail(); setTimeout(refreshVoicemail, 1000); }
  if (ev.kind.startsWith("registration.")) refreshRegistrations();
  if (ev.kind.startsWith("queue.")) refreshQueues();
  if (ev.kind.startsWith("conference.")) refreshConferences();
}

// ---- wiring ----

$("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
$("#signout").addEventListener("click", () => signOut());
$("#ext-form").addEventListener("submit", saveExtension);
$("#ext-cancel").addEventListener("click", resetForm);
$("#cdr-form").addEventListener("submit", (ev) => { ev.preventDefault(); cdrPage = 1; refreshCDRs(); });
$("#cdr-prev").addEventListener("click", () => { if (cdrPage > 1) { cdrPage--; refreshCDRs(); } });
$("#cdr-next").addEventListener("click", () => { cdrPage++; refreshCDRs(); });
$("#vm-form").addEventListener("submit", (ev) => { ev.preventDefault(); refreshVoicemail(); });
if (token) signIn(token);
