/*
 * Shared by the ferry demo pages: connecting janus.js to this ferry, the
 * navigation bar, and live statistics (bitrate and packet-loss plots per RTP
 * stream, drawn from RTCPeerConnection.getStats once a second).
 * Plain browser JavaScript: janus.js and adapter.js are loaded as classic
 * scripts, exactly as Janus's own demos load them.
 */
'use strict';

const FerryDemo = (() => {
  const PAGES = [
    ['index', 'index.html', 'Demos'],
    ['echotest', 'echotest.html', 'EchoTest'],
    ['videoroom', 'videoroom.html', 'VideoRoom'],
    ['streaming', 'streaming.html', 'Streaming'],
    ['textroom', 'textroom.html', 'TextRoom'],
    ['sip', 'sip.html', 'SIP'],
    ['admin', 'admin.html', 'Admin'],
  ];

  function nav(current) {
    const el = document.getElementById('nav');
    if (!el || el.childElementCount > 0) return;
    for (const [id, href, title] of PAGES) {
      const a = document.createElement('a');
      a.href = href;
      a.textContent = title;
      if (id === current) a.className = 'here';
      el.appendChild(a);
    }
  }

  let configPromise = null;
  /** Ports and paths of this ferry (ferry.json, served beside the pages). */
  function config() {
    if (!configPromise) {
      configPromise = fetch('ferry.json', { cache: 'no-store' })
        .then((r) => {
          if (!r.ok) throw new Error(`ferry.json: HTTP ${r.status}`);
          return r.json();
        })
        .catch((err) => {
          configPromise = null; // the next attempt fetches again
          throw err;
        });
    }
    return configPromise;
  }

  function query(name) {
    return new URLSearchParams(location.search).get(name);
  }

  /** The Janus API URL: HTTP on this origin, or WebSocket with ?transport=ws. */
  async function serverUrl() {
    const c = await config();
    if (query('transport') === 'ws' && c.websocketPort) {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      return `${scheme}://${location.hostname}:${c.websocketPort}`;
    }
    return location.origin + c.janusPath;
  }

  let initPromise = null;
  function initJanus() {
    if (!initPromise) {
      initPromise = new Promise((resolve) => {
        Janus.init({ debug: query('debug') ? 'all' : ['warn', 'error'], dependencies: Janus.useDefaultDependencies(), callback: resolve });
      });
    }
    return initPromise;
  }

  /**
   * A connected Janus session. `iceServers: []` is deliberate: janus.js would
   * otherwise ask a public STUN server, and ferry is ICE-lite with its own
   * host candidates, so the browser needs no server-reflexive address.
   */
  async function connect(options = {}) {
    await initJanus();
    const server = await serverUrl();
    return new Promise((resolve, reject) => {
      const janus = new Janus({
        server,
        iceServers: [],
        success: () => resolve(janus),
        error: (err) => {
          if (options.onError) options.onError(err);
          reject(new Error(String(err)));
        },
        destroyed: () => options.onDestroyed && options.onDestroyed(),
      });
    });
  }

  function attach(janus, callbacks) {
    return new Promise((resolve, reject) => {
      janus.attach({
        opaqueId: `ferry-demo-${Janus.randomString(8)}`,
        ...callbacks,
        success: (handle) => resolve(handle),
        error: (err) => reject(new Error(String(err))),
      });
    });
  }

  /** Sets a state badge: cls is '', 'ok', 'warn' or 'bad'. */
  function setState(el, text, cls = '') {
    if (!el) return;
    el.textContent = text;
    el.className = `state ${cls}`.trim();
  }

  function stateClass(state) {
    if (state === 'connected' || state === 'completed' || state === 'up' || state === 'registered' || state === 'incall') return 'ok';
    if (state === 'failed' || state === 'down' || state === 'closed' || state === 'error') return 'bad';
    return 'warn';
  }

  function logger(el) {
    return (text, isError = false) => {
      const line = `${new Date().toLocaleTimeString()}  ${text}\n`;
      if (isError) console.error(text);
      if (!el) return;
      const span = document.createElement('span');
      if (isError) span.className = 'error';
      span.textContent = line;
      el.appendChild(span);
      while (el.childNodes.length > 200) el.removeChild(el.firstChild);
      el.scrollTop = el.scrollHeight;
    };
  }

  /** A rolling line plot on a canvas; scales to the largest value shown. */
  class Plot {
    constructor(canvas, color, points = 60) {
      this.canvas = canvas;
      this.color = color;
      this.points = points;
      this.values = [];
    }

    push(value) {
      this.values.push(Number.isFinite(value) ? value : 0);
      if (this.values.length > this.points) this.values.shift();
      this.draw();
    }

    draw() {
      const c = this.canvas;
      const w = (c.width = c.clientWidth || 220);
      const h = (c.height = c.clientHeight || 36);
      const g = c.getContext('2d');
      g.clearRect(0, 0, w, h);
      const max = Math.max(1e-9, ...this.values);
      g.strokeStyle = this.color;
      g.lineWidth = 1.5;
      g.beginPath();
      this.values.forEach((v, i) => {
        const x = (i / (this.points - 1)) * w;
        const y = h - 2 - (v / max) * (h - 4);
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
    }
  }

  function el(tag, attrs = {}, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /**
   * Live per-stream figures for one RTCPeerConnection: for every inbound and
   * outbound RTP stream, bitrate and packet-loss plots plus frames decoded.
   * `getPc` is read each tick, as janus.js replaces the PeerConnection on
   * hangup. The latest figures are kept in `latest` (keyed by stream) so
   * people and tests read the same numbers.
   */
  class StatsPanel {
    constructor(container, getPc, options = {}) {
      this.container = container;
      this.getPc = getPc;
      this.filter = options.filter || (() => true);
      this.rows = new Map();
      this.previous = new Map();
      this.latest = {};
      this.timer = setInterval(() => this.tick().catch(() => {}), options.intervalMs || 1000);
    }

    stop() {
      clearInterval(this.timer);
    }

    async tick() {
      const pc = this.getPc();
      if (!pc || pc.connectionState === 'closed') return;
      const report = await pc.getStats();
      const remoteLoss = new Map();
      report.forEach((s) => {
        if (s.type === 'remote-inbound-rtp' && s.localId) remoteLoss.set(s.localId, s.fractionLost);
      });
      const seen = new Set();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp') return;
        const inbound = s.type === 'inbound-rtp';
        // Simulcast: one outbound stream per rid.
        const key = `${inbound ? 'in' : 'out'} ${s.kind}${s.mid !== undefined ? ` mid ${s.mid}` : ''}${s.rid ? ` ${s.rid}` : ''}`;
        if (!this.filter(key, s)) return;
        seen.add(key);
        const prev = this.previous.get(key);
        this.previous.set(key, s);
        const bytes = inbound ? s.bytesReceived : s.bytesSent;
        let kbps = 0;
        let lossPct = 0;
        let fps = 0;
        if (prev) {
          const dt = (s.timestamp - prev.timestamp) / 1000;
          if (dt > 0) {
            kbps = ((bytes - (inbound ? prev.bytesReceived : prev.bytesSent)) * 8) / dt / 1000;
            if (inbound) {
              const lost = (s.packetsLost || 0) - (prev.packetsLost || 0);
              const got = (s.packetsReceived || 0) - (prev.packetsReceived || 0);
              lossPct = lost > 0 && lost + got > 0 ? (100 * lost) / (lost + got) : 0;
              if (s.framesDecoded !== undefined) fps = (s.framesDecoded - (prev.framesDecoded || 0)) / dt;
            } else {
              lossPct = 100 * (remoteLoss.get(s.id) || 0);
              if (s.framesEncoded !== undefined) fps = (s.framesEncoded - (prev.framesEncoded || 0)) / dt;
            }
          }
        }
        const figures = {
          kbps,
          lossPct,
          fps,
          packets: inbound ? s.packetsReceived : s.packetsSent,
          packetsLost: inbound ? s.packetsLost || 0 : undefined,
          framesDecoded: s.framesDecoded,
          framesEncoded: s.framesEncoded,
          codec: report.get(s.codecId)?.mimeType,
        };
        this.latest[key] = figures;
        this.render(key, figures);
      });
      for (const [key, row] of this.rows) {
        if (!seen.has(key)) {
          row.remove();
          this.rows.delete(key);
          this.previous.delete(key);
          delete this.latest[key];
        }
      }
    }

    render(key, f) {
      let row = this.rows.get(key);
      if (!row) {
        const block = el('div', { class: 'stream' });
        const head = el('div', { class: 'stream-head' });
        head.append(el('span', { class: 'stream-name' }, key), el('span', { class: 'figure' }));
        const rate = el('canvas', { title: 'kbit/s' });
        const loss = el('canvas', { title: 'packet loss %' });
        const plots = el('div', { class: 'plots' });
        plots.append(el('span', {}, 'kbit/s'), rate, el('span', {}, 'loss %'), loss);
        block.append(head, plots);
        this.container.appendChild(block);
        row = { remove: () => block.remove(), figure: head.lastChild, ratePlot: new Plot(rate, '#3fb68b'), lossPlot: new Plot(loss, '#e5534b') };
        this.rows.set(key, row);
      }
      const frames = f.framesDecoded !== undefined ? ` · ${f.fps.toFixed(0)} fps · ${f.framesDecoded} frames decoded` : f.framesEncoded !== undefined ? ` · ${f.fps.toFixed(0)} fps` : '';
      row.figure.textContent = `${f.kbps.toFixed(0)} kbit/s · ${f.lossPct.toFixed(1)} % loss · ${f.packets} packets${frames}${f.codec ? ` · ${f.codec}` : ''}`;
      row.ratePlot.push(f.kbps);
      row.lossPlot.push(f.lossPct);
    }
  }

  /** A chat list: `add(who, text, cls)` appends a line (who may be empty), scrolled to the end. */
  function chat(container) {
    return {
      add(who, text, cls = '') {
        const line = el('div', cls ? { class: cls } : {});
        if (who) line.append(el('span', { class: 'who' }, `${who}: `));
        line.append(document.createTextNode(text));
        container.appendChild(line);
        container.scrollTop = container.scrollHeight;
      },
    };
  }

  /**
   * A text box and its button: a click or Enter hands the box's text to `send`, and the box is
   * emptied unless `send` returns false (nothing to send it on yet). Returns the sending action.
   */
  function textInput(input, button, send) {
    const go = () => {
      const text = input.value;
      if (text && send(text) !== false) input.value = '';
    };
    button.onclick = go;
    input.onkeydown = (e) => {
      if (e.key === 'Enter') go();
    };
    return go;
  }

  /** Shows a track in a <video>/<audio> element, one MediaStream per element. */
  function playTrack(element, track) {
    let stream = element.srcObject;
    if (!(stream instanceof MediaStream)) {
      stream = new MediaStream();
      element.srcObject = stream;
    }
    for (const t of stream.getTracks()) if (t.kind === track.kind && t.id !== track.id) stream.removeTrack(t);
    if (!stream.getTrackById(track.id)) stream.addTrack(track);
    element.play().catch(() => {});
  }

  return { nav, config, query, connect, attach, setState, stateClass, logger, Plot, StatsPanel, playTrack, el, chat, textInput };
})();

/*
 * The page shell, so every page's chrome is written once: a page names itself
 * on the script tag that loads this file
 *   <script src="common.js" data-page="echotest" data-janus data-state defer></script>
 * and gets the header (its title, the navigation bar, a `#state` badge with
 * data-state), a Log panel (`#log`) after its last `.row` unless it has one
 * or no script,
 * then adapter.js and janus.js (data-janus) and its own `<page>.js`, loaded in
 * order (data-script="none" for a page without one).
 */
(() => {
  const tag = document.currentScript;
  const page = tag?.dataset.page;
  if (!page) return;
  const { el } = FerryDemo;
  const heading = tag.dataset.heading || document.title.replace(/^ferry · /, '');
  const header = el('header');
  header.append(el('h1', {}, heading), el('nav', { id: 'nav' }));
  if (tag.dataset.state !== undefined) header.append(el('span', { id: 'state', class: 'state' }, 'idle'));
  document.body.prepend(header);
  FerryDemo.nav(page);
  if (tag.dataset.script !== 'none' && !document.getElementById('log')) {
    const rows = document.querySelectorAll('main .row');
    const panel = el('div', { class: 'panel log-panel' });
    panel.append(el('h2', {}, 'Log'), el('div', { class: 'log', id: 'log' }));
    (rows[rows.length - 1] || document.querySelector('main') || document.body).append(panel);
  }
  const scripts = tag.dataset.janus !== undefined ? ['vendor/webrtc-adapter/adapter.js', 'vendor/janus-gateway/janus.js'] : [];
  if (tag.dataset.script !== 'none') scripts.push(tag.dataset.script || `${page}.js`);
  for (const src of scripts) {
    const s = document.createElement('script');
    s.src = src;
    s.async = false; // executed in the order appended
    document.body.append(s);
  }
})();
