// The parts of the event handlers that need no gateway: the type filter, the bus, the bounded
// backlog and its retries, the HTTP handler against an in-test collector, MQTT's packets,
// and the configuration's refusals.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ConfigError, makeConfig } from '../../src/config/Config.js';
import { EventBus, NO_EVENTS } from '../../src/events/EventBus.js';
import { createEventBus } from '../../src/events/createEventBus.js';
import { HttpEventHandler } from '../../src/events/HttpEventHandler.js';
import { ALL_EVENT_TYPES, EventType, eventMaskNames, parseEventMask, type JanusEvent } from '../../src/events/JanusEvents.js';
import { PacketReader, encodeConnect, encodePublish, MqttProtocolError } from '../../src/events/mqtt/MqttPackets.js';
import { Backlog, QueuedEventHandler, type DeliveryResult } from '../../src/events/QueuedEventHandler.js';
import { createLogger } from '../../src/log/logger.js';
import { TransportReporter } from '../../src/webrtc/TransportReporter.js';
import type { WebRtcTransportEvent } from '../../src/events/JanusEvents.js';

const silent = createLogger('silent');
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await pause(10);
  }
  return true;
}

test('filters: Janus type names, all and none; an unknown name is a ConfigError naming it', () => {
  assert.is(parseEventMask('all', 'x'), ALL_EVENT_TYPES);
  assert.is(parseEventMask('none', 'x'), 0);
  assert.is(parseEventMask('sessions, handles,media', 'x'), EventType.session | EventType.handle | EventType.media);
  assert.is(parseEventMask('plugins,transports,core,jsep,webrtc,external', 'x'), ALL_EVENT_TYPES & ~(EventType.session | EventType.handle | EventType.media));
  assert.equal(eventMaskNames(EventType.session | EventType.media), ['sessions', 'media']);
  assert.equal(eventMaskNames(ALL_EVENT_TYPES), ['all']);
  assert.throws(() => parseEventMask('sessions,medias', 'events.http_events'), (e: unknown) => e instanceof ConfigError && /events\.http_events.*"medias"/.test(e.message));
});

/** A handler that keeps what it accepts, for bus tests. */
function recorder(mask: number) {
  const got: JanusEvent[] = [];
  return {
    got,
    handler: { mask, accept: (e: JanusEvent) => got.push(e), start() {}, close: async () => {}, status: () => ({}) as never },
  };
}

test('bus: each handler gets the types its filter selects, in Janus shape; none wanted is one bit test', () => {
  const sessions = recorder(EventType.session);
  const media = recorder(EventType.media | EventType.webrtc);
  const bus = new EventBus('gw-1', [sessions.handler, media.handler]);
  assert.ok(bus.wants(EventType.session) && bus.wants(EventType.media) && !bus.wants(EventType.plugin));
  bus.session(11, 'created', { transport: 'janus.transport.websockets', id: '1' });
  bus.handle({ sessionId: 11, handleId: 22, opaqueId: 'op' }, 'attached', 'janus.plugin.videoroom', null);
  bus.peerConnection({ sessionId: 11, handleId: 22, opaqueId: 'op' }, 'hangup', 'bye');
  bus.webrtcTransport({ sessionId: 11, handleId: 22 }, { kind: 'selected-pair', local: { address: '127.0.0.1', port: 4000 }, remote: { address: '127.0.0.1', port: 5000 } });
  bus.slowLink({ sessionId: 11, handleId: 22 }, { mid: '1', media: 'video', uplink: true, lost: 7 });
  assert.is(sessions.got.length, 1);
  const s = sessions.got[0]!;
  assert.is(s.emitter, 'gw-1');
  assert.is(s.type, 1);
  assert.is(s.subtype, undefined, 'session events have no subtype');
  assert.is(s.session_id, 11);
  assert.ok(Number.isInteger(s.timestamp) && s.timestamp > 1.6e15, 'timestamp in microseconds');
  assert.equal(s.event, { name: 'created', transport: { transport: 'janus.transport.websockets', id: '1' } });
  assert.equal(media.got.map((e) => [e.type, e.subtype]), [[16, 6], [16, 4], [32, 2]]);
  assert.equal(media.got[0]!.event, { connection: 'hangup', reason: 'bye' });
  assert.is(media.got[0]!.opaque_id, 'op');
  assert.is(media.got[1]!.event['selected-pair'], '127.0.0.1:4000 [host,udp] <-> 127.0.0.1:5000 [prflx,udp]');
  assert.equal(media.got[2]!.event, { mid: '1', media: 'video', slow_link: 'uplink', lost_lastsec: 7 });
  assert.is(NO_EVENTS.mask, 0);
  assert.not.ok(NO_EVENTS.wants(EventType.core));
});

