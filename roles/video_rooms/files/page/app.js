// teleshift video rooms: the page's own small client of Janus's HTTP API (VideoRoom plugin).
// One handle publishes the person's camera and microphone; one handle per other person receives them.
"use strict";

const API = "/janus";
const TEXT = {
  connecting: "Connexion... / Connecting...",
  joined: "Dans la salle / In the room",
  refused: "PIN refusé / PIN refused",
  full: "Salle pleine / Room full",
  noroom: "Salle inconnue / Unknown room",
  error: "Erreur / Error: ",
  left: "Vous avez quitté la salle / You left the room",
};
const state = { state: "idle", session: null, handles: {}, remotes: {}, config: { ice: [] }, room: "", pin: "" };
window.teleshiftVideo = state;

function $(id) { return document.getElementById(id); }
function tx() { return Math.random().toString(36).slice(2) + Date.now().toString(36); }

function setStatus(name, extra) {
  state.state = name;
  $("status").dataset.state = name;
  $("status").textContent = (TEXT[name] || name) + (extra || "");
}

async function call(path, message) {
  const body = Object.assign({ transaction: tx() }, message);
  const resp = await fetch(API + path, { method: "POST", body: JSON.stringify(body),
                                         headers: { "Content-Type": "application/json" } });
  const answer = await resp.json();
  if (answer.janus === "error") { throw new Error(answer.error ? answer.error.reason : "Janus error"); }
  return answer;
}

