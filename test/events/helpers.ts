// What the event handler tests share: an HTTP collector that can be stopped and started again
// on its port, a real mosquitto started on 127.0.0.1, one full VideoRoom session driven by
// werift peers, and the checks that the events it gave are Janus's, type by type.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import type { JanusEvent } from '../../src/events/JanusEvents.js';
import type { Json } from '../helpers/http.js';
import { spawnPeer, withTimeout, type Peer } from '../sip/helpers.js';
import { VrClient, closeAll, payload, pause, publish, sendRtp, subscribe, type WsEndpoint } from '../videoroom-e2e/harness.js';

/** An event as a collector parses it: ferry's JanusEvent with its body read as plain JSON. */
export type JanusEventJson = Omit<JanusEvent, 'event'> & { event: Json };

/** Flattens what one delivery carried (an array when grouping, else one event). */
export function eventsOf(body: unknown): JanusEventJson[] {
  return (Array.isArray(body) ? body : [body]) as JanusEventJson[];
}

/** An HTTP collector on 127.0.0.1 that keeps every event POSTed to it, in arrival order. */
export class Collector {
  readonly events: JanusEventJson[] = [];
  posts = 0;
  private server: Server | null = null;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/janus-events`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      req.on('end', () => {
        this.posts++;
        this.events.push(...eventsOf(JSON.parse(text)));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Closes the listener and every connection: POSTs are refused until start() again (same port). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

/** The ids of one VideoRoom session's two handles. */
export interface VideoRoomIds {
  publisher: { session: number; handle: number };
  subscriber: { session: number; handle: number };
}

const ROOM = 1234;

/**
 * One full VideoRoom session: a werift publisher (audio + video) joins and publishes, trickles
 * one candidate, a werift subscriber subscribes, media flows for a while, `enough` says when
 * enough events were seen (media stats, say), then everyone leaves and the sessions end.
 */
export async function videoRoomSession(f: WsEndpoint, enough: (ids: VideoRoomIds) => boolean, ms: number): Promise<VideoRoomIds> {
  const peers: RTCPeerConnection[] = [];
  const admin = await VrClient.open(f);
  try {
    await admin.sync({ request: 'create', room: ROOM, publishers: 3 });
    const pub = await publish(f, ROOM, 'alice', peers);
    const trickled = await pub.client.ws.request({
      janus: 'trickle',
      session_id: pub.client.sessionId,
      handle_id: pub.client.handleId,
      candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 },
    });
    assert.is(trickled['janus'], 'ack', 'trickle accepted');
    const sub = await subscribe(f, ROOM, [{ feed: pub.id }], peers);
    const ids: VideoRoomIds = {
      publisher: { session: pub.client.sessionId, handle: pub.client.handleId },
      subscriber: { session: sub.client.sessionId, handle: sub.client.handleId },
    };
    // Media until the caller has what it waits for (bounded: `ms`).
    const end = Date.now() + ms;
    for (let i = 0; !enough(ids) && Date.now() < end; i++) {
      await sendRtp(pub.audio, 100 + i, i * 960, payload('audio', i, 160));
      await sendRtp(pub.video, 200 + i, i * 3000, payload('video', i, 1000), true);
      await pause(20);
    }
    assert.ok(sub.received.get('1')!.length > 0, 'the subscriber received video');
    await sub.client.call({ request: 'leave' });
    await sub.client.close();
    await pub.client.close();
    return ids;
  } finally {
    await admin.close();
    await closeAll(peers);
  }
}

/** Events of one handle, of one type (and subtype). */
export function of(events: JanusEventJson[], handle: number, type: number, subtype?: number): JanusEventJson[] {
  return events.filter((e) => e.handle_id === handle && e.type === type && (subtype === undefined || e.subtype === subtype));
}

/** Media stats (type 32, subtype 3) of a handle that show media received or sent. */
export function hasMediaStats(events: JanusEventJson[], handle: number, direction: 'packets-received' | 'packets-sent'): boolean {
  return of(events, handle, 32, 3).some((e) => Number(e.event[direction]) > 0);
}

/**
 * Checks the events of one VideoRoom session are Janus's: the shape of every event, and for
 * the publisher and the subscriber each type Janus's event handlers get, with its subtypes.
 */
export function checkVideoRoomEvents(events: JanusEventJson[], ids: VideoRoomIds, emitter: string): void {
  for (const e of events) {
    assert.is(e.emitter, emitter, 'emitter: the server name');
    assert.ok(Number.isInteger(e.type) && [1, 2, 4, 8, 16, 32, 64, 128, 256].includes(e.type), `type ${e.type}`);
    assert.ok(Number.isInteger(e.timestamp) && e.timestamp > 1.6e15, 'timestamp in microseconds since the epoch');
    assert.type(e.event, 'object');
    if (e.type === 256 || e.type === 128) assert.is(e.session_id, undefined, 'core and transport events carry no session');
    else assert.type(e.session_id, 'number');
    if ([2, 8, 16, 32, 64].includes(e.type)) assert.type(e.handle_id, 'number');
    if ([16, 32, 256].includes(e.type)) assert.type(e.subtype, 'number');
    else assert.is(e.subtype, undefined, `type ${e.type} has no subtype`);
  }
  for (const [who, s] of Object.entries(ids)) {
    const sessionEvents = events.filter((e) => e.type === 1 && e.session_id === s.session).map((e) => e.event);
    assert.equal(sessionEvents[0], { name: 'created', transport: { transport: 'janus.transport.websockets', id: (sessionEvents[0]!['transport'] as Json)['id'] } }, `${who}: session created`);
    assert.equal(sessionEvents[sessionEvents.length - 1], { name: 'destroyed' }, `${who}: session destroyed`);
    const connection = (sessionEvents[0]!['transport'] as Json)['id'];
    assert.ok(
      events.some((e) => e.type === 128 && e.event['transport'] === 'janus.transport.websockets' && e.event['id'] === connection && (e.event['data'] as Json)['event'] === 'connected'),
      `${who}: its WebSocket's connected event, with the id its session events name`,
    );
    const handleEvents = events.filter((e) => e.type === 2 && e.handle_id === s.handle);
    assert.equal(handleEvents.map((e) => [e.session_id, e.event['name'], e.event['plugin']]), [[s.session, 'attached', 'janus.plugin.videoroom'], [s.session, 'detached', 'janus.plugin.videoroom']], `${who}: handle attached, detached`);
    const webrtc = of(events, s.handle, 16);
    assert.equal(of(events, s.handle, 16, 1).map((e) => e.event['ice']), ['connecting', 'connected', 'ready'], `${who}: ICE states`);
    assert.ok(of(events, s.handle, 16, 2).some((e) => / 127\.0\.0\.1 \d+ typ host$/.test(String(e.event['local-candidate']))), `${who}: local candidate`);
    const pair = of(events, s.handle, 16, 4)[0];
    assert.ok(pair && /^127\.0\.0\.1:\d+ \[host,udp\] <-> 127\.0\.0\.1:\d+ \[prflx,udp\]$/.test(String(pair.event['selected-pair'])), `${who}: selected pair ${JSON.stringify(pair?.event)}`);
    assert.equal(of(events, s.handle, 16, 5).map((e) => e.event['dtls']), ['trying', 'connected'], `${who}: DTLS states`);
    assert.equal(of(events, s.handle, 16, 6).map((e) => e.event['connection']), ['webrtcup', 'hangup'], `${who}: PeerConnection up, then down`);
    assert.ok(webrtc.every((e) => e.event['stream_id'] === 1 || e.subtype === 6), 'one bundled stream');
    const stats = of(events, s.handle, 32, 3);
    assert.ok(stats.length > 0, `${who}: media stats`);
    for (const st of stats) {
      for (const key of ['mid', 'mindex', 'media', 'codec', 'base', 'lost', 'packets-received', 'packets-sent', 'bytes-received', 'bytes-sent', 'bytes-received-lastsec', 'bytes-sent-lastsec', 'nacks-received']) {
        assert.ok(key in st.event, `${who}: media stats carry ${key}: ${JSON.stringify(st.event)}`);
      }
    }
  }
  const pub = ids.publisher;
  assert.equal(of(events, pub.handle, 8).map((e) => [e.event['owner'], (e.event['jsep'] as Json)['type']]), [['remote', 'offer'], ['local', 'answer']], 'publisher: its offer, ferry\'s answer');
  assert.match(String((of(events, pub.handle, 8)[0]!.event['jsep'] as Json)['sdp']), /^v=0\r\n/);
  assert.ok(of(events, pub.handle, 16, 3).some((e) => String(e.event['remote-candidate']).includes('127.0.0.1 50000 typ host')), 'publisher: the trickled candidate');
  assert.ok(of(events, pub.handle, 32, 1).some((e) => e.event['receiving'] === true && e.event['media'] === 'video'), 'publisher: video receiving');
  assert.ok(hasMediaStats(events, pub.handle, 'packets-received'), 'publisher: stats of what it sent ferry');
  const audio = of(events, pub.handle, 32, 3).find((e) => e.event['media'] === 'audio');
  assert.equal([audio?.event['codec'], audio?.event['base']], ['opus', 48000]);
  assert.ok(of(events, pub.handle, 64).some((e) => e.event['plugin'] === 'janus.plugin.videoroom' && (e.event['data'] as Json)['videoroom'] === 'joined'), 'publisher: the plugin\'s joined');
  const sub = ids.subscriber;
  assert.equal(of(events, sub.handle, 8).map((e) => [e.event['owner'], (e.event['jsep'] as Json)['type']]), [['local', 'offer'], ['remote', 'answer']], 'subscriber: ferry\'s offer, its answer');
  assert.ok(hasMediaStats(events, sub.handle, 'packets-sent'), 'subscriber: stats of what ferry sent it');
  assert.ok(of(events, sub.handle, 64).some((e) => (e.event['data'] as Json)['videoroom'] === 'attached'), 'subscriber: the plugin\'s attached');
  const core = events.filter((e) => e.type === 256);
  assert.equal([core[0]?.subtype, core[0]?.event['status']], [1, 'started'], 'core: started first');
  assert.is((core[0]!.event['info'] as Json)['event_handlers'], true);
}

