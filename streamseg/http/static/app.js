// streamseg status page: reads /api/cameras every second and refreshes each camera's snapshot.
// With token auth the token is asked for once and kept for this tab (sessionStorage); with basic auth the
// browser sends the credentials it was given for the page.
"use strict";

const cards = new Map();  // camera name -> {root, image, busy, url}
let liveFps = 5;

function headers() {
  const token = sessionStorage.getItem("streamseg-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

async function get(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (response.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("unauthorized: enter the token");
  }
  return response;
}

function card(name) {
  if (cards.has(name)) return cards.get(name);
  const root = document.getElementById("camera").content.firstElementChild.cloneNode(true);
  root.dataset.camera = name;
  root.querySelector(".name").textContent = name;
  root.querySelector(".mjpeg").href = "/cameras/" + encodeURIComponent(name) + "/mjpeg";
  document.getElementById("cameras").append(root);
  const entry = { root, image: root.querySelector("img.live"), busy: false, url: null };
  cards.set(name, entry);
  return entry;
}

function figure(table, label, value) {
  const row = table.insertRow();
  row.insertCell().textContent = label;
  row.insertCell().textContent = value;
}

function number(x, digits = 1) {
  return typeof x === "number" ? x.toFixed(digits) : "-";
}

function render(name, cam) {
  const { root } = card(name);
  const state = root.querySelector(".state");
  state.textContent = cam.hung ? "hung" : cam.state;
  state.className = "state " + cam.state;
  const error = root.querySelector(".error");
  error.hidden = !cam.error && !cam.hung;
  error.textContent = cam.hung || cam.error || "";
  const table = root.querySelector(".figures");
  table.replaceChildren();
  if (cam.frames !== undefined) {
    figure(table, "fps in / processed", number(cam.fps_in) + " / " + number(cam.fps));
    figure(table, "frames", cam.frames + " (dropped " + cam.dropped + ", skipped " + cam.skipped + ")");
    figure(table, "reconnects", cam.reconnects);
    figure(table, "latency", number(cam.latency_ms, 0) + " ms (inference " + number(cam.inference_ms) + " ms)");
    figure(table, "source", cam.source);
  }
  const live = cam.live;
  const counts = root.querySelector(".counts");
  counts.replaceChildren();
  const events = root.querySelector(".events");
  events.replaceChildren();
  if (!live) return;
  const tag = (text) => { const s = document.createElement("span"); s.textContent = text; counts.append(s); };
  for (const [label, n] of Object.entries(live.counts)) tag(label + ": " + n);
  for (const [zone, labels] of Object.entries(live.zones)) {
    const inside = Object.entries(labels).map(([l, n]) => l + " " + n).join(", ") || "empty";
    tag("zone " + zone + ": " + inside);
  }
  for (const [line, c] of Object.entries(live.lines)) tag("line " + line + ": in " + c.in + ", out " + c.out);
  for (const e of live.events.slice(0, 8)) {
    const item = document.createElement("li");
    const when = new Date(e.ts * 1000).toLocaleTimeString();
    item.textContent = when + " " + e.type + " #" + e.track_id + " " + e.label + (e.zones.length ? " in " + e.zones.join(", ") : "");
    events.append(item);
  }
}

async function refreshImage(name) {
  const entry = card(name);
  if (entry.busy) return;
  entry.busy = true;
  try {
    const response = await get("/cameras/" + encodeURIComponent(name) + "/snapshot.jpg");
    if (response.ok) {
      const url = URL.createObjectURL(await response.blob());
      entry.image.src = url;
      entry.image.dataset.frame = response.headers.get("X-Frame") || "";
      if (entry.url) URL.revokeObjectURL(entry.url);
      entry.url = url;
    }
  } catch (e) {
    // the next tick tries again
  } finally {
    entry.busy = false;
  }
}

async function refresh() {
  const problem = document.getElementById("problem");
  try {
    const body = await (await get("/api/cameras")).json();
    liveFps = Math.min(body.live_fps, 5);
    const names = Object.keys(body.cameras);
    for (const [name, entry] of cards) {
      if (!names.includes(name)) { entry.root.remove(); cards.delete(name); }
    }
    let streaming = 0;
    for (const name of names) {
      render(name, body.cameras[name]);
      if (body.cameras[name].state === "streaming") streaming += 1;
    }
    document.getElementById("summary").textContent = streaming + "/" + names.length + " cameras streaming";
    problem.hidden = true;
  } catch (e) {
    problem.hidden = false;
    problem.textContent = String(e.message || e);
  }
}

function images() {
  for (const name of cards.keys()) refreshImage(name);
  setTimeout(images, 1000 / liveFps);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("streamseg-token", document.getElementById("token").value);
  document.getElementById("login").hidden = true;
  refresh();
});

refresh();
setInterval(refresh, 1000);
images();