test('backlog: bounded, FIFO, O(1) from the front', () => {
  const b = new Backlog<number>(3);
  assert.ok(b.push(1) && b.push(2) && b.push(3));
  assert.not.ok(b.push(4), 'full: refused');
  assert.equal(b.peek(2), [1, 2]);
  b.drop(2);
  assert.is(b.length, 1);
  assert.ok(b.push(5));
  assert.equal(b.peek(10), [3, 5]);
  for (let i = 0; i < 5000; i++) {
    const big = new Backlog<number>(10);
    big.push(i);
    big.drop(1);
    assert.is(big.length, 0);
  }
});

/** A handler whose deliveries a test scripts: each attempt takes the next answer. */
class ScriptedHandler extends QueuedEventHandler {
  readonly batches: string[][] = [];
  answers: Array<(batch: string[]) => DeliveryResult> = [];
  constructor(maxBacklog: number, grouping = true) {
    super({ handler: 'test', target: 'test', mask: ALL_EVENT_TYPES, grouping, maxBacklog, logger: silent });
  }
  protected async deliver(batch: string[]): Promise<DeliveryResult> {
    this.batches.push(batch);
    const answer = this.answers.shift();
    return answer ? answer(batch) : { delivered: batch.length };
  }
  protected abort(): void {}
}

const event = (n: number): JanusEvent => ({ emitter: 't', type: 1, timestamp: n, session_id: n, event: { name: 'created' } });

test('queued handler: failures keep events (retried with back-off), a partial delivery keeps the rest, overflow is dropped and counted', async () => {
  const h = new ScriptedHandler(5);
  h.answers = [() => ({ delivered: 0, error: 'down' }), () => ({ delivered: 0, error: 'down' }), (b) => ({ delivered: 1, error: `only 1 of ${b.length}` })];
  for (let i = 1; i <= 7; i++) h.accept(event(i));
  let st = h.status();
  assert.is(st.backlog, 5);
  assert.is(st.dropped, 2, 'events 6 and 7 found the backlog full');
  assert.ok(await until(() => h.status().backlog === 0, 5000), `drained: ${JSON.stringify(h.status())}`);
  st = h.status();
  assert.is(st.sent, 5);
  assert.is(st.failed_attempts, 3);
  assert.is(st.last_error, 'only 1 of 5');
  assert.ok(st.connected, 'the last attempt went through');
  const sessions = h.batches.flat().map((s) => (JSON.parse(s) as JanusEvent).session_id);
  // Attempts: [1] (sent as it came) fails, [1..5] fails, [1..5] gives 1, [2..5] all.
  assert.equal(sessions, [1, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 2, 3, 4, 5]);
  await h.close(100);
});

test('queued handler: close gives the backlog a bounded grace, then counts what is left as dropped', async () => {
  const h = new ScriptedHandler(100);
  h.answers = Array.from({ length: 1000 }, () => () => ({ delivered: 0, error: 'down' }));
  for (let i = 0; i < 10; i++) h.accept(event(i));
  const started = Date.now();
  await h.close(300);
  assert.ok(Date.now() - started < 5000, 'close returned');
  const st = h.status();
  assert.is(st.backlog, 0);
  assert.is(st.dropped, 10);
  assert.not.ok(st.connected);
  h.accept(event(99));
  assert.is(h.status().backlog, 0, 'nothing accepted once closed');
});

