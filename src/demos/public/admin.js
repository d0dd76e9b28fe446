/*
 * Admin demo: a live view of ferry through its Janus Admin API over HTTP
 * (list_sessions, list_handles, handle_info, VideoRoom list/listparticipants
 * through message_plugin, and ferry_status for pools, endpoints and engine
 * counters). No janus.js here: the Admin API is plain POSTs.
 */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { el } = FerryDemo;
  const log = FerryDemo.logger($('log'));
  document.querySelector('header')?.append(el('span', { id: 'updated' }));
  const STORAGE_KEY = 'ferry.demo.adminSecret';
  const intervalMs = Math.min(10_000, Math.max(500, Number(FerryDemo.query('interval')) || 1500));
  // Per-session detail costs a request per handle: past this many sessions only ids are listed.
  const DETAIL_LIMIT = 40;

  const demo = {
    base: null,
    running: false,
    /** The last failure shown to the user, or null. */
    error: null,
    ticks: 0,
    lastUpdate: 0,
    /** What the page shows, as fetched: { status, sessions:[{id, handles:[{id, info}]}], rooms:[{room, description, participants}] }. */
    snapshot: null,
  };
  // Exposed for people poking at the page in devtools, and for the browser tests.
  window.ferryAdmin = demo;

  let timer = null;
  let generation = 0;
  let previousEngine = null;
  const rendered = {};

  class AdminError extends Error {
    constructor(message, code) {
      super(message);
      this.code = code;
    }
  }

  // ---- Admin API ------------------------------------------------------------------------------

  let tx = 0;
  /**
   * One Admin request. The body goes as text/plain, a "simple" CORS request:
   * ferry reads any body as JSON, and the browser needs no preflight.
   */
  async function admin(path, request) {
    const body = JSON.stringify({ ...request, transaction: `admin-page-${++tx}`, admin_secret: demo.secret });
    let response;
    try {
      response = await fetch(demo.base + path, { method: 'POST', body, cache: 'no-store' });
    } catch (err) {
      throw new AdminError(`Admin API unreachable at ${demo.base} (${err.message ?? err})`, 'unreachable');
    }
    let json;
    try {
      json = await response.json();
    } catch {
      throw new AdminError(`Admin API at ${demo.base} answered HTTP ${response.status} without JSON`, 'unreachable');
    }
    if (json.janus === 'error') {
      const code = json.error?.code;
      if (code === 403) throw new AdminError(`Wrong admin secret: ferry answered 403 "${json.error.reason}"`, 'unauthorized');
      throw new AdminError(`${request.janus}: error ${code} ${json.error?.reason ?? ''}`.trim(), code);
    }
    return json;
  }

  /** A session or handle can vanish between list and info: such a request yields null, not a failure. */
  async function gone(promise) {
    try {
      return await promise;
    } catch (err) {
      if (err.code === 458 || err.code === 459) return null; // no such session / handle
      throw err;
    }
  }

  async function fetchSnapshot() {
    const [statusReply, sessionsReply, roomsReply] = await Promise.all([
      admin('', { janus: 'ferry_status' }),
      admin('', { janus: 'list_sessions' }),
      admin('', { janus: 'message_plugin', plugin: 'janus.plugin.videoroom', request: { request: 'list' } }).catch((err) => {
        if (err.code === 'unauthorized' || err.code === 'unreachable') throw err;
        return { response: { error: err.message } }; // no VideoRoom plugin in this ferry
      }),
    ]);
    const ids = [...(sessionsReply.sessions ?? [])].sort((a, b) => a - b);
    const sessions = await Promise.all(
      ids.map(async (id, i) => {
        if (i >= DETAIL_LIMIT) return { id, handles: null };
        const listed = await gone(admin(`/${id}`, { janus: 'list_handles' }));
        if (!listed) return null;
        const handles = await Promise.all(
          (listed.handles ?? []).map(async (hid) => {
            const info = await gone(admin(`/${id}/${hid}`, { janus: 'handle_info' }));
            return info ? { id: hid, info: info.info } : null;
          }),
        );
        return { id, handles: handles.filter(Boolean) };
      }),
    );
    const roomList = roomsReply.response?.list ?? [];
    const rooms = await Promise.all(
      roomList.map(async (r) => {
        const reply = await admin('', { janus: 'message_plugin', plugin: 'janus.plugin.videoroom', request: { request: 'listparticipants', room: r.room } });
        return { ...r, participants: reply.response?.participants ?? [] };
      }),
    );
    return { status: statusReply.status, sessions: sessions.filter(Boolean), rooms, roomsError: roomsReply.response?.error ?? null };
  }

  // ---- rendering ------------------------------------------------------------------------------

  /** Re-renders a section only when its data changed, so text stays selectable between ticks. */
  function section(id, data, render) {
    const key = JSON.stringify(data);
    if (rendered[id] === key) return;
    rendered[id] = key;
    $(id).replaceChildren(render(data));
  }

  function table(headers, rows, emptyText) {
    if (rows.length === 0) return el('p', { class: 'empty' }, emptyText);
    const t = el('table');
    const head = el('tr');
    for (const h of headers) head.append(el('th', typeof h === 'object' ? { class: h.cls } : {}, typeof h === 'object' ? h.text : h));
    t.append(head);
    for (const r of rows) t.append(r);
    return t;
  }

  function row(cells, attrs = {}) {
    const tr = el('tr', attrs);
    for (const c of cells) {
      if (c instanceof Node) {
        const td = el('td');
        td.append(c);
        tr.append(td);
      } else if (c && typeof c === 'object') {
        const td = el('td', c.attrs ?? {});
        if (c.node) td.append(c.node);
        else td.textContent = c.text ?? '';
        tr.append(td);
      } else tr.append(el('td', {}, c === null || c === undefined ? '–' : String(c)));
    }
    return tr;
  }

  function badge(text, cls) {
    return el('span', { class: `state ${cls}`.trim() }, text);
  }

  function age(sinceMs) {
    if (!Number.isFinite(sinceMs) || sinceMs < 1e12) return '–'; // not a wall-clock time
    const s = Math.max(0, Math.round((Date.now() - sinceMs) / 1000));
    return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  }

  /** A plugin's handle_info `plugin_specific`, in one line of its scalar fields. */
  function pluginSummary(specific) {
    if (!specific || typeof specific !== 'object') return '';
    const parts = [];
    for (const [k, v] of Object.entries(specific)) {
      if (v === null || v === undefined || typeof v === 'object' || v === '' || k === 'destroyed') continue;
      parts.push(`${k}=${v}`);
    }
    return parts.join(' · ');
  }

  function webrtcNode(webrtc, state) {
    const box = el('div');
    if (!webrtc) {
      box.append(badge(state === 'idle' ? 'no PeerConnection' : state, ''));
      return box;
    }
    box.append(badge(`pc: ${webrtc.state}`, FerryDemo.stateClass(webrtc.state)), ' ');
    const ice = webrtc.ice ?? {};
    box.append(badge(`ice: ${ice.selected ? 'selected' : 'checking'}`, ice.selected ? 'ok' : 'warn'), ' ');
    const dtls = webrtc.dtls ?? {};
    box.append(badge(`dtls: ${dtls.connected ? 'connected' : dtls.role ?? 'new'}`, dtls.connected ? 'ok' : 'warn'));
    const details = [];
    if (webrtc.port) details.push(`port ${webrtc.port}`);
    if (ice.selected) details.push(`peer ${ice.selected}`);
    if (dtls['srtp-profile']) details.push(dtls['srtp-profile']);
    for (const s of webrtc.streams ?? []) details.push(`mid ${s.mid} ${s.type}${s.codec ? ` ${s.codec}` : ''}`);
    if (details.length) box.append(el('div', { class: 'sub' }, details.join(' · ')));
    return box;
  }

  function renderSessions(sessions) {
    const rows = [];
    for (const s of sessions) {
      const actions = el('span');
      const destroy = el('button', { class: 'mini', type: 'button', 'data-session': String(s.id) }, 'destroy');
      destroy.onclick = () => act(`/${s.id}`, { janus: 'destroy_session' }, `session ${s.id} destroyed`);
      actions.append(destroy);
      const handles = s.handles;
      const transport = handles?.[0]?.info?.session_transport;
      rows.push(
        row(
          [
            { node: el('code', {}, String(s.id)) },
            { text: handles === null ? '(not fetched: too many sessions)' : `${handles.length} handle${handles.length === 1 ? '' : 's'}${transport ? ` · ${transport}` : ''}`, attrs: { colspan: '3' } },
            actions,
          ],
          { class: 'session' },
        ),
      );
      for (const h of handles ?? []) {
        const info = h.info ?? {};
        const hangup = el('button', { class: 'mini', type: 'button' }, 'hang up');
        hangup.disabled = !info.webrtc;
        hangup.onclick = () => act(`/${s.id}/${h.id}`, { janus: 'hangup_webrtc' }, `handle ${h.id}: PeerConnection hung up`);
        const detach = el('button', { class: 'mini', type: 'button' }, 'detach');
        detach.onclick = () => act(`/${s.id}/${h.id}`, { janus: 'detach_handle' }, `handle ${h.id} detached`);
        const buttons = el('span');
        buttons.append(hangup, ' ', detach);
        const plugin = el('div');
        plugin.append(el('div', {}, info.plugin ?? '?'));
        const summary = pluginSummary(info.plugin_specific);
        if (summary) plugin.append(el('div', { class: 'sub' }, summary));
        rows.push(row([{ text: '↳', attrs: { class: 'sub' } }, { node: el('code', {}, String(h.id)) }, plugin, webrtcNode(info.webrtc, info.state), buttons]));
      }
    }
    return table(['session', 'handle', 'plugin', 'PeerConnection / ICE / DTLS', ''], rows, 'No sessions.');
  }

  function renderRooms({ rooms, roomsError }) {
    if (roomsError) return el('p', { class: 'empty' }, `VideoRoom: ${roomsError}`);
    const rows = [];
    for (const r of rooms) {
      const people = el('div');
      if (r.participants.length === 0) people.append(el('span', { class: 'empty' }, 'nobody'));
      for (const p of r.participants) {
        const line = el('div');
        line.append(el('code', {}, String(p.id)), ` ${p.display ?? ''} `, badge(p.publisher ? 'publishing' : 'not publishing', p.publisher ? 'ok' : ''));
        if (p.talking) line.append(' ', badge('talking', 'ok'));
        people.append(line);
      }
      rows.push(row([{ node: el('code', {}, String(r.room)) }, r.description ?? '', { text: `${r.num_participants ?? r.participants.length}/${r.max_publishers ?? '?'}`, attrs: { class: 'num' } }, `${r.audiocodec ?? ''} ${r.videocodec ?? ''}`, people]));
    }
    return table(['room', 'description', { text: 'in/max', cls: 'num' }, 'codecs', 'participants'], rows, 'No rooms.');
  }

  function renderPools(pools) {
    if (!pools || pools.length === 0) return el('p', { class: 'empty' }, 'No port pools (no media engine).');
    const box = el('div');
    for (const p of pools) {
      box.append(el('div', {}, `${p.name}: ${p.range} · ${p.leased} leased · ${p.free} free`));
      // The age cell is refreshed every tick (updateAges), not only when the leases change.
      const rows = p.leases.map((l) => row([{ text: String(l.port), attrs: { class: 'num' } }, { node: el('code', {}, l.owner) }, { text: age(l.since), attrs: { class: 'num', 'data-since': String(l.since) } }]));
      box.append(table([{ text: 'port', cls: 'num' }, 'owner', { text: 'held', cls: 'num' }], rows, 'no leases'));
    }
    return box;
  }

  function updateAges() {
    for (const cell of document.querySelectorAll('[data-since]')) cell.textContent = age(Number(cell.dataset.since));
  }

  function renderThreads(threads) {
    if (!threads || threads.length === 0) return el('p', { class: 'empty' }, 'No media engine.');
    const num = (v) => ({ text: String(v), attrs: { class: 'num' } });
    const rows = threads.map((t) =>
      row([
        num(t.thread),
        num(Math.round(t.load_pps)),
        num(`${Math.round(t.busy * 100)} %`),
        num(t.endpoints),
        num(t.packets_in),
        num(t.packets_out),
        { text: String(t.drops), attrs: { class: t.drops ? 'num error' : 'num' } },
        num(t.queue_depth),
        { text: String(t.queue_overflows), attrs: { class: t.queue_overflows ? 'num error' : 'num' } },
        { text: t.coalescing_wakes ? 'every ms' : 'per hand-over', attrs: {} },
        num(t.cross_sent),
        num(t.cross_received),
      ]),
    );
    const cols = ['thread', 'packets/s', 'busy', 'endpoints', 'in', 'out', 'drops', 'queue', 'overflows', 'wakes', 'handed over', 'taken over'];
    return table(cols.map((text) => ({ text, cls: 'num' })), rows, 'No media threads.');
  }

  /** A cluster node's view (README "Cluster"): the nodes and their load, rooms owned, cascades in and out. */
  function renderCluster(cluster) {
    const box = el('div');
    box.append(el('div', {}, `node ${cluster.node_id} · media at ${cluster.advertise} · Redis ${cluster.redis} · lease ${cluster.lease_ttl_ms / 1000} s`));
    const num = (v) => ({ text: v === null || v === undefined ? '–' : String(v), attrs: { class: 'num' } });
    const nodes = (cluster.nodes ?? []).map((n) =>
      row([{ node: el('code', {}, n.node_id + (n.self ? ' (this)' : '')) }, n.advertise, num(n.load?.sessions), num(n.load?.ports_free), num(Math.round(n.load?.media_load_pps ?? 0))]),
    );
    box.append(table(['node', 'advertise', { text: 'sessions', cls: 'num' }, { text: 'ports free', cls: 'num' }, { text: 'packets/s', cls: 'num' }], nodes, 'no node seen'));
    const owners = (cluster.room_owners ?? []).map((o) => row([{ node: el('code', {}, String(o.room)) }, o.node, num(o.fence)]));
    box.append(table(['room', 'owner', { text: 'token', cls: 'num' }], owners, 'no rooms'));
    const cascades = [
      ...(cluster.cascades_in ?? []).map((c) => row(['in', { node: el('code', {}, String(c.feed)) }, c.from, num(c.port), num(c.bitrate_bps)])),
      ...(cluster.cascades_out ?? []).map((c) => row(['out', { node: el('code', {}, String(c.feed)) }, c.to, num(c.port), num(null)])),
    ];
    box.append(table(['cascade', 'feed', 'node', { text: 'port', cls: 'num' }, { text: 'bits/s', cls: 'num' }], cascades, 'no cascades'));
    return box;
  }

  function renderEngine(engine) {
    if (!engine) return el('p', { class: 'empty' }, 'No media engine.');
    const grid = el('div', { class: 'kv' });
    for (const k of Object.keys(engine).sort()) {
      grid.append(el('span', { class: isDrop(k) && engine[k] ? 'error' : '' }, k), el('span', { class: `num ${engine[k] ? 'nz' : 'zero'}` }, String(engine[k])));
    }
    return grid;
  }

  // Overview: one figure and one rolling plot per series.
  const SERIES = [
    ['sessions', 'sessions', '#3fb68b'],
    ['handles', 'handles', '#3fb68b'],
    ['peer_connections', 'PeerConnections', '#58a6ff'],
    ['native_endpoints', 'native endpoints', '#58a6ff'],
    ['port_leases', 'port leases', '#e5a03a'],
    ['queued_events', 'queued events', '#e5a03a'],
    ['rx_pps', 'engine rx packets/s', '#3fb68b'],
    ['tx_pps', 'engine tx packets/s', '#58a6ff'],
    ['drops_ps', 'engine drops/s', '#e5534b'],
  ];
  const plots = {};
  function buildCounters() {
    for (const [key, title, color] of SERIES) {
      const value = el('b', {}, '–');
      const name = el('div', { class: 'name' });
      name.append(el('span', {}, title), value);
      const canvas = el('canvas');
      const box = el('div', { class: 'counter', 'data-series': key });
      box.append(name, canvas);
      $('counters').append(box);
      plots[key] = { plot: new FerryDemo.Plot(canvas, color), value };
    }
  }

  /** Counters that mean a packet was dropped (each engine counter summed since its endpoint opened). */
  const isDrop = (k) => /Drops$|Failures$|Malformed$|^unknownSsrc$|^demuxUnknown$|^stunDropped$|^txFailed$|^srtpReplays$/.test(k);

  /** Per-second rates from two engine snapshots; endpoints closing lower the sums, which reads as 0, not negative. */
  function engineRates(engine, at) {
    const rates = { rx_pps: 0, tx_pps: 0, drops_ps: 0 };
    const prev = previousEngine;
    previousEngine = engine ? { engine, at } : null;
    if (!engine || !prev) return rates;
    const dt = (at - prev.at) / 1000;
    if (dt <= 0) return rates;
    const delta = (k) => Math.max(0, (engine[k] ?? 0) - (prev.engine[k] ?? 0)) / dt;
    rates.rx_pps = delta('rxPackets');
    rates.tx_pps = delta('txPackets');
    rates.drops_ps = Object.keys(engine).filter(isDrop).reduce((n, k) => n + delta(k), 0);
    return rates;
  }

  function render(snapshot, at) {
    const st = snapshot.status;
    const values = { ...st, ...engineRates(st.engine, at) };
    for (const [key] of SERIES) {
      const v = values[key];
      const p = plots[key];
      p.value.textContent = v === null || v === undefined ? 'n/a' : key.endsWith('ps') ? v.toFixed(0) : String(v);
      p.plot.push(typeof v === 'number' ? v : 0);
    }
    FerryDemo.setState($('session-count'), String(snapshot.sessions.length), snapshot.sessions.length ? 'ok' : '');
    FerryDemo.setState($('room-count'), String(snapshot.rooms.length), '');
    section('sessions', snapshot.sessions, renderSessions);
    section('rooms', { rooms: snapshot.rooms, roomsError: snapshot.roomsError }, renderRooms);
    section('pools', st.port_pools, renderPools);
    section('threads', st.media_threads, renderThreads);
    section('engine', st.engine, renderEngine);
    // Only a node of a cluster has the panel.
    $('cluster-panel').style.display = st.cluster ? '' : 'none';
    if (st.cluster) section('cluster', { ...st.cluster, cascades_in: (st.cluster.cascades_in ?? []).map((c) => ({ ...c, since: undefined })) }, renderCluster);
    updateAges();
    $('updated').textContent = `updated ${new Date(at).toLocaleTimeString()}`;
  }

  function showError(err) {
    const text = err ? String(err.message ?? err) : '';
    if (text && text !== demo.error) log(text, true);
    demo.error = text || null;
    $('error').textContent = text;
  }

  // ---- polling --------------------------------------------------------------------------------

  /** One refresh; the next is scheduled only after this one finished, so slow answers never pile up. */
  async function tick(gen) {
    if (gen !== generation) return;
    try {
      const snapshot = await fetchSnapshot();
      if (gen !== generation) return;
      const at = Date.now();
      demo.snapshot = snapshot;
      demo.ticks++;
      demo.lastUpdate = at;
      if (demo.error) log('Admin API reachable again');
      showError(null);
      FerryDemo.setState($('state'), 'live', 'ok');
      render(snapshot, at);
    } catch (err) {
      if (gen !== generation) return;
      showError(err);
      if (err.code === 'unauthorized') {
        // A wrong secret will not become right by retrying: wait for the user.
        FerryDemo.setState($('state'), 'unauthorized', 'bad');
        stop(false);
        return;
      }
      FerryDemo.setState($('state'), err.code === 'unreachable' ? 'unreachable' : 'error', 'bad');
    }
    if (gen === generation && demo.running) timer = setTimeout(() => tick(gen), intervalMs);
  }

  async function start() {
    stop(false);
    const secret = $('secret').value;
    demo.secret = secret;
    try {
      localStorage.setItem(STORAGE_KEY, secret);
    } catch {
      /* storage refused (private mode): the secret just is not remembered */
    }
    let config;
    try {
      config = await FerryDemo.config();
    } catch (err) {
      showError(new Error(`Cannot read ferry.json: ${err.message ?? err}`));
      FerryDemo.setState($('state'), 'unreachable', 'bad');
      return;
    }
    if (!config.admin) {
      showError(new Error('The Admin API over HTTP is disabled in this ferry (admin_http.enabled is false).'));
      FerryDemo.setState($('state'), 'no admin API', 'bad');
      return;
    }
    const path = config.admin.path.replace(/\/+$/, '');
    demo.base = `${location.protocol}//${location.hostname}:${config.admin.port}${path}`;
    $('endpoint').textContent = demo.base;
    demo.running = true;
    $('pause').disabled = false;
    $('pause').textContent = 'Pause';
    FerryDemo.setState($('state'), 'connecting', 'warn');
    log(`polling ${demo.base} every ${intervalMs} ms`);
    previousEngine = null;
    const gen = ++generation;
    await tick(gen);
  }

  function stop(byUser) {
    generation++;
    clearTimeout(timer);
    timer = null;
    demo.running = false;
    $('pause').textContent = 'Resume';
    $('pause').disabled = !byUser;
    if (byUser) FerryDemo.setState($('state'), 'paused', 'warn');
  }

  /** Admin actions from the tables; the next refresh shows their effect. */
  async function act(path, request, done) {
    try {
      await admin(path, request);
      log(done);
    } catch (err) {
      log(`${request.janus} failed: ${err.message ?? err}`, true);
    }
  }

  buildCounters();
  $('interval').textContent = `${(intervalMs / 1000).toFixed(1)} s`;
  $('form').onsubmit = (e) => {
    e.preventDefault();
    start();
  };
  $('pause').onclick = () => (demo.running ? stop(true) : start());
  $('show').onchange = () => ($('secret').type = $('show').checked ? 'text' : 'password');

  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    /* no storage */
  }
  const prefill = FerryDemo.query('secret') ?? stored;
  if (prefill !== null) {
    $('secret').value = prefill;
    start();
  } else {
    FerryDemo.setState($('state'), 'enter the admin secret', 'warn');
    $('secret').focus();
  }
})();
