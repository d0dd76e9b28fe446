/**
 * lessons.md §3: 10^4 sessions with handles through every ending path —
 * destroy, Admin destroy, timeout, WebSocket closed without reclaim, closed
 * with reclaim expiring, shutdown — pipelined over a few real WebSocket
 * connections (plus an HTTP subset); afterwards Admin counts, /metrics, the
 * registry and the plugin's own bookkeeping agree and are zero.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { JanusWs, startGateway, waitFor, type Json, type TestGateway } from '../helpers/http.js';
import { ScriptedPlugin, TEST_PLUGIN } from '../helpers/testPlugins.js';

const N = 10_000;
const HTTP_SUBSET = 100;
const CONNECTIONS = 4;
const ADMIN = 'janusoverlord';

interface Ctx {
  t: TestGateway;
  plugin: ScriptedPlugin;
  sockets: JanusWs[];
}

/** Creates `n` sessions with one handle each, pipelined over the sockets; returns session ids per socket. */
async function populate(sockets: JanusWs[], n: number): Promise<number[][]> {
  const perSocket = sockets.map(() => [] as number[]);
  const creates = Array.from({ length: n }, (_, i) => {
    const k = i % sockets.length;
    return (sockets[k] as JanusWs).request({ janus: 'create' }).then((r) => {
      assert.is(r['janus'], 'success');
      (perSocket[k] as number[]).push(r['data'].id);
    });
  });
  await Promise.all(creates);
  const attaches: Promise<void>[] = [];
  perSocket.forEach((ids, k) => {
    for (const sid of ids) {
      attaches.push((sockets[k] as JanusWs).request({ janus: 'attach', session_id: sid, plugin: TEST_PLUGIN }).then((r: Json) => {
        assert.is(r['janus'], 'success');
      }));
    }
  });
  await Promise.all(attaches);
  return perSocket;
}