/** An in-test collector: records each POST's parsed body and headers; `status` answers with that code. */
async function collector(): Promise<{ server: Server; url: string; posts: { body: unknown; auth: string | undefined }[]; status: { code: number } }> {
  const posts: { body: unknown; auth: string | undefined }[] = [];
  const status = { code: 200 };
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      if (status.code === 200) posts.push({ body: JSON.parse(text), auth: req.headers.authorization });
      res.writeHead(status.code).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, posts, status };
}

test('HTTP handler: grouped POSTs with basic auth; a 500 is retried; one event per POST without grouping', async () => {
  const c = await collector();
  try {
    const grouped = new HttpEventHandler({ url: c.url, mask: ALL_EVENT_TYPES, grouping: true, maxBacklog: 100, username: 'u', password: 'p', logger: silent });
    c.status.code = 500;
    for (let i = 1; i <= 3; i++) grouped.accept(event(i));
    assert.ok(await until(() => grouped.status().failed_attempts >= 2, 5000), 'retried');
    c.status.code = 200;
    assert.ok(await until(() => grouped.status().sent === 3, 5000), JSON.stringify(grouped.status()));
    const bodies = c.posts.map((p) => p.body);
    assert.ok(bodies.every(Array.isArray), 'grouping: each POST is an array');
    assert.equal((bodies.flat() as JanusEvent[]).map((e) => e.session_id), [1, 2, 3]);
    assert.is(c.posts[0]!.auth, `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.match(grouped.status().last_error ?? '', /HTTP 500/);
    await grouped.close(1000);

    c.posts.length = 0;
    const single = new HttpEventHandler({ url: c.url, mask: ALL_EVENT_TYPES, grouping: false, maxBacklog: 100, username: null, password: null, logger: silent });
    for (let i = 1; i <= 3; i++) single.accept(event(i));
    assert.ok(await until(() => single.status().sent === 3, 5000));
    assert.equal(c.posts.map((p) => (p.body as JanusEvent).session_id), [1, 2, 3], 'one event object per POST, in order');
    assert.is(c.posts[0]!.auth, undefined);
    await single.close(1000);
  } finally {
    c.server.closeAllConnections();
    await new Promise((r) => c.server.close(r));
  }
});

test('MQTT packets: CONNECT and PUBLISH as MQTT 3.1.1 writes them; a reader splits a stream and refuses a 5-byte length', () => {
  const connect = encodeConnect({ clientId: 'ferry-1', keepAliveSeconds: 30, username: 'u', password: 'p' });
  assert.is(connect[0], 0x10);
  assert.equal([...connect.subarray(2, 10)], [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0xc2], 'protocol MQTT level 4, user+password+clean session');
  const payload = Buffer.alloc(300, 0x61);
  const publish = encodePublish('ferry/events', payload, 1, 0x1234);
  assert.is(publish[0], 0x32, 'PUBLISH QoS 1');
  assert.equal([...publish.subarray(1, 3)], [(2 + 12 + 2 + 300) % 128 | 0x80, Math.floor((2 + 12 + 2 + 300) / 128)], 'remaining length in two bytes');
  // A broker's PUBLISH (QoS 1) then PUBACK, split at every byte boundary, decode the same.
  const stream = Buffer.concat([publish, Buffer.from([0x40, 2, 0x12, 0x34])]);
  const reader = new PacketReader(1 << 20);
  const got = [];
  for (const byte of stream) got.push(...reader.push(Buffer.from([byte])));
  assert.is(got.length, 2);
  assert.equal(got[0], { type: 'publish', topic: 'ferry/events', qos: 1, packetId: 0x1234, payload });
  assert.equal(got[1], { type: 'puback', packetId: 0x1234 });
  assert.throws(() => new PacketReader(1 << 20).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), (e: unknown) => e instanceof MqttProtocolError);
  assert.throws(() => new PacketReader(100).push(Buffer.from([0x30, 0xff, 0x01])), /larger than the 100/);
  assert.throws(() => new PacketReader(100).push(Buffer.from([0x10, 0x00])), /unexpected packet type 1/);
});

test('transport reporter: ICE always connecting → connected → ready, whatever the order things happen in; candidates once per ufrag', () => {
  const seen: WebRtcTransportEvent[] = [];
  const r = new TransportReporter((e) => seen.push(e), ['127.0.0.1', '10.0.0.1']);
  const ice = () => seen.filter((e) => e.kind === 'ice').map((e) => (e as { state: string }).state);
  r.localDescription('u1', 4000);
  r.localDescription('u1', 4000);
  assert.equal(seen.map((e) => (e as { candidate?: string }).candidate), ['1 1 udp 2130706431 127.0.0.1 4000 typ host', '2 1 udp 2130706430 10.0.0.1 4000 typ host']);
  // ferry offered: the peer's check came before its answer.
  r.selected({ address: '127.0.0.1', port: 5000 }, 4000);
  r.negotiated();
  r.selected({ address: '127.0.0.1', port: 5000 }, 4000);
  r.dtlsStarted();
  r.dtlsStarted();
  r.dtlsConnected();
  assert.equal(ice(), ['connecting', 'connected', 'ready']);
  assert.is(seen.filter((e) => e.kind === 'selected-pair').length, 1, 'the same pair once');
  assert.equal(seen.filter((e) => e.kind === 'dtls').map((e) => (e as { state: string }).state), ['trying', 'connected']);
  // An ICE restart: the states start over; DTLS done before any pair was reported still says connected first.
  seen.length = 0;
  r.iceRestarted();
  r.localDescription('u2', 4000);
  r.negotiated();
  r.dtlsConnected();
  r.iceFailed();
  r.iceFailed();
  assert.equal(ice(), ['connecting', 'connected', 'ready', 'failed']);
  assert.is(seen.filter((e) => e.kind === 'local-candidate').length, 2, 'new credentials: candidates again');
  // Without a handler nothing is built.
  const silentReporter = new TransportReporter(undefined, ['127.0.0.1']);
  silentReporter.negotiated();
  silentReporter.selected({ address: '127.0.0.1', port: 1 }, 2);
});

test('config: handler URLs and filters are checked; disabled or without a URL is the empty bus', () => {
  assert.throws(() => makeConfig({ events: { http_url: 'ftp://x' } }), /events\.http_url must be an http/);
  assert.throws(() => makeConfig({ events: { mqtt_url: 'mqtt://h:1883/topic' } }), /events\.mqtt_url/);
  assert.throws(() => makeConfig({ events: { mqtt_topic: 'a/#' } }), /events\.mqtt_topic/);
  assert.throws(() => makeConfig({ events: { http_events: 'sessions,bogus' } }), /events\.http_events must be all, none, or a comma-separated list of sessions/);
  assert.is(createEventBus(makeConfig({ events: { http_url: 'http://127.0.0.1:9/' } }), silent), NO_EVENTS, 'enabled: false');
  assert.is(createEventBus(makeConfig({ events: { enabled: true } }), silent), NO_EVENTS, 'no URL');
  const bus = createEventBus(makeConfig({ events: { enabled: true, http_url: 'http://user:pw@127.0.0.1:9/e', http_events: 'sessions,media' } }), silent);
  assert.is(bus.mask, EventType.session | EventType.media);
  assert.is(bus.status()[0]!.target, 'http://127.0.0.1:9/e', 'credentials never shown');
});

test.run();
