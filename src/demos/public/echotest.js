/* EchoTest demo: janus.plugin.echotest with janus.js, as in Janus's echotest demo. */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const log = FerryDemo.logger($('log'));
  const demo = { janus: null, handle: null, stats: null, events: [], data: [] };
  const dataLog = FerryDemo.chat($('datalog'));
  // Exposed for people poking at the page in devtools, and for the browser tests.
  window.ferryEchoTest = demo;

  async function start() {
    $('start').disabled = true;
    const audio = $('audio').checked;
    const video = $('video').checked;
    try {
      FerryDemo.setState($('state'), 'connecting', 'warn');
      demo.janus = await FerryDemo.connect({ onDestroyed: () => FerryDemo.setState($('state'), 'session ended', 'bad') });
      demo.handle = await FerryDemo.attach(demo.janus, {
        plugin: 'janus.plugin.echotest',
        iceState: (state) => FerryDemo.setState($('ice'), `ice: ${state}`, FerryDemo.stateClass(state)),
        webrtcState: (up, reason) => {
          FerryDemo.setState($('state'), up ? 'webrtc up' : `webrtc down${reason ? `: ${reason}` : ''}`, up ? 'ok' : 'bad');
          log(`PeerConnection ${up ? 'up' : 'down'}${reason ? ` (${reason})` : ''}`);
        },
        mediaState: (medium, on, mid) => {
          FerryDemo.setState($('media'), `media: ${medium} ${on ? 'flowing' : 'stopped'}`, on ? 'ok' : 'warn');
          log(`ferry ${on ? 'receives' : 'stopped receiving'} ${medium} (mid ${mid})`);
        },
        slowLink: (uplink, lost, mid) => log(`slowlink: ${uplink ? 'uplink' : 'downlink'}, ${lost} packets lost (mid ${mid})`),
        onmessage: (msg, jsep) => {
          demo.events.push(msg);
          if (msg.error) log(`error ${msg.error_code}: ${msg.error}`, true);
          for (const r of msg.recordings ?? []) log(`recording ${r.type} (${r.codec}) to ${r.path}`);
          if (jsep) demo.handle.handleRemoteJsep({ jsep });
        },
        onlocaltrack: (track, on) => {
          if (on && track.kind === 'video') FerryDemo.playTrack($('local'), track);
        },
        onremotetrack: (track, mid, on) => {
          log(`remote ${track.kind} track ${on ? 'added' : 'removed'} (mid ${mid})`);
          if (on) FerryDemo.playTrack($('remote'), track);
        },
        ondataopen: (label) => {
          FerryDemo.setState($('datastate'), `open: ${label}`, 'ok');
          $('datatext').disabled = $('datasend').disabled = false;
        },
        ondata: (data, label) => {
          demo.data.push(data);
          dataLog.add(`echoed on ${label}`, String(data));
        },
        oncleanup: () => {
          log('PeerConnection closed');
          FerryDemo.setState($('datastate'), 'closed');
          $('datatext').disabled = $('datasend').disabled = true;
        },
      });
      log(`attached to echotest, handle ${demo.handle.getId()}`);
      const tracks = [];
      if (audio) tracks.push({ type: 'audio', capture: true, recv: true });
      if (video) tracks.push({ type: 'video', capture: { width: 640, height: 480 }, recv: true });
      // A data channel too: janus.js opens its default one ("JanusDataChannel").
      tracks.push({ type: 'data' });
      const jsep = await new Promise((resolve, reject) => demo.handle.createOffer({ tracks, success: resolve, error: (e) => reject(new Error(String(e?.message ?? e))) }));
      demo.handle.send({ message: { audio, video, record: $('record').checked }, jsep });
      demo.stats = new FerryDemo.StatsPanel($('stats'), () => demo.handle?.webrtcStuff?.pc);
      $('stop').disabled = false;
    } catch (err) {
      log(String(err.message ?? err), true);
      FerryDemo.setState($('state'), 'failed', 'bad');
      $('start').disabled = false;
    }
  }

  function stop() {
    $('stop').disabled = true;
    demo.stats?.stop();
    demo.janus?.destroy({ cleanupHandles: true });
    demo.janus = demo.handle = null;
    $('start').disabled = false;
  }

  FerryDemo.textInput($('datatext'), $('datasend'), (text) => {
    if (!demo.handle) return false;
    demo.handle.data({ text, error: (err) => log(`data: ${err}`, true) });
    dataLog.add('you', text, 'note');
  });

  // Recording starts or stops at once on a running test (Janus's EchoTest `record`).
  $('record').onchange = () => demo.handle?.send({ message: { record: $('record').checked } });
  $('start').onclick = start;
  $('stop').onclick = stop;
  if (FerryDemo.query('record')) $('record').checked = true;
  if (FerryDemo.query('autostart')) start();
})();