async function populateHttp(t: TestGateway, n: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const sid = await t.http.createSession();
    await t.http.attach(sid, TEST_PLUGIN);
    ids.push(sid);
  }
  return ids;
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} missing`);
  return Number(m[1]);
}

/** Admin counts, /metrics, registry and plugin agree and are zero. */
async function assertAllZero(ctx: Ctx, expectedEnded: number, reason: string, viaHttp = true): Promise<void> {
  const { t, plugin } = ctx;
  assert.is(t.gw.registry.sessionCount, 0, 'registry sessions');
  assert.is(t.gw.registry.handleCount, 0, 'registry handles');
  const status = viaHttp ? (await t.admin.post('', { janus: 'ferry_status', admin_secret: ADMIN }))['status'] : t.gw.status();
  assert.is(status.sessions, 0);
  assert.is(status.handles, 0);
  assert.is(status.peer_connections, 0);
  assert.is(status.long_poll_waiters, 0);
  assert.is(status.queued_events, 0);
  if (viaHttp) assert.equal((await t.admin.post('', { janus: 'list_sessions', admin_secret: ADMIN }))['sessions'], []);
  const metrics = viaHttp ? await (await fetch(`${t.adminBase}/metrics`)).text() : await t.gw.metrics.text();
  for (const name of ['ferry_sessions', 'ferry_handles', 'ferry_long_poll_waiters', 'ferry_event_backlog', 'ferry_peer_connections']) {
    assert.is(metricValue(metrics, name), 0, name);
  }
  assert.is(metricValue(metrics, `ferry_sessions_ended_total\\{reason="${reason}"\\}`), expectedEnded, 'ended by this path');
  const destroyed = plugin.calls.filter((c) => c.startsWith('destroy:')).length;
  assert.is(destroyed, expectedEnded, 'every plugin handle destroyed exactly once');
}

const churn = suite<Ctx>('churn');

async function setup(ctx: Ctx, general: Record<string, number> = {}): Promise<void> {
  ctx.plugin = new ScriptedPlugin();
  ctx.t = await startGateway({ general }, { plugins: [ctx.plugin] });
  ctx.sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => JanusWs.connect(ctx.t.wsUrl)));
}
churn.after.each(async (ctx) => {
  await Promise.all(ctx.sockets.map((s) => s.close()));
  await ctx.t.stop();
});

churn('destroy', async (ctx) => {
  await setup(ctx);
  const ids = await populate(ctx.sockets, N);
  const httpIds = await populateHttp(ctx.t, HTTP_SUBSET);
  assert.is(ctx.t.gw.registry.sessionCount, N + HTTP_SUBSET);
  await Promise.all(ids.flatMap((list, k) => list.map(async (sid) => {
    assert.is((await (ctx.sockets[k] as JanusWs).request({ janus: 'destroy', session_id: sid }))['janus'], 'success');
  })));
  for (const sid of httpIds) assert.is((await ctx.t.http.post(`/${sid}`, { janus: 'destroy' }))['janus'], 'success');
  await assertAllZero(ctx, N + HTTP_SUBSET, 'destroy');
});

churn('admin destroy', async (ctx) => {
  await setup(ctx);
  const ids = (await populate(ctx.sockets, N)).flat();
  const httpIds = await populateHttp(ctx.t, HTTP_SUBSET);
  const admin = await JanusWs.connect(ctx.t.adminWsUrl, 'janus-admin-protocol');
  await Promise.all(ids.map(async (sid) => {
    assert.is((await admin.request({ janus: 'destroy_session', session_id: sid, admin_secret: ADMIN }))['janus'], 'success');
  }));
  await admin.close();
  for (const sid of httpIds) assert.is((await ctx.t.admin.post(`/${sid}`, { janus: 'destroy_session', admin_secret: ADMIN }))['janus'], 'success');
  await assertAllZero(ctx, N + HTTP_SUBSET, 'admin-destroy');
});

churn('timeout', async (ctx) => {
  await setup(ctx, { session_timeout: 60 });
  await populate(ctx.sockets, N);
  const httpIds = await populateHttp(ctx.t, HTTP_SUBSET);
  // A waiting long poll hears the timeout too: give one HTTP session a timeout shorter than the 30 s poll.
  await ctx.t.admin.post(`/${httpIds[0]}`, { janus: 'set_session_timeout', timeout: 20, admin_secret: ADMIN });
  const poll = ctx.t.http.get(`/${httpIds[0]}`);
  await waitFor(() => ctx.t.gw.registry.longPollWaiterCount === 1);
  ctx.t.clock.advance(22_000);
  assert.equal((await poll).body, { janus: 'timeout', session_id: httpIds[0] });
  ctx.t.clock.advance(36_000);
  assert.is(ctx.t.gw.registry.sessionCount, N + HTTP_SUBSET - 1, 'no session before its timeout');
  ctx.t.clock.advance(3_000);
  await waitFor(() => ctx.sockets.reduce((n, s) => n + s.events.filter((e) => e['janus'] === 'timeout').length, 0) === N, 20_000);
  await assertAllZero(ctx, N + HTTP_SUBSET, 'timeout');
});

churn('WebSocket closed, no reclaim', async (ctx) => {
  await setup(ctx);
  await populate(ctx.sockets, N);
  await Promise.all(ctx.sockets.map((s) => s.close()));
  await waitFor(() => ctx.t.gw.registry.sessionCount === 0, 20_000);
  await assertAllZero(ctx, N, 'transport-gone');
});

churn('WebSocket closed, reclaim window expires', async (ctx) => {
  await setup(ctx, { reclaim_session_timeout: 5 });
  await populate(ctx.sockets, N);
  await Promise.all(ctx.sockets.map((s) => s.close()));
  await waitFor(() => [...ctx.t.gw.registry.all()].every((s) => s.transportGone), 20_000);
  assert.is(ctx.t.gw.registry.sessionCount, N, 'kept for reclaim');
  ctx.t.clock.advance(4_000);
  assert.is(ctx.t.gw.registry.sessionCount, N);
  ctx.t.clock.advance(2_000);
  await assertAllZero(ctx, N, 'reclaim-expired');
});

churn('shutdown', async (ctx) => {
  await setup(ctx);
  await populate(ctx.sockets, N);
  const httpIds = await populateHttp(ctx.t, HTTP_SUBSET);
  const poll = ctx.t.http.get(`/${httpIds[0]}`);
  await waitFor(() => ctx.t.gw.registry.longPollWaiterCount === 1);
  await ctx.t.stop();
  assert.equal((await poll).body, { janus: 'keepalive' }, 'pending long poll answered at shutdown');
  await waitFor(() => ctx.sockets.every((s) => s.closed));
  assert.ok(ctx.plugin.destroyed, 'plugins destroyed');
  // Listeners are closed now: read the same sources /metrics and the Admin API read.
  await assertAllZero(ctx, N + HTTP_SUBSET, 'shutdown', false);
});

churn.run();
