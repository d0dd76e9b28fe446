/**
 * Per-client quotas in the core: the session-creation token bucket (on a
 * manual clock, so no wall-clock threshold), concurrent sessions per client,
 * client keys (address, IPv6 /64, token), the Janus error a refused `create`
 * gets (472, naming the limit), the refusal counter in /metrics, and the
 * counts in Admin `ferry_status` returning to zero.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/time/Clock.js';
import { Quotas, QuotaExceededError, clientKey } from '../../src/core/Quotas.js';
import { JanusWs, startGateway, type Json } from '../helpers/http.js';

const ADMIN = 'janusoverlord';
const OFF = { session_create_rate: 0, session_create_burst: 1, sessions_per_client: 0, peer_connections_per_client: 0, rooms_per_client: 0 };

const units = suite('quotas: units');

units('token bucket: a burst, then the rate, refilled by the clock', () => {
  const clock = new ManualClock();
  const q = new Quotas({ ...OFF, session_create_rate: 2, session_create_burst: 3 }, clock);
  const refusals: string[] = [];
  q.onRefusal = (limit) => refusals.push(limit);
  for (let i = 0; i < 3; i++) q.admitSession('a');
  assert.throws(() => q.admitSession('a'), (e: unknown) => e instanceof QuotaExceededError && e.limit === 'session_create_rate');
  q.admitSession('b'); // another client has its own bucket
  clock.advance(499);
  assert.throws(() => q.admitSession('a'), /session_create_rate/);
  clock.advance(1); // 500 ms at 2/s: one token
  q.admitSession('a');
  assert.throws(() => q.admitSession('a'), /session_create_rate/);
  clock.advance(60_000); // refills to the burst, not beyond
  for (let i = 0; i < 3; i++) q.admitSession('a');
  assert.throws(() => q.admitSession('a'), /session_create_rate/);
  assert.equal(refusals, ['session_create_rate', 'session_create_rate', 'session_create_rate', 'session_create_rate']);
});

units('concurrent sessions, PeerConnections and rooms per client; releases are idempotent; counts return to zero', () => {
  const q = new Quotas({ ...OFF, sessions_per_client: 2, peer_connections_per_client: 2, rooms_per_client: 1 }, new ManualClock());
  q.admitSession('a');
  q.bindSession(1, 'a');
  q.admitSession('a');
  q.bindSession(2, 'a');
  assert.throws(() => q.admitSession('a'), /sessions_per_client = 2/);
  const pc1 = q.acquirePeerConnection(1);
  const pc2 = q.acquirePeerConnection(2); // per client, whichever session
  assert.throws(() => q.acquirePeerConnection(1), /peer_connections_per_client = 2/);
  pc1();
  pc1();
  const pc3 = q.acquirePeerConnection(1);
  const room = q.acquireRoom(2);
  assert.throws(() => q.acquireRoom(1), /rooms_per_client = 1/);
  assert.equal(q.status(), { clients: 1, sessions: 2, peer_connections: 2, rooms: 1, rate_buckets: 0 });
  assert.is(q.acquirePeerConnection(99)(), undefined, 'a session not admitted here is not limited');
  q.sessionEnded(1);
  q.sessionEnded(1);
  q.admitSession('a'); // a slot came back
  q.bindSession(3, 'a');
  for (const release of [pc2, pc3, room]) release();
  q.sessionEnded(2);
  q.sessionEnded(3);
  assert.equal(q.status(), { clients: 0, sessions: 0, peer_connections: 0, rooms: 0, rate_buckets: 0 });
});

units('client keys: address, IPv4-mapped IPv6, IPv6 by /64, token', () => {
  assert.is(clientKey('127.0.0.1', null), 'address:127.0.0.1');
  assert.is(clientKey('::ffff:127.0.0.1', null), 'address:127.0.0.1');
  assert.is(clientKey('2001:db8:1:2:3:4:5:6', null), clientKey('2001:db8:1:2::9', null));
  assert.is.not(clientKey('2001:db8:1:2::9', null), clientKey('2001:db8:1:3::9', null));
  assert.is(clientKey('::1', null), 'address:0:0:0:0/64');
  assert.is(clientKey('127.0.0.1', 'tok'), 'token:tok');
  assert.is(clientKey(undefined, null), 'address:unknown');
});

units.run();

const api = suite('quotas: Janus API');

function metric(text: string, limit: string): number {
  const m = new RegExp(`^ferry_quota_refusals_total\\{limit="${limit}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

api('sessions per client and creation rate: 472 naming the limit, other addresses unaffected, counted, back to zero', async () => {
  const t = await startGateway({ quotas: { sessions_per_client: 3, session_create_rate: 1, session_create_burst: 5 } });
  const other = await JanusWs.connect(t.wsUrl, 'janus-protocol', { localAddress: '127.0.0.2' });
  try {
    const ids: number[] = [];
    let refused: Json | undefined;
    for (let i = 0; i < 20; i++) {
      const r = await t.http.post('', { janus: 'create' });
      if (r['janus'] === 'success') ids.push(r['data'].id);
      else refused = r;
    }
    assert.is(ids.length, 3);
    assert.is(refused?.['error'].code, 472);
    assert.match(refused?.['error'].reason, /sessions_per_client = 3/);
    // 127.0.0.2 is another client: its own quota.
    const o = await other.request({ janus: 'create' });
    assert.is(o['janus'], 'success', JSON.stringify(o));
    // Ending a session gives the slot back; the bucket (5, no refill on the manual clock) then runs dry.
    await t.http.post(`/${ids.pop()}`, { janus: 'destroy' });
    await t.http.post(`/${ids.pop()}`, { janus: 'destroy' });
    ids.push((await t.http.post('', { janus: 'create' }))['data'].id); // 4th token
    ids.push((await t.http.post('', { janus: 'create' }))['data'].id); // 5th token
    await t.http.post(`/${ids.pop()}`, { janus: 'destroy' });
    const dry = await t.http.post('', { janus: 'create' });
    assert.is(dry['error']?.code, 472);
    assert.match(dry['error'].reason, /session_create_rate = 1/);
    t.clock.advance(1000);
    ids.push((await t.http.post('', { janus: 'create' }))['data'].id);
    const metrics = await (await fetch(`${t.adminBase}/metrics`)).text();
    assert.is(metric(metrics, 'sessions_per_client'), 17);
    assert.is(metric(metrics, 'session_create_rate'), 1);
    let status = (await t.admin.post('', { janus: 'ferry_status', admin_secret: ADMIN }))['status'];
    assert.is(status.quotas.sessions, 4);
    assert.is(status.quotas.clients, 2);
    for (const id of ids) await t.http.post(`/${id}`, { janus: 'destroy' });
    await other.request({ janus: 'destroy', session_id: o['data'].id });
    t.clock.advance(10_000); // buckets refill and are forgotten
    status = (await t.admin.post('', { janus: 'ferry_status', admin_secret: ADMIN }))['status'];
    assert.equal(status.quotas, { clients: 0, sessions: 0, peer_connections: 0, rooms: 0, rate_buckets: 0 });
    assert.is(status.sessions, 0);
  } finally {
    await other.close();
    await t.stop();
  }
});

api('with token auth, each token is its own client whatever its address', async () => {
  const t = await startGateway({ auth: { token_auth: true }, quotas: { sessions_per_client: 2 } });
  try {
    for (const token of ['alpha', 'beta']) {
      const r = await t.admin.post('', { janus: 'add_token', token, admin_secret: ADMIN });
      assert.is(r['janus'], 'success', JSON.stringify(r));
    }
    const results: Record<string, number[]> = { alpha: [], beta: [] };
    for (const token of ['alpha', 'beta']) {
      for (let i = 0; i < 3; i++) results[token]!.push(((await t.http.post('', { janus: 'create', token }))['error']?.code as number | undefined) ?? 0);
    }
    assert.equal(results, { alpha: [0, 0, 472], beta: [0, 0, 472] });
    const unknown = await t.http.post('', { janus: 'create', token: 'gamma' });
    assert.is(unknown['error'].code, 403, 'an invalid token is refused by auth, not counted as a new client');
  } finally {
    await t.stop();
  }
});

api.run();
