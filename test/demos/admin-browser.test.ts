// The Admin demo page in headless Chromium against ferry on 127.0.0.1: it
// polls the Admin API over HTTP (another port, CORS) and shows sessions and
// handles as they come and go; a wrong secret is reported, not retried.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';
import { pageErrors, pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';
import { freePort } from '../sip/helpers.js';

const env = useFerryAndChromium(test);

interface Shown {
  /** The whole page as a person reads it. */
  text: string;
  /** The sessions table only (the log below it keeps ids of past actions). */
  sessions: string;
  /** The error banner. */
  banner: string;
  ticks: number;
  error: string | null;
  running: boolean;
  state: string;
}

function shown(page: Page): Promise<Shown> {
  return page.evaluate((): Shown => {
    const g = globalThis as any;
    const d = g.ferryAdmin;
    return { text: g.document.body.innerText as string, sessions: g.document.getElementById('sessions').innerText as string, banner: g.document.getElementById('error').innerText as string, ticks: d?.ticks ?? 0, error: d?.error ?? null, running: !!d?.running, state: g.document.getElementById('state')?.textContent ?? '' };
  });
}

const adminPage = (query: string) => `${env.gw.origin}${env.gw.config.demos.path}/admin.html?interval=500&${query}`;

test('Admin page: a session and its echotest handle appear live, then disappear when destroyed', async () => {
  const page = await env.browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = pageErrors(page);
  await page.goto(adminPage(`secret=${encodeURIComponent(env.gw.config.auth.admin_secret ?? '')}`));
  const first = await pollUntil(() => shown(page), (s) => s.ticks >= 1, 10_000);
  assert.ok(first.ticks >= 1, `the page polled the Admin API: ${JSON.stringify({ ...first, text: first.text.slice(0, 400) })}; page errors: ${errors.join(' | ')}`);
  assert.is(first.error, null);
  assert.is(first.state, 'live');
  assert.match(first.text, /No sessions\./);
  assert.match(first.text, /Demo Room/, 'the VideoRoom demo room is listed');

  const session = await env.gw.http.createSession();
  const handle = await env.gw.http.attach(session, 'janus.plugin.echotest');
  const withHandle = await pollUntil(() => shown(page), (s) => s.text.includes(String(handle)), 10_000);
  assert.ok(withHandle.text.includes(String(session)), `session ${session} shown`);
  assert.ok(withHandle.text.includes(String(handle)), `handle ${handle} shown: ${withHandle.text.slice(0, 800)}`);
  assert.ok(withHandle.text.includes('janus.plugin.echotest'), 'the handle plugin is shown');
  // The page's data agrees with ferry's own count.
  const counted = await page.evaluate(() => (globalThis as any).ferryAdmin.snapshot.status.handles as number);
  assert.is(counted, 1);

  // A live PeerConnection (the EchoTest page in another tab): its ICE/DTLS state, port lease and engine traffic show up.
  const echo = await env.browser.newPage();
  await echo.goto(`${env.gw.origin}${env.gw.config.demos.path}/echotest.html?autostart=1`);
  const live = await pollUntil(
    async () => ({
      view: await shown(page),
      status: await page.evaluate(() => (globalThis as any).ferryAdmin.snapshot.status as { peer_connections: number; port_leases: number; engine: Record<string, number> }),
      pools: await page.evaluate(() => (globalThis as any).document.getElementById('pools').innerText as string),
      rxRate: await page.evaluate(() => Number((globalThis as any).document.querySelector('[data-series="rx_pps"] b').textContent)),
    }),
    (v) => /pc: connected/.test(v.view.sessions) && /dtls: connected/.test(v.view.sessions) && v.rxRate > 0,
    20_000,
  );
  assert.match(live.view.sessions, /pc: connected/, live.view.sessions);
  assert.match(live.view.sessions, /dtls: connected/);
  assert.match(live.view.sessions, /mid 0 audio opus/, 'negotiated streams are listed');
  assert.is(live.status.peer_connections, 1);
  assert.ok(live.status.port_leases >= 1);
  assert.match(live.pools, /echotest|handle|session|webrtc/i, `the lease owner is shown: ${live.pools}`);
  assert.ok((live.status.engine['rxPackets'] ?? 0) > 0, 'engine counters move');
  assert.ok(live.rxRate > 0, 'the rx packets/s figure is live');
  await saveScreenshot(page, 'admin');
  await echo.click('#stop');
  await echo.close();
  await pollUntil(() => shown(page), (s) => s.sessions.includes(String(handle)) && !/pc: /.test(s.sessions), 10_000);

  // A session destroyed through the client API is gone from the page at the next refresh.
  const destroyed = await env.gw.http.post(`/${session}`, { janus: 'destroy' });
  assert.is(destroyed['janus'], 'success');
  const after = await pollUntil(() => shown(page), (s) => !s.text.includes(String(handle)) && !s.text.includes(String(session)), 10_000);
  assert.not.ok(after.text.includes(String(handle)), `handle gone from the page: ${after.text}`);
  assert.not.ok(after.text.includes(String(session)), 'session gone from the page');
  assert.is(after.error, null);

  // The page's own "destroy" button ends a session through Admin destroy_session.
  const second = await env.gw.http.createSession();
  await env.gw.http.attach(second, 'janus.plugin.sip');
  await pollUntil(() => shown(page), (s) => s.text.includes(String(second)), 10_000);
  await page.click(`button[data-session="${second}"]`);
  const ended = await pollUntil(
    async () => (await env.gw.admin.post('', { janus: 'list_sessions', admin_secret: env.gw.config.auth.admin_secret })) as any,
    (r) => r.sessions.length === 0,
    10_000,
  );
  assert.equal(ended.sessions, [], 'destroy button ended the session');
  const gone = await pollUntil(() => shown(page), (s) => !s.sessions.includes(String(second)), 10_000);
  assert.not.ok(gone.sessions.includes(String(second)), gone.sessions);
  assert.match(gone.sessions, /No sessions\./);
  assert.equal(errors, [], `no page errors: ${errors.join(' | ')}`);
  await page.close();
});

test('Admin page: a wrong secret is shown as an error and polling stops', async () => {
  const page = await env.browser.newPage();
  const errors = pageErrors(page);
  await page.goto(adminPage('secret=not-the-secret'));
  const s = await pollUntil(() => shown(page), (v) => v.error !== null, 10_000);
  assert.match(s.error ?? '', /Wrong admin secret/);
  assert.match(s.banner, /Wrong admin secret/, 'the error is visible on the page');
  assert.is(s.state, 'unauthorized');
  assert.is(s.running, false, 'no retrying with a secret ferry refused');
  assert.is(s.ticks, 0);

  // Typing the right secret recovers (and it is remembered for the next visit).
  await page.fill('#secret', env.gw.config.auth.admin_secret ?? '');
  await page.click('#connect');
  const ok = await pollUntil(() => shown(page), (v) => v.ticks >= 1 && v.error === null, 10_000);
  assert.is(ok.error, null);
  assert.is(ok.state, 'live');
  assert.is(ok.banner, '', 'the error banner is cleared');
  await page.goto(adminPage(''));
  const remembered = await pollUntil(() => shown(page), (v) => v.ticks >= 1, 10_000);
  assert.is(remembered.state, 'live', 'the secret came back from localStorage');
  // The console error logged for the 403 is the page's own report, not a failure.
  assert.ok(errors.every((e) => e.includes('Wrong admin secret')), errors.join(' | '));
  await page.close();
});

test('Admin page: an unreachable Admin API is reported and retried', async () => {
  const page = await env.browser.newPage();
  const closed = await freePort(); // nothing listens there once freePort returns
  // ferry.json pointing at a closed port: what a person sees when Admin is down or firewalled.
  await page.route('**/ferry.json', (route) =>
    route.fulfill({ contentType: 'application/json', body: JSON.stringify({ janusPath: '/janus', websocketPort: null, admin: { port: closed, path: '/admin' } }) }),
  );
  await page.goto(adminPage(`secret=${encodeURIComponent(env.gw.config.auth.admin_secret ?? '')}`));
  const s = await pollUntil(() => shown(page), (v) => v.error !== null, 10_000);
  assert.match(s.error ?? '', /unreachable/);
  assert.match(s.banner, /Admin API unreachable at http:\/\/127\.0\.0\.1:\d+\/admin/);
  assert.is(s.state, 'unreachable');
  assert.is(s.running, true, 'keeps retrying');
  await page.close();
});

test.run();
