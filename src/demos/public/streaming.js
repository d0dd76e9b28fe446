/* Streaming demo: janus.plugin.streaming with janus.js, as in Janus's streaming demo (list, info, watch, start, stop). */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const log = FerryDemo.logger($('log'));
  const demo = { janus: null, handle: null, stats: null, events: [], mountpoints: [], watching: null };
  // Exposed for people poking at the page in devtools, and for the browser tests.
  window.ferryStreaming = demo;

  /** A synchronous request on the handle (list, info): its plugindata. */
  function request(message) {
    return new Promise((resolve, reject) => demo.handle.send({ message, success: resolve, error: (e) => reject(new Error(String(e))) }));
  }

  async function connect() {
    if (demo.handle) return;
    FerryDemo.setState($('state'), 'connecting', 'warn');
    demo.janus = await FerryDemo.connect({ onDestroyed: () => FerryDemo.setState($('state'), 'session ended', 'bad') });
    demo.handle = await FerryDemo.attach(demo.janus, {
      plugin: 'janus.plugin.streaming',
      iceState: (state) => FerryDemo.setState($('ice'), `ice: ${state}`, FerryDemo.stateClass(state)),
      webrtcState: (up, reason) => log(`PeerConnection ${up ? 'up' : 'down'}${reason ? ` (${reason})` : ''}`),
      onmessage: (msg, jsep) => {
        demo.events.push(msg);
        if (msg.error) log(`error ${msg.error_code}: ${msg.error}`, true);
        const result = msg.result || {};
        if (result.status) {
          log(`status: ${result.status}`);
          FerryDemo.setState($('state'), result.status, result.status === 'started' ? 'ok' : result.status === 'stopped' ? 'bad' : 'warn');
          if (result.status === 'stopped') stopped();
        }
        if (result.substream !== undefined) log(`now receiving substream ${result.substream}`);
        if (jsep) {
          // Nothing is captured: the offered audio and video are accepted receive-only.
          demo.handle.createAnswer({
            jsep,
            tracks: [{ type: 'data' }],
            success: (answer) => demo.handle.send({ message: { request: 'start' }, jsep: answer }),
            error: (err) => log(`createAnswer: ${err?.message ?? err}`, true),
          });
        }
      },
      onremotetrack: (track, mid, on) => {
        log(`remote ${track.kind} track ${on ? 'added' : 'removed'} (mid ${mid})`);
        if (on) FerryDemo.playTrack($('remote'), track);
      },
      oncleanup: () => log('PeerConnection closed'),
    });
    FerryDemo.setState($('state'), 'connected', 'ok');
    log(`attached to streaming, handle ${demo.handle.getId()}`);
  }

  async function refresh() {
    try {
      await connect();
      const list = await request({ request: 'list' });
      demo.mountpoints = list.list || [];
      const select = $('list');
      const chosen = select.value;
      select.textContent = '';
      for (const mp of demo.mountpoints) {
        const o = FerryDemo.el('option', { value: String(mp.id) }, `${mp.id}: ${mp.description}${mp.enabled ? '' : ' (disabled)'}`);
        select.appendChild(o);
      }
      const wanted = FerryDemo.query('id') || chosen;
      if (wanted && demo.mountpoints.some((m) => String(m.id) === String(wanted))) select.value = String(wanted);
      await showInfo();
    } catch (err) {
      log(String(err.message ?? err), true);
    }
  }

  async function showInfo() {
    const id = Number($('list').value);
    if (!id) return;
    const reply = await request({ request: 'info', id });
    const info = reply.info;
    if (!info) return;
    const box = $('info');
    box.textContent = '';
    const table = FerryDemo.el('table');
    table.appendChild(FerryDemo.el('tr')).append(...['mid', 'type', 'codec', 'pt', 'port', 'last media'].map((h) => FerryDemo.el('th', {}, h)));
    for (const m of info.media) {
      const tr = FerryDemo.el('tr');
      tr.append(...[m.mid, m.type, m.codec, m.pt, m.port ?? '(secret)', m.age_ms !== undefined ? `${m.age_ms} ms ago` : 'never'].map((v) => FerryDemo.el('td', {}, String(v))));
      table.appendChild(tr);
    }
    box.append(FerryDemo.el('p', {}, `${info.description} · ${info.viewers} viewer(s) · ${info.enabled ? 'enabled' : 'disabled'}`), table);
    $('layers').style.display = info.media.some((m) => m.simulcast) ? 'inline' : 'none';
    const host = location.hostname === 'localhost' ? '127.0.0.1' : location.hostname;
    const audio = info.media.find((m) => m.type === 'audio' && m.port);
    const video = info.media.find((m) => m.type === 'video' && m.port);
    const lines = ['ffmpeg -re -f lavfi -i testsrc=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000'];
    if (video) lines.push(`  -map 0:v -c:v libvpx -deadline realtime -b:v 1M -g 30 -payload_type ${video.pt} -f rtp rtp://${host}:${video.port}?pkt_size=1200`);
    if (audio) lines.push(`  -map 1:a -c:a libopus -b:a 64k -payload_type ${audio.pt} -f rtp rtp://${host}:${audio.port}`);
    $('cmd').textContent = video || audio ? lines.join(' \\\n') : '(the ports are shown with the mountpoint secret only)';
  }

  async function watch() {
    const id = Number($('list').value);
    if (!id) return;
    $('watch').disabled = true;
    try {
      await connect();
      demo.watching = id;
      demo.handle.send({ message: { request: 'watch', id } });
      demo.stats ??= new FerryDemo.StatsPanel($('stats'), () => demo.handle?.webrtcStuff?.pc);
      $('stop').disabled = false;
    } catch (err) {
      log(String(err.message ?? err), true);
      $('watch').disabled = false;
    }
  }

  function stopped() {
    demo.watching = null;
    $('watch').disabled = false;
    $('stop').disabled = true;
  }

  function stop() {
    if (!demo.handle) return;
    demo.handle.send({ message: { request: 'stop' } });
    demo.handle.hangup();
    stopped();
  }

  $('refresh').onclick = refresh;
  $('watch').onclick = watch;
  $('stop').onclick = stop;
  $('list').onchange = () => showInfo().catch((err) => log(String(err.message ?? err), true));
  $('substream').onchange = () => demo.handle?.send({ message: { request: 'configure', substream: Number($('substream').value) } });
  refresh().then(() => {
    if (FerryDemo.query('autostart')) watch();
  });
  setInterval(() => {
    if (demo.handle) showInfo().catch(() => {});
  }, 2000);
})();