/** mosquitto from Debian (package mosquitto); CI installs it with .ci/install-test-peers.sh. */
export function mosquittoBinary(): string {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto']) if (existsSync(p)) return p;
  throw new Error("'mosquitto' is not installed: run .ci/install-test-peers.sh (apt-get install mosquitto)");
}

/** A mosquitto on 127.0.0.1:`port` with its own config and persistence directory; stop() ends it. */
export class Mosquitto {
  private peer: Peer | null = null;
  readonly dir = mkdtempSync(join(tmpdir(), 'ferry-mosquitto-'));

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const conf = join(this.dir, 'mosquitto.conf');
    // Persistence keeps a subscriber's session and its queued QoS 1 messages across a restart.
    const lines = [`listener ${this.port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${this.dir}/`, 'log_dest stderr', 'log_type error', 'log_type warning'];
    // Run as root, mosquitto would switch to its own user, which cannot write this directory.
    if (process.getuid?.() === 0) lines.push('user root');
    writeFileSync(conf, `${lines.join('\n')}\n`);
    this.peer = spawnPeer(mosquittoBinary(), ['-c', conf], 120_000, this.dir);
    const peer = this.peer;
    // Ready once it accepts a connection (bounded: 100 tries, 50 ms apart).
    let up = false;
    for (let i = 0; i < 100 && !up && peer.child.exitCode === null; i++) {
      up = await new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: this.port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (!up) await pause(50);
    }
    if (!up) throw new Error(`mosquitto did not start: ${peer.output()}`);
  }

  /** SIGTERM (it saves its persistence file), SIGKILL if it lingers. */
  async stop(): Promise<void> {
    const peer = this.peer;
    this.peer = null;
    if (!peer) return;
    peer.kill('SIGTERM');
    const exited = await withTimeout(peer.exited, 5000, 'mosquitto exit').then(() => true, () => false);
    if (!exited) peer.kill('SIGKILL');
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
