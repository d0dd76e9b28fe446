/*
 * VideoRoom demo (Janus 1.x multistream API): one publisher handle sends the
 * camera; one subscriber handle receives every other feed on a single
 * PeerConnection. Tiles are subscription video slots (keyed by their mid), so
 * switching a tile to another feed changes the source without renegotiation.
 * The chat: the publisher publishes a data channel too; the subscription's one
 * data m-line brings every other publisher's messages, each on a channel
 * labelled with the sender's feed id.
 */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const log = FerryDemo.logger($('log'));
  const PLUGIN = 'janus.plugin.videoroom';

  const demo = {
    janus: null,
    publisher: null,
    subscriber: null,
    room: 0,
    myId: null,
    privateId: null,
    /** Feed id → { id, display, streams: [{type, mid, ...}] }, including our own once published. */
    feeds: new Map(),
    /** Subscription mid → { mid, type, feedId, feedMid, feedDisplay, simulcast, tile? , audio? }. */
    slots: new Map(),
    localStats: null,
    // Subscription changes are serialized: each join/subscribe waits for the previous answer.
    negotiating: false,
    queued: [],
    events: [],
    /** Feed ids ferry last reported talking. */
    talking: new Set(),
    /** Chat lines received: { from (feed id), text }. */
    chat: [],
  };
  window.ferryVideoRoom = demo;
  const chat = FerryDemo.chat($('chat'));

  // ---- publisher --------------------------------------------------------------------------------

  async function join() {
    $('join').disabled = true;
    demo.room = Number($('room').value) || 1234;
    const display = $('display').value.trim() || `guest-${Janus.randomString(4)}`;
    $('display').value = display;
    try {
      FerryDemo.setState($('state'), 'connecting', 'warn');
      demo.janus = await FerryDemo.connect({ onDestroyed: () => FerryDemo.setState($('state'), 'session ended', 'bad') });
      demo.publisher = await FerryDemo.attach(demo.janus, {
        plugin: PLUGIN,
        iceState: (state) => FerryDemo.setState($('ice'), `ice: ${state}`, FerryDemo.stateClass(state)),
        webrtcState: (up, reason) => log(`publisher PeerConnection ${up ? 'up' : `down${reason ? ` (${reason})` : ''}`}`, !up),
        mediaState: (medium, on, mid) => log(`ferry ${on ? 'receives' : 'stopped receiving'} our ${medium} (mid ${mid})`),
        slowLink: (uplink, lost, mid) => log(`slowlink on our ${uplink ? 'uplink' : 'downlink'}: ${lost} lost (mid ${mid})`),
        onmessage: onPublisherMessage,
        onlocaltrack: (track, on) => {
          if (on && track.kind === 'video') FerryDemo.playTrack($('local'), track);
        },
        ondataopen: () => {
          FerryDemo.setState($('chatstate'), 'open', 'ok');
          $('chattext').disabled = $('chatsend').disabled = false;
        },
        oncleanup: () => {
          log('publisher PeerConnection closed');
          FerryDemo.setState($('chatstate'), 'closed');
          $('chattext').disabled = $('chatsend').disabled = true;
        },
      });
      demo.publisher.send({ message: { request: 'join', room: demo.room, ptype: 'publisher', display } });
      $('myname').textContent = `(${display})`;
      $('leave').disabled = false;
    } catch (err) {
      log(String(err.message ?? err), true);
      FerryDemo.setState($('state'), 'failed', 'bad');
      $('join').disabled = false;
    }
  }

  function publish() {
    const simulcast = $('simulcast').checked;
    const tracks = [
      { type: 'audio', capture: true, recv: false },
      // Chrome sends three simulcast layers only from 960x540 up.
      { type: 'video', capture: simulcast ? { width: 1280, height: 720 } : { width: 640, height: 480 }, recv: false, simulcast },
      // The chat channel the room relays to every subscriber.
      { type: 'data' },
    ];
    demo.publisher.createOffer({
      tracks,
      success: (jsep) => demo.publisher.send({ message: { request: 'configure', audio: true, video: true, record: $('record').checked }, jsep }),
      error: (err) => log(`createOffer: ${err?.message ?? err}`, true),
    });
    demo.localStats = new FerryDemo.StatsPanel($('localstats'), () => demo.publisher?.webrtcStuff?.pc, { filter: (key) => key.startsWith('out') });
  }

  function onPublisherMessage(msg, jsep) {
    demo.events.push(msg);
    const event = msg.videoroom;
    if (msg.error) log(`error ${msg.error_code}: ${msg.error}`, true);
    if (Array.isArray(msg.recordings)) {
      demo.recordings = msg.recordings;
      for (const r of msg.recordings) log(`recording ${r.type} (${r.codec}) to ${r.path}`);
    }
    if (event === 'joined') {
      demo.myId = msg.id;
      demo.privateId = msg.private_id;
      FerryDemo.setState($('state'), `joined room ${msg.room} as ${msg.id}`, 'ok');
      log(`joined room ${msg.room}, our feed is ${msg.id}`);
      publish();
    } else if (event === 'destroyed') {
      log(`room ${msg.room} destroyed`, true);
      FerryDemo.setState($('state'), 'room destroyed', 'bad');
    }
    if (msg.configured === 'ok' && Array.isArray(msg.streams) && demo.myId !== null) {
      demo.feeds.set(demo.myId, { id: demo.myId, display: `${$('display').value} (you)`, streams: msg.streams });
      refreshFeedChoices();
    }
    if (event === 'talking' || event === 'stopped-talking') setTalking(msg.id, event === 'talking');
    if (Array.isArray(msg.publishers)) addFeeds(msg.publishers);
    const gone = msg.unpublished ?? msg.leaving;
    if (gone !== undefined && gone !== 'ok') removeFeed(gone);
    if (jsep) demo.publisher.handleRemoteJsep({ jsep });
  }

  /** ferry's talking events (rooms with audiolevel_event): a badge on the speaker's tiles. */
  function setTalking(feedId, talking) {
    if (talking) demo.talking.add(feedId);
    else demo.talking.delete(feedId);
    if (feedId === demo.myId) $('mytalk').hidden = !talking;
    for (const slot of demo.slots.values()) if (slot.tile) slot.tile.talk.hidden = !demo.talking.has(slot.feedId);
  }

  // ---- feeds and the subscription --------------------------------------------------------------

  function addFeeds(publishers) {
    const fresh = [];
    for (const p of publishers) {
      if (p.id === demo.myId || p.dummy) continue;
      const known = demo.feeds.has(p.id);
      demo.feeds.set(p.id, { id: p.id, display: p.display ?? String(p.id), streams: p.streams ?? [] });
      // Rooms with audiolevel_event list whether each publisher is talking right now.
      if (typeof p.talking === 'boolean') setTalking(p.id, p.talking);
      if (!known) fresh.push(p.id);
      log(`feed ${p.id} (${p.display ?? 'no name'}) publishes ${(p.streams ?? []).map((s) => s.type).join(' + ')}`);
    }
    refreshFeedChoices();
    if (fresh.length > 0) subscribe(fresh);
  }

  function removeFeed(feedId) {
    const feed = demo.feeds.get(feedId);
    demo.feeds.delete(feedId);
    log(`feed ${feedId} (${feed?.display ?? '?'}) left`);
    refreshFeedChoices();
    // ferry drops the feed's streams from our subscription itself and sends an update.
  }

  async function subscribe(feedIds) {
    demo.queued.push(...feedIds);
    if (demo.negotiating) return;
    const feeds = demo.queued.splice(0).filter((id) => demo.feeds.has(id));
    if (feeds.length === 0) return;
    demo.negotiating = true;
    const streams = feeds.map((feed) => ({ feed }));
    try {
      if (!demo.subscriber) {
        demo.subscriber = await FerryDemo.attach(demo.janus, {
          plugin: PLUGIN,
          onmessage: onSubscriberMessage,
          onremotetrack: onRemoteTrack,
          // ferry relays each publisher's messages on a channel labelled with its feed id.
          ondata: (data, label) => {
            const from = Number(label);
            demo.chat.push({ from, text: String(data) });
            chat.add(demo.feeds.get(from)?.display ?? label, String(data));
          },
          iceState: (state) => log(`subscriber ICE ${state}`),
          webrtcState: (up, reason) => log(`subscriber PeerConnection ${up ? 'up' : `down${reason ? ` (${reason})` : ''}`}`, !up),
          oncleanup: () => log('subscriber PeerConnection closed'),
        });
        demo.subscriber.send({ message: { request: 'join', room: demo.room, ptype: 'subscriber', streams, private_id: demo.privateId } });
      } else {
        demo.subscriber.send({ message: { request: 'subscribe', streams } });
      }
    } catch (err) {
      log(String(err.message ?? err), true);
      demo.negotiating = false;
    }
  }

  function onSubscriberMessage(msg, jsep) {
    demo.events.push(msg);
    if (msg.error) {
      log(`subscriber error ${msg.error_code}: ${msg.error}`, true);
      demo.negotiating = false;
    }
    if (Array.isArray(msg.streams)) updateSlots(msg.streams);
    if (msg.switched === 'ok') log(`switched: ${msg.changes} stream(s)`);
    if (msg.substream !== undefined && msg.mid !== undefined) {
      const slot = demo.slots.get(String(msg.mid));
      if (slot) {
        slot.simulcast = { ...(slot.simulcast ?? {}), substream: msg.substream };
        if (slot.tile) renderTile(slot);
      }
      log(`mid ${msg.mid} now on simulcast layer ${msg.substream}`);
    }
    if (!jsep) {
      if (msg.videoroom === 'updated') finishNegotiation();
      return;
    }
    demo.subscriber.createAnswer({
      jsep,
      // No media of our own: every offered m-line is received only; the data m-line brings the chat.
      tracks: [{ type: 'data' }],
      success: (answer) => {
        demo.subscriber.send({ message: { request: 'start', room: demo.room }, jsep: answer });
        finishNegotiation();
      },
      error: (err) => {
        log(`createAnswer: ${err?.message ?? err}`, true);
        finishNegotiation();
      },
    });
  }

  function finishNegotiation() {
    demo.negotiating = false;
    if (demo.queued.length > 0) subscribe([]);
  }

  function updateSlots(streams) {
    const seen = new Set();
    for (const s of streams) {
      const mid = String(s.mid);
      seen.add(mid);
      const slot = demo.slots.get(mid) ?? { mid, type: s.type };
      slot.feedId = s.active === false ? null : s.feed_id ?? null;
      slot.feedMid = s.feed_mid ?? null;
      slot.feedDisplay = s.feed_display ?? (slot.feedId !== null ? String(slot.feedId) : 'no feed');
      slot.simulcast = s.simulcast ?? null;
      demo.slots.set(mid, slot);
      if (slot.type === 'video') {
        if (slot.feedId === null) removeTile(slot);
        else renderTile(slot);
      }
    }
    for (const [mid, slot] of demo.slots) {
      if (!seen.has(mid)) {
        removeTile(slot);
        demo.slots.delete(mid);
      }
    }
  }

  function onRemoteTrack(track, mid, on) {
    const slot = demo.slots.get(String(mid)) ?? { mid: String(mid), type: track.kind, feedId: null, feedDisplay: '?' };
    demo.slots.set(slot.mid, slot);
    if (track.kind === 'audio') {
      if (!on) return;
      if (!slot.audio) {
        slot.audio = FerryDemo.el('audio', { autoplay: '' });
        document.body.appendChild(slot.audio);
      }
      FerryDemo.playTrack(slot.audio, track);
      return;
    }
    if (!on) return; // the tile goes when the slot loses its feed (updateSlots)
    renderTile(slot);
    FerryDemo.playTrack(slot.tile.video, track);
  }

  // ---- tiles ------------------------------------------------------------------------------------

  function renderTile(slot) {
    if (!slot.tile) {
      const panel = FerryDemo.el('div', { class: 'panel tile', 'data-mid': slot.mid });
      const h2 = FerryDemo.el('h2');
      const choose = FerryDemo.el('select', { title: 'switch this tile to another feed' });
      choose.onchange = () => switchSlot(slot, Number(choose.value));
      const badge = FerryDemo.el('span', { class: 'state' }, `mid ${slot.mid}`);
      const talk = FerryDemo.el('span', { class: 'state ok' }, 'talking');
      talk.hidden = true;
      h2.append(choose, talk, badge);
      const video = FerryDemo.el('video', { autoplay: '', playsinline: '' });
      video.muted = true; // audio plays from its own element
      const layers = FerryDemo.el('div', { class: 'layers' });
      layers.append(FerryDemo.el('span', {}, 'simulcast layer'));
      const buttons = [0, 1, 2].map((substream) => {
        const b = FerryDemo.el('button', {}, ['low', 'medium', 'high'][substream]);
        b.onclick = () => setSubstream(slot, substream);
        layers.append(b);
        return b;
      });
      const stats = FerryDemo.el('div', { class: 'stats' });
      panel.append(h2, video, layers, stats);
      $('tiles').appendChild(panel);
      slot.tile = {
        panel,
        choose,
        video,
        layers,
        buttons,
        talk,
        stats: new FerryDemo.StatsPanel(stats, () => demo.subscriber?.webrtcStuff?.pc, { filter: (_key, s) => String(s.mid) === slot.mid }),
      };
    }
    const t = slot.tile;
    t.layers.style.display = slot.simulcast ? '' : 'none';
    t.talk.hidden = !demo.talking.has(slot.feedId);
    t.buttons.forEach((b, i) => b.classList.toggle('on', slot.simulcast?.substream === i));
    fillChoices(t.choose, slot);
  }

  function removeTile(slot) {
    if (!slot.tile) return;
    slot.tile.stats.stop();
    slot.tile.panel.remove();
    slot.tile = undefined;
  }

  function fillChoices(select, slot) {
    select.replaceChildren();
    for (const feed of demo.feeds.values()) {
      if (!feed.streams.some((s) => s.type === slot.type)) continue;
      const option = FerryDemo.el('option', { value: String(feed.id) }, feed.display);
      if (feed.id === slot.feedId) option.selected = true;
      select.append(option);
    }
    if (slot.feedId !== null && !demo.feeds.has(slot.feedId)) {
      const option = FerryDemo.el('option', { value: String(slot.feedId) }, slot.feedDisplay);
      option.selected = true;
      select.append(option);
    }
  }

  function refreshFeedChoices() {
    for (const slot of demo.slots.values()) if (slot.tile) fillChoices(slot.tile.choose, slot);
  }

  /**
   * Points a tile's video slot, and the audio slot fed by the same feed, at
   * another feed: `switch` changes sources on ferry without renegotiation.
   */
  function switchSlot(slot, feedId) {
    const feed = demo.feeds.get(feedId);
    if (!feed || feedId === slot.feedId) return;
    const streams = [];
    const addSwitch = (s) => {
      const source = feed.streams.find((fs) => fs.type === s.type && !fs.disabled);
      if (source) streams.push({ feed: feedId, mid: String(source.mid), sub_mid: s.mid });
    };
    addSwitch(slot);
    const audio = [...demo.slots.values()].find((s) => s.type === 'audio' && s.feedId === slot.feedId && s.feedId !== null);
    if (audio) addSwitch(audio);
    log(`switching mid ${slot.mid} from feed ${slot.feedId} to ${feedId}`);
    demo.subscriber.send({ message: { request: 'switch', streams } });
  }

  function setSubstream(slot, substream) {
    demo.subscriber.send({ message: { request: 'configure', streams: [{ mid: slot.mid, substream }] } });
    log(`asked for simulcast layer ${substream} on mid ${slot.mid}`);
  }

  function leave() {
    $('leave').disabled = true;
    demo.localStats?.stop();
    for (const slot of demo.slots.values()) {
      removeTile(slot);
      slot.audio?.remove();
    }
    demo.slots.clear();
    demo.feeds.clear();
    demo.talking.clear();
    $('mytalk').hidden = true;
    demo.janus?.destroy({ cleanupHandles: true });
    Object.assign(demo, { janus: null, publisher: null, subscriber: null, myId: null, privateId: null, negotiating: false, queued: [] });
    FerryDemo.setState($('state'), 'left', '');
    $('join').disabled = false;
  }

  const sendChat = FerryDemo.textInput($('chattext'), $('chatsend'), (text) => {
    if (!demo.publisher) return false;
    demo.publisher.data({ text, error: (err) => log(`chat: ${err}`, true) });
    chat.add('you', text, 'note');
  });

  // Exposed for the browser tests (same paths a person would click).
  demo.sendChat = (text) => {
    $('chattext').value = text;
    sendChat();
  };
  demo.switchSlot = (mid, feedId) => switchSlot(demo.slots.get(String(mid)), feedId);
  demo.setSubstream = (mid, substream) => setSubstream(demo.slots.get(String(mid)), substream);

  // Recording starts or stops at once while publishing (the publisher's own `record`).
  $('record').onchange = () => {
    if (demo.publisher && demo.myId !== null) demo.publisher.send({ message: { request: 'configure', record: $('record').checked } });
  };
  $('join').onclick = join;
  $('leave').onclick = leave;
  const q = FerryDemo.query;
  if (q('room')) $('room').value = q('room');
  if (q('display')) $('display').value = q('display');
  if (q('simulcast')) $('simulcast').checked = true;
  if (q('record')) $('record').checked = true;
  if (q('autostart')) join();
})();
