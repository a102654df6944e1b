// The call panel in the browser. It speaks the server's panel protocol v1 over one websocket:
// a snapshot (or, after a reconnect, the deltas it missed from its last position), then deltas
// with sequence numbers; any gap makes it reconnect from its last position. Everything it shows
// comes from those frames; actions (presence, DND, pin/unpin/move, call) go over the same
// socket and are answered by `result` frames. No framework, no build step, no inline script.
"use strict";
(function () {
  const PROTOCOL = 1;
  const SILENCE_MS = 25000; // the server sends a heartbeat every 10 s

  // ---- state -------------------------------------------------------------------------------
  const S = {
    position: null, // last position applied (snapshot, delta or heartbeat)
    epoch: null,
    seq: 0,
    users: new Map(), // user id -> card
    departments: new Map(), // department id -> summary
    presenceStates: [],
    me: null,
    pinned: [],
    stats: null,
    skew: 0, // server time minus local time, ms
    csrf: null,
    socket: null,
    connected: false,
    retry: 0,
    nextId: 1,
    pending: new Map(), // action id -> {resolve}
    lastFrame: 0,
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };

  // ---- icons (inline SVG built through the DOM) ---------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  const PHONE = "M6.6 10.8c1.4 2.8 3.8 5.1 6.6 6.6l2.2-2.2c.3-.3.7-.4 1-.2 1.1.4 2.3.6 3.6.6.6 0 1 .4 1 1V20c0 .6-.4 1-1 1C10.6 21 3 13.4 3 4c0-.6.4-1 1-1h3.5c.6 0 1 .4 1 1 0 1.3.2 2.5.6 3.6.1.3 0 .7-.2 1l-2.4 2.2z";
  const SHAPES = {
    available: [["circle", { cx: 12, cy: 12, r: 10 }], ["path", { d: "M7 12.5l3.2 3.2L17 9", fill: "none", stroke: "#fff", "stroke-width": 2.4, "stroke-linecap": "round", "stroke-linejoin": "round" }]],
    busy: [["circle", { cx: 12, cy: 12, r: 10 }], ["rect", { x: 6.5, y: 10.6, width: 11, height: 2.8, rx: 1, fill: "#fff" }]],
    away: [["circle", { cx: 12, cy: 12, r: 10 }], ["path", { d: "M12 6.5V12l3.6 2.2", fill: "none", stroke: "#fff", "stroke-width": 2.2, "stroke-linecap": "round" }]],
    brb: [["circle", { cx: 12, cy: 12, r: 10 }], ["path", { d: "M8 8.5h5.5a3 3 0 0 1 0 6H9m0 0l2.3-2.3M9 14.5l2.3 2.3", fill: "none", stroke: "#fff", "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round" }]],
    lunch: [["circle", { cx: 12, cy: 12, r: 10 }], ["path", { d: "M7.5 9h7v4.5a3 3 0 0 1-3 3h-1a3 3 0 0 1-3-3zM14.5 10h1.2a1.8 1.8 0 0 1 0 3.6h-1.2", fill: "none", stroke: "#fff", "stroke-width": 1.8, "stroke-linejoin": "round" }]],
    calling: [["circle", { cx: 12, cy: 12, r: 10 }], ["path", { d: PHONE, fill: "#fff", transform: "translate(5.4 5.4) scale(.55)" }]],
    on_call: [["circle", { cx: 12, cy: 12, r: 10 }], ["path", { d: PHONE, fill: "#fff", transform: "translate(5.4 5.4) scale(.55)" }]],
    offline: [["circle", { cx: 12, cy: 12, r: 9, fill: "none", "stroke-width": 2.4 }]],
    inbound: [["path", { d: "M18 6L7 17m0 0h7.5M7 17V9.5", fill: "none", "stroke-width": 2.2, "stroke-linecap": "round", "stroke-linejoin": "round" }]],
    outbound: [["path", { d: "M6 18L17 7m0 0H9.5M17 7v7.5", fill: "none", "stroke-width": 2.2, "stroke-linecap": "round", "stroke-linejoin": "round" }]],
    voicemail: [["circle", { cx: 6.5, cy: 13, r: 3.5, fill: "none", "stroke-width": 2 }], ["circle", { cx: 17.5, cy: 13, r: 3.5, fill: "none", "stroke-width": 2 }], ["path", { d: "M6.5 16.5h11", "stroke-width": 2 }]],
    phone: [["path", { d: PHONE }]],
    plus: [["path", { d: "M12 5v14M5 12h14", "stroke-width": 2.4, "stroke-linecap": "round" }]],
    close: [["path", { d: "M6.5 6.5l11 11m0-11l-11 11", "stroke-width": 2.4, "stroke-linecap": "round" }]],
    grip: [["path", { d: "M9 6h.01M9 12h.01M9 18h.01M15 6h.01M15 12h.01M15 18h.01", "stroke-width": 3, "stroke-linecap": "round" }]],
  };
  function icon(name, cls) {
    const s = document.createElementNS(SVG, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("class", "icon icon-" + name + (cls ? " " + cls : ""));
    for (const [tag, attrs] of SHAPES[name] || []) {
      const n = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
      s.appendChild(n);
    }
    return s;
  }

  // ---- what a card shows ---------------------------------------------------------------------
  // The icon: the line first (offline, on a call, ringing/calling), then the chosen presence.
  function statusOf(card) {
    if (!card) return { icon: "offline", label: "Offline" };
    const p = card.presence;
    switch (card.status) {
      case "offline": return { icon: "offline", label: "Offline" };
      case "on_call": return { icon: "on_call", label: "On a call" };
      case "calling": {
        const ringing = (card.calls || []).some((c) => c.state === "ringing");
        return { icon: "calling", label: ringing ? "Ringing…" : "Calling…" };
      }
      case "busy": return { icon: "busy", label: p && p.state_type === "dnd" ? p.label : "Busy (DND)" };
      case "away": {
        const label = p ? p.label : "Away";
        const l = (label + " " + (p ? p.state : "")).toLowerCase();
        if (l.includes("lunch")) return { icon: "lunch", label };
        if (l.includes("right back") || l.includes("brb")) return { icon: "brb", label };
        return { icon: "away", label };
      }
      default: return { icon: "available", label: p ? p.label : "Available" };
    }
  }

  function statusIcon(card) {
    const st = statusOf(card);
    const wrap = el("span", "status-icon s-" + st.icon);
    wrap.title = st.label;
    wrap.appendChild(icon(st.icon));
    return wrap;
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + two(m) : m) + ":" + two(sec);
  }
  const serverNow = () => Date.now() + S.skew;

  function peerText(peer) {
    if (!peer) return "unknown";
    const name = peer.name || "";
    const num = peer.extension || peer.number || "";
    if (name && num && name !== num) return name + " (" + num + ")";
    return name || num || "unknown";
  }

  // ---- rendering ---------------------------------------------------------------------------
  let renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderMe();
      renderUsers();
      renderPinned();
      renderStats();
    });
  }

  function renderMe() {
    const me = S.me;
    const sel = $("presence");
    const wanted = me && me.presence ? me.presence.state : "";
    if (sel.dataset.built !== String(S.presenceStates.length)) {
      sel.replaceChildren();
      if (!wanted) sel.appendChild(new Option("Set status…", ""));
      for (const p of S.presenceStates) sel.appendChild(new Option(p.label, p.state));
      sel.dataset.built = String(S.presenceStates.length);
    }
    if (wanted && ![...sel.options].some((o) => o.value === wanted)) sel.appendChild(new Option(me.presence.label, wanted));
    if (document.activeElement !== sel) sel.value = wanted;
    sel.disabled = !S.connected || S.presenceStates.length === 0;
    const dnd = $("dnd");
    dnd.checked = !!(me && me.dnd);
    dnd.disabled = !S.connected;
    $("me-status").replaceChildren(statusIcon(me));
    const sip = $("conn-sip");
    const registered = me && me.devices > 0;
    sip.dataset.state = registered ? "up" : "idle";
    sip.title = registered ? "Phone (SIP): your phone is registered" : "Phone (SIP): no phone of yours is registered";
  }

  function matchesFilter(card) {
    const q = $("filter").value.trim().toLowerCase();
    const dept = $("dept-filter").value;
    if (dept && card.department !== dept) return false;
    if (!q) return true;
    const d = S.departments.get(card.department);
    return [card.name, card.extension, card.user, card.department, d && d.name]
      .some((v) => v && String(v).toLowerCase().includes(q));
  }

  function sortedUsers() {
    return [...S.users.values()].sort((a, b) =>
      (a.extension || a.user).localeCompare(b.extension || b.user, undefined, { numeric: true }));
  }

  function deptName(id) {
    const d = S.departments.get(id);
    return d ? d.name : id || "";
  }

  // A card's name, extension and department.
  function whoOf(card) {
    const who = el("div", "who");
    who.appendChild(el("span", "name", card.name));
    const meta = el("span", "meta");
    meta.appendChild(el("span", "ext", card.extension || ""));
    meta.appendChild(el("span", "dept", deptName(card.department)));
    who.appendChild(meta);
    return who;
  }

  function renderUsers() {
    const list = $("users-list");
    const pinned = new Set(S.pinned);
    const rows = [];
    for (const card of sortedUsers()) {
      if (!matchesFilter(card)) continue;
      const li = el("li", "user-row");
      li.dataset.user = card.user;
      li.draggable = true;
      li.appendChild(statusIcon(card));
      li.appendChild(whoOf(card));
      if ((card.calls || []).length) li.appendChild(icon(card.calls[0].direction, "dir"));
      const add = el("button", "icon-button add");
      add.type = "button";
      add.dataset.user = card.user;
      add.title = pinned.has(card.user) ? "Pinned" : "Pin at the end";
      add.setAttribute("aria-label", (pinned.has(card.user) ? "Pinned: " : "Pin ") + card.name);
      add.disabled = pinned.has(card.user);
      add.appendChild(icon("plus"));
      li.appendChild(add);
      rows.push(li);
    }
    list.replaceChildren(...rows);
    $("users-count").textContent = String(S.users.size);
    const df = $("dept-filter");
    const ids = [...S.departments.keys()];
    if (df.dataset.built !== ids.join(",")) {
      const keep = df.value;
      df.replaceChildren(new Option("All departments", ""));
      for (const id of ids) df.appendChild(new Option(deptName(id), id));
      df.value = ids.includes(keep) ? keep : "";
      df.dataset.built = ids.join(",");
    }
  }

  function callRow(call) {
    const li = el("li", "call c-" + call.state);
    li.appendChild(icon(call.direction, "dir"));
    const text = el("span", "peer", peerText(call.peer));
    li.appendChild(text);
    const st = { ringing: "ringing", calling: "calling", talking: "", held: "on hold" }[call.state] || "";
    if (st) li.appendChild(el("span", "call-state", st));
    const timer = el("span", "timer");
    timer.dataset.since = call.answered_at || call.started_at;
    timer.textContent = fmtDuration(serverNow() - Date.parse(timer.dataset.since));
    li.appendChild(timer);
    li.title = (call.direction === "inbound" ? "Inbound call from " : "Outbound call to ") + peerText(call.peer);
    return li;
  }

  function renderPinned() {
    const box = $("pinned-cards");
    const cards = [];
    const visible = S.pinned.filter((id) => S.users.has(id));
    for (const id of visible) {
      const card = S.users.get(id);
      const st = statusOf(card);
      const c = el("article", "card s-" + st.icon);
      c.dataset.user = id;
      c.draggable = true;
      const head = el("div", "card-head");
      head.appendChild(statusIcon(card));
      head.appendChild(whoOf(card));
      const unpin = el("button", "icon-button unpin");
      unpin.type = "button";
      unpin.dataset.user = id;
      unpin.title = "Unpin";
      unpin.setAttribute("aria-label", "Unpin " + card.name);
      unpin.appendChild(icon("close"));
      head.appendChild(unpin);
      c.appendChild(head);

      const status = el("div", "card-status");
      status.appendChild(el("span", "status-label", st.label));
      if (card.presence && card.presence.label !== st.label) status.appendChild(el("span", "presence-label", card.presence.label));
      if (card.dnd && card.status !== "busy") status.appendChild(el("span", "badge dnd", "DND"));
      if (card.presence && card.presence.message) status.appendChild(el("span", "presence-message", "“" + card.presence.message + "”"));
      c.appendChild(status);

      const calls = card.calls || [];
      if (calls.length) {
        const ul = el("ul", "calls");
        for (const call of calls) ul.appendChild(callRow(call));
        c.appendChild(ul);
      }

      const foot = el("div", "card-foot");
      const vm = el("span", "voicemail");
      const n = card.voicemail ? card.voicemail.new : 0;
      vm.classList.toggle("has-new", n > 0);
      vm.title = card.voicemail ? n + " new voicemail message" + (n === 1 ? "" : "s") : "No voicemail box";
      vm.appendChild(icon("voicemail"));
      vm.appendChild(el("span", "vm-count", card.voicemail ? String(n) : "–"));
      foot.appendChild(vm);
      const devices = el("span", "devices", card.devices > 0 ? card.devices + " device" + (card.devices === 1 ? "" : "s") : "no device");
      foot.appendChild(devices);
      const call = el("button", "icon-button call-button");
      call.type = "button";
      call.dataset.call = card.extension || id;
      call.title = "Call " + card.name;
      call.setAttribute("aria-label", "Call " + card.name);
      call.appendChild(icon("phone"));
      foot.appendChild(call);
      c.appendChild(foot);
      cards.push(c);
    }
    const end = el("div", "drop-end");
    end.textContent = "Drop here to place at the end";
    cards.push(end);
    box.replaceChildren(...cards);
    $("pinned-empty").hidden = visible.length > 0;
    $("pinned-count").textContent = visible.length ? String(visible.length) : "";
  }

  function renderStats() {
    let online = 0, offline = 0, onCall = 0;
    const list = [];
    for (const d of S.departments.values()) {
      online += d.online; offline += d.offline; onCall += d.on_call;
      const li = el("li");
      li.appendChild(el("span", "dname", d.name));
      li.appendChild(el("span", "dcount", d.online + "/" + d.total + " online · " + d.on_call + " on call"));
      list.push(li);
    }
    $("departments").replaceChildren(...list);
    $("stat-monitored").textContent = String(S.users.size);
    $("stat-connected").textContent = String(online);
    $("stat-disconnected").textContent = String(offline);
    $("stat-oncall").textContent = String(onCall);
    const bars = (S.stats && S.stats.calls_per_minute) || [];
    const max = Math.max(1, ...bars.map((b) => b.calls));
    const graph = $("graph");
    const nodes = bars.map((b) => {
      const bar = el("span", "bar" + (b.calls ? "" : " zero"));
      bar.style.height = Math.max(2, Math.round((b.calls / max) * 100)) + "%";
      bar.title = new Date(b.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + " — " + b.calls + " call" + (b.calls === 1 ? "" : "s");
      return bar;
    });
    graph.replaceChildren(...nodes);
    $("graph-max").textContent = "max " + Math.max(0, ...bars.map((b) => b.calls));
  }

  // Timers tick without re-rendering anything else.
  setInterval(() => {
    for (const t of document.querySelectorAll(".timer[data-since]")) {
      t.textContent = fmtDuration(serverNow() - Date.parse(t.dataset.since));
    }
  }, 1000);

  // ---- connection ----------------------------------------------------------------------------
  function setConnection(state) {
    const c = $("conn-data");
    c.dataset.state = state;
    c.title = { up: "Data: live", connecting: "Data: connecting…", down: "Data: disconnected — reconnecting" }[state];
    S.connected = state === "up";
    renderMe();
  }

  function banner(text) {
    const b = $("banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  let toastTimer = null;
  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  function connect() {
    setConnection("connecting");
    let url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/panel/ws?v=" + PROTOCOL;
    if (S.position !== null && S.epoch) url += "&from=" + S.position + "&epoch=" + encodeURIComponent(S.epoch);
    const ws = new WebSocket(url);
    S.socket = ws;
    S.seq = 0;
    let opened = false;
    ws.onopen = () => { opened = true; S.lastFrame = Date.now(); };
    ws.onmessage = (event) => {
      if (S.socket !== ws) return;
      S.lastFrame = Date.now();
      let frame;
      try { frame = JSON.parse(event.data); } catch (_) { return resync(ws, "unreadable frame"); }
      if (frame.seq !== S.seq + 1) return resync(ws, "sequence gap");
      S.seq = frame.seq;
      handle(ws, frame);
    };
    ws.onclose = (event) => {
      if (S.socket !== ws) return;
      S.socket = null;
      setConnection("down");
      for (const p of S.pending.values()) p.resolve({ ok: false, error: { message: "the connection dropped" } });
      S.pending.clear();
      if (event.code === 4001) { location.assign("/login"); return; }
      if (event.code === 4003) { banner("Your access to the call panel was revoked."); return; }
      if (!opened) checkSession();
      S.retry = Math.min(S.retry + 1, 6);
      setTimeout(connect, Math.min(5000, 250 * 2 ** S.retry));
    };
  }

  async function checkSession() {
    try {
      const r = await fetch("/api/v1/me", { credentials: "same-origin" });
      if (r.status === 401) location.assign("/login");
    } catch (_) { /* server down: keep retrying */ }
  }

  function resync(ws, why) {
    console.warn("panel: resynchronising:", why);
    try { ws.close(4000, "resync"); } catch (_) { /* closing anyway */ }
  }

  // A socket that went quiet (no heartbeat) is given up and reopened.
  setInterval(() => {
    if (S.socket && S.socket.readyState === WebSocket.OPEN && Date.now() - S.lastFrame > SILENCE_MS) {
      resync(S.socket, "silence");
    }
  }, 5000);

  function applyCards(list) {
    for (const card of list) S.users.set(card.user, card);
  }

  function handle(ws, f) {
    switch (f.type) {
      case "snapshot": {
        const s = f.snapshot;
        S.users = new Map();
        applyCards(s.users);
        S.departments = new Map(s.departments.map((d) => [d.department, d]));
        S.presenceStates = s.presence_states || [];
        S.me = f.me;
        S.pinned = f.pinned || [];
        S.stats = f.stats;
        S.position = f.position;
        S.epoch = f.epoch;
        S.skew = Date.parse(f.now) - Date.now();
        S.retry = 0;
        banner("");
        document.body.dataset.sync = "snapshot";
        setConnection("up");
        break;
      }
      case "delta": {
        if (f.from !== S.position) return resync(ws, "delta from " + f.from + " at " + S.position);
        const d = f.delta;
        applyCards(d.users);
        for (const id of d.removed_users) S.users.delete(id);
        for (const dep of d.departments) S.departments.set(dep.department, dep);
        for (const id of d.removed_departments) S.departments.delete(id);
        if (d.presence_states) S.presenceStates = d.presence_states;
        S.position = f.to;
        if (!S.connected) {
          // The first frame after a reconnect: caught up from the last position.
          S.retry = 0;
          document.body.dataset.sync = "deltas";
          setConnection("up");
        }
        break;
      }
      case "me": S.me = f.card; break;
      case "pinned": S.pinned = f.cards; break;
      case "stats": S.stats = f.stats; break;
      case "heartbeat":
        S.position = f.position;
        S.skew = Date.parse(f.now) - Date.now();
        break;
      case "result": {
        const p = S.pending.get(f.id);
        if (p) { S.pending.delete(f.id); p.resolve(f); }
        else if (!f.ok && f.error) toast(f.error.message);
        break;
      }
      case "closing":
        if (f.code === 4008) console.warn("panel: the server found this tab too slow; reconnecting");
        break;
      default: break;
    }
    render();
  }

  // Sends an action and resolves with its result frame.
  function act(frame) {
    return new Promise((resolve) => {
      const ws = S.socket;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        resolve({ ok: false, error: { message: "not connected" } });
        return;
      }
      const id = S.nextId++;
      S.pending.set(id, { resolve });
      ws.send(JSON.stringify(Object.assign({ id }, frame)));
    });
  }

  async function actOrToast(frame) {
    const r = await act(frame);
    if (!r.ok) toast(r.error ? cap(r.error.message) : "That did not work.");
    return r;
  }
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  // ---- pinning and dragging ------------------------------------------------------------------
  function pin(user, before) {
    if (!S.pinned.includes(user)) {
      const at = before ? S.pinned.indexOf(before) : -1;
      const next = S.pinned.slice();
      next.splice(at < 0 ? next.length : at, 0, user);
      S.pinned = next; // shown at once; the server's `pinned` frame confirms it
      render();
    }
    return actOrToast({ type: "pin", user, before: before || null });
  }

  function move(user, before) {
    if (user === before) return;
    const next = S.pinned.filter((u) => u !== user);
    const at = before ? next.indexOf(before) : -1;
    next.splice(at < 0 ? next.length : at, 0, user);
    S.pinned = next;
    render();
    return actOrToast({ type: "move", user, before: before || null });
  }

  function unpin(user) {
    S.pinned = S.pinned.filter((u) => u !== user);
    render();
    return actOrToast({ type: "unpin", user });
  }

  let dragging = null; // {kind: "user"|"card", id}
  document.addEventListener("dragstart", (e) => {
    const row = e.target.closest && e.target.closest(".user-row, .card");
    if (!row) return;
    dragging = { kind: row.classList.contains("card") ? "card" : "user", id: row.dataset.user };
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", dragging.id);
    document.body.classList.add("dragging");
    row.classList.add("drag-source");
  });
  document.addEventListener("dragend", (e) => {
    dragging = null;
    document.body.classList.remove("dragging");
    for (const n of document.querySelectorAll(".drag-source, .drop-before")) n.classList.remove("drag-source", "drop-before");
    if (e.target && e.target.classList) e.target.classList.remove("drag-source");
  });
  const pinnedZone = () => document.querySelector(".pinned");
  document.addEventListener("dragover", (e) => {
    if (!dragging) return;
    const zone = e.target.closest && e.target.closest(".pinned");
    if (!zone) return; // cards cannot go back to the users list
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    for (const n of document.querySelectorAll(".drop-before")) n.classList.remove("drop-before");
    const target = e.target.closest(".card, .drop-end");
    if (target) target.classList.add("drop-before");
  });
  document.addEventListener("drop", (e) => {
    if (!dragging) return;
    const zone = e.target.closest && e.target.closest(".pinned");
    if (!zone || zone !== pinnedZone()) return;
    e.preventDefault();
    const target = e.target.closest(".card");
    const before = target ? target.dataset.user : null;
    const { kind, id } = dragging;
    dragging = null;
    if (kind === "user" && !S.pinned.includes(id)) pin(id, before);
    else move(id, before);
  });

  // ---- controls ------------------------------------------------------------------------------
  document.addEventListener("click", (e) => {
    const add = e.target.closest("button.add");
    if (add && !add.disabled) { pin(add.dataset.user, null); return; }
    const un = e.target.closest("button.unpin");
    if (un) { unpin(un.dataset.user); return; }
    const call = e.target.closest("button.call-button");
    if (call) {
      actOrToast({ type: "call", to: call.dataset.call }).then((r) => { if (r.ok) toast("Calling… your phone rings first."); });
    }
  });
  $("filter").addEventListener("input", render);
  $("dept-filter").addEventListener("change", render);
  $("presence").addEventListener("change", (e) => {
    const state = e.target.value;
    if (state) actOrToast({ type: "set_presence", state });
  });
  $("dnd").addEventListener("change", (e) => { actOrToast({ type: "set_dnd", enabled: e.target.checked }); });
  $("signout").addEventListener("click", async () => {
    try {
      await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": S.csrf || "" } });
    } finally {
      location.assign("/login");
    }
  });

  // ---- start -----------------------------------------------------------------------------------
  (async function start() {
    try {
      const r = await fetch("/api/v1/me", { credentials: "same-origin" });
      if (r.status === 401) { location.assign("/login"); return; }
      if (r.ok) {
        const me = await r.json();
        S.csrf = me.csrf || null;
        $("me-name").textContent = me.name + " · " + me.extension;
        $("tenant-name").textContent = me.tenant_name || me.tenant;
      }
    } catch (_) { /* the socket will retry */ }
    render();
    connect();
  })();
})();
