// Churn: PeerConnections with data channels opened, used and ended through
// every ending path (hangup, detach, session destroy, WebSocket gone, the peer's
// SCTP ABORT then hangup, session timeout). Afterwards no association, channel,
// timer, PeerConnection or port lease is left, and the process holds no more
// timers than before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ferryStatus, startFerry, waitUntilIdle, type TestFerry } from '../helpers/ferry.js';
import { closePeer } from '../helpers/werift.js';
import { attach, channelOpen, collect, offerAndConnect, until } from './helpers.js';

/** How many PeerConnections (FERRY_DC_CHURN overrides; the figure is 10^3). */
const TOTAL = Number(process.env['FERRY_DC_CHURN'] ?? 1000);
const PARALLEL = 8;
const PATHS = ['hangup', 'detach', 'destroy', 'websocket', 'peer-abort', 'timeout'] as const;

let f: TestFerry;

test.before(async () => {
  // A short session timeout so the timeout path ends in a second (the others never wait for it).
  f = await startFerry({ general: { session_timeout: 1 }, quotas: { session_create_rate: 0, sessions_per_client: 0, peer_connections_per_client: 0 } });
});

test.after(async () => {
  await f.stop();
});

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

async function one(i: number): Promise<void> {
  const path = PATHS[i % PATHS.length]!;
  const peer = await attach(f, 'janus.plugin.echotest');
  // The session lives on keepalives except on the timeout path.
  const keepalive = path === 'timeout' ? null : setInterval(() => {
    if (!peer.ws.closed) void peer.ws.request({ janus: 'keepalive', session_id: peer.session });
  }, 300);
  try {
    const dc = peer.pc.createDataChannel('JanusDataChannel');
    const got = collect(dc);
    await offerAndConnect(peer, { audio: true, video: true });
    await channelOpen(dc);
    dc.send(`hello ${i}`);
    await until(() => got.length === 1, 5000, () => `no echo on ${i}`);
    const owner = { session_id: peer.session, handle_id: peer.handle };
    switch (path) {
      case 'hangup':
        await peer.ws.request({ janus: 'hangup', ...owner });
        break;
      case 'detach':
        await peer.ws.request({ janus: 'detach', ...owner });
        break;
      case 'destroy':
        await peer.ws.request({ janus: 'destroy', session_id: peer.session });
        break;
      case 'websocket':
        await peer.ws.close();
        break;
      case 'peer-abort': {
        // The client's SCTP ABORT ends the association; the PeerConnection goes with hangup.
        const before = f.ferry.webrtc.dataChannelStats.closed['peer-abort'];
        await (peer.pc as any).sctpTransport.sctp.abort();
        await until(() => f.ferry.webrtc.dataChannelStats.closed['peer-abort'] > before, 5000, () => 'ABORT not seen');
        await peer.ws.request({ janus: 'hangup', ...owner });
        break;
      }
      case 'timeout':
        await peer.ws.nextEvent((e) => e['janus'] === 'timeout', 10_000);
        break;
    }
  } finally {
    if (keepalive) clearInterval(keepalive);
    // Not closePeer here: it closes every werift socket of the process, the parallel peers' too.
    await peer.close();
    last = peer.pc;
  }
}

let last: import('werift').RTCPeerConnection | null = null;

test(`${TOTAL} data-channel PeerConnections through every ending path leave nothing behind`, async () => {
  const baseline = timers();
  let next = 0;
  const workers = Array.from({ length: PARALLEL }, async () => {
    for (let i = next++; i < TOTAL; i = next++) await one(i);
  });
  await Promise.all(workers);
  if (last) await closePeer(last);
  const status = await waitUntilIdle(f, 20_000);
  assert.is(status['sessions'], 0);
  assert.is(status['peer_connections'], 0);
  assert.is(status['port_leases'], 0);
  const dc = (await ferryStatus(f))['data_channels'];
  assert.is(dc.associations, 0, 'associations');
  assert.is(dc.channels, 0, 'channels');
  assert.is(dc.timers, 0, 'association timers');
  assert.is(dc.associations_opened, TOTAL);
  assert.is(dc.messages_in, TOTAL);
  assert.ok(dc.closed['peer-abort'] >= Math.floor(TOTAL / PATHS.length), 'peer aborts counted');
  assert.is(f.ferry.engine.endpointCount(), 0);
  // Whatever ferry armed per PeerConnection is gone (werift's own peers are closed too).
  await until(() => timers() <= baseline + 2, 10_000, () => `${timers()} timers, ${baseline} before`);
});

test.run();