async function poll() {
  while (state.session) {
    try {
      const resp = await fetch(`${API}/${state.session}?maxev=10&rid=${Date.now()}`);
      const events = await resp.json();
      for (const ev of (Array.isArray(events) ? events : [events])) { dispatch(ev); }
    } catch (err) {
      if (!state.session) { return; }
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  }
}

function dispatch(ev) {
  const handle = state.handles[ev.sender];
  if (!handle) { return; }
  if (ev.janus === "event") {
    handle.onEvent((ev.plugindata || {}).data || {}, ev.jsep);
  } else if (ev.janus === "webrtcup") {
    handle.up = true;
  } else if (ev.janus === "hangup" || ev.janus === "detached") {
    handle.close();
  }
}

async function attach() {
  const id = (await call(`/${state.session}`, { janus: "attach", plugin: "janus.plugin.videoroom" })).data.id;
  const handle = { id, up: false, pc: null, onEvent() {}, close() {} };
  handle.send = (body, jsep) => call(`/${state.session}/${id}`, jsep ? { janus: "message", body, jsep }
                                                                     : { janus: "message", body });
  state.handles[id] = handle;
  return handle;
}

function peer(handle) {
  // ?relay=1 in the link sends everything through TURN (to tell a network problem from a room problem)
  const relay = new URLSearchParams(location.search).get("relay") === "1";
  const pc = new RTCPeerConnection({ iceServers: state.config.ice || [], iceTransportPolicy: relay ? "relay" : "all" });
  pc.onicecandidate = (e) => {
    const candidate = e.candidate ? { candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid,
                                      sdpMLineIndex: e.candidate.sdpMLineIndex } : { completed: true };
    call(`/${state.session}/${handle.id}`, { janus: "trickle", candidate }).catch(() => {});
  };
  handle.pc = pc;
  return pc;
}

function refused(data) {
  const code = data.error_code;
  setStatus(code === 433 ? "refused" : code === 426 ? "noroom" : code === 432 ? "full" : "error",
            code === 433 || code === 426 || code === 432 ? "" : data.error);
  leave(false);
}

async function publish(handle, camera) {
  let media = null;
  for (const want of (camera ? [{ audio: true, video: { width: 640, height: 360 } }, { audio: true }] : [{ audio: true }])) {
    try { media = await navigator.mediaDevices.getUserMedia(want); break; } catch (err) { media = null; }
  }
  if (!media) { return; }  // neither camera nor microphone: the person still sees and hears the others
  $("local").srcObject = media;
  const pc = peer(handle);
  media.getTracks().forEach((t) => pc.addTrack(t, media));
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await handle.send({ request: "publish", audio: true, video: media.getVideoTracks().length > 0 },
                    { type: offer.type, sdp: offer.sdp });
}

async function subscribe(feed) {
  if (state.remotes[feed.id]) { return; }
  const handle = await attach();
  const figure = document.createElement("figure");
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.dataset.feed = feed.id;
  const caption = document.createElement("figcaption");
  caption.textContent = feed.display || "?";
  figure.append(video, caption);
  $("videos").append(figure);
  const remote = { id: feed.id, display: feed.display || "", handle, video, figure };
  state.remotes[feed.id] = remote;
  handle.close = () => { figure.remove(); if (handle.pc) { handle.pc.close(); } delete state.remotes[feed.id]; };
  handle.onEvent = async (data, jsep) => {
    if (data.error_code) { return; }
    if (jsep && jsep.type === "offer") {
      const pc = handle.pc || peer(handle);
      pc.ontrack = (e) => {
        if (!video.srcObject) { video.srcObject = new MediaStream(); }
        video.srcObject.addTrack(e.track);
      };
      await pc.setRemoteDescription(jsep);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await handle.send({ request: "start" }, { type: answer.type, sdp: answer.sdp });
    }
  };
  await handle.send({ request: "join", ptype: "subscriber", room: state.room, pin: state.pin,
                      streams: [{ feed: feed.id }] });
}

function forget(id) {
  const remote = state.remotes[id];
  if (remote) { remote.handle.close(); call(`/${state.session}/${remote.handle.id}`, { janus: "detach" }).catch(() => {}); }
}

async function join(event) {
  event.preventDefault();
  state.room = $("room").value.trim();
  state.pin = $("pin").value;
  setStatus("connecting");
  $("enter").disabled = true;
  try {
    state.session = (await call("", { janus: "create" })).data.id;
    poll();
    const me = await attach();
    me.close = () => {};
    me.onEvent = async (data, jsep) => {
      if (data.error_code) { refused(data); return; }
      if (data.videoroom === "joined") {
        state.me = data.id;
        setStatus("joined");
        $("leave").hidden = false;
        (data.publishers || []).forEach(subscribe);
        publish(me, $("camera").checked).catch((err) => setStatus("error", err.message));
      } else if (data.videoroom === "event") {
        (data.publishers || []).forEach(subscribe);
        if (data.unpublished && data.unpublished !== "ok") { forget(data.unpublished); }
        if (data.leaving && data.leaving !== "ok") { forget(data.leaving); }
      }
      if (jsep && jsep.type === "answer" && me.pc) { await me.pc.setRemoteDescription(jsep); }
    };
    await me.send({ request: "join", ptype: "publisher", room: state.room, pin: state.pin,
                    display: $("name").value.trim().slice(0, 60) });
  } catch (err) {
    setStatus("error", err.message);
    leave(false);
  }
}

function leave(said) {
  const session = state.session;
  state.session = null;
  Object.values(state.handles).forEach((h) => { if (h.pc) { h.pc.close(); } });
  Object.keys(state.remotes).forEach((id) => state.remotes[id].figure.remove());
  state.handles = {};
  state.remotes = {};
  const local = $("local").srcObject;
  if (local) { local.getTracks().forEach((t) => t.stop()); $("local").srcObject = null; }
  if (session) { call(`/${session}`, { janus: "destroy" }).catch(() => {}); }
  $("enter").disabled = false;
  $("leave").hidden = true;
  if (said) { setStatus("left"); }
}

// What each received stream shows (for people troubleshooting, and for the lab test).
state.stats = async () => {
  const out = [];
  for (const remote of Object.values(state.remotes)) {
    const row = { display: remote.display, width: remote.video.videoWidth, height: remote.video.videoHeight,
                  bytesReceived: 0, framesDecoded: 0, connected: remote.handle.pc ? remote.handle.pc.connectionState : "" };
    if (remote.handle.pc) {
      (await remote.handle.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          row.bytesReceived += s.bytesReceived || 0;
          row.framesDecoded += s.framesDecoded || 0;
        }
      });
    }
    out.push(row);
  }
  return out;
};

async function start() {
  try {
    state.config = await (await fetch("config.json", { cache: "no-store" })).json();
  } catch (err) {
    state.config = { ice: [] };
  }
  if (state.config.title) { $("title").textContent = state.config.title; document.title = state.config.title; }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted) { $("room").value = wanted; }
  $("join").addEventListener("submit", join);
  $("leave").addEventListener("click", () => leave(true));
  window.addEventListener("beforeunload", () => leave(false));
}

start();
