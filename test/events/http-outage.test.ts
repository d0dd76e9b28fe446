// Show: the collector stopped for 10 s loses no event inside the backlog limit, and counts
// those beyond it. Sessions are created and destroyed all through the outage (two session
// events each); after the collector is back, it has every event from before the outage and
// the first `max_backlog` of the outage, in order, and the handler counts the rest as dropped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { startGateway } from '../helpers/http.js';
import { pause, until } from '../videoroom-e2e/harness.js';
import { Collector } from './helpers.js';

const MAX_BACKLOG = 40;
const OUTAGE_MS = 10_000;
/** Sessions created and destroyed during the outage: 2 events each, more than the backlog holds. */
const OUTAGE_SESSIONS = 30;

test(`HTTP handler: a ${OUTAGE_MS / 1000} s collector outage keeps ${MAX_BACKLOG} events and counts the rest as dropped`, async () => {
  const collector = new Collector();
  await collector.start();
  const t = await startGateway({ events: { enabled: true, http_url: collector.url, http_events: 'sessions', http_max_backlog: MAX_BACKLOG } });
  try {
    const handler = () => t.gw.events.status()[0]!;
    const cycle = async (): Promise<number> => {
      const id = await t.http.createSession();
      await t.http.post(`/${id}`, { janus: 'destroy' });
      return id;
    };
    const before = [await cycle(), await cycle()];
    assert.ok(await until(() => collector.events.length === 4, 5000), 'before the outage: delivered');

    await collector.stop();
    const outage: number[] = [];
    const started = Date.now();
    // Spread over the whole outage (bounded by the count, not the clock).
    for (let i = 0; i < OUTAGE_SESSIONS; i++) {
      outage.push(await cycle());
      await pause(OUTAGE_MS / OUTAGE_SESSIONS);
    }
    await pause(Math.max(0, OUTAGE_MS - (Date.now() - started)));
    const during = handler();
    assert.is(collector.events.length, 4, 'nothing arrives while the collector is away');
    assert.is(during.backlog, MAX_BACKLOG, 'the backlog is full');
    assert.is(during.dropped, 2 * OUTAGE_SESSIONS - MAX_BACKLOG, 'the events beyond it are counted');
    assert.ok(during.failed_attempts >= 3, `retried with back-off: ${during.failed_attempts} attempts`);
    assert.not.ok(during.connected);
    assert.ok(during.last_error !== null);

    await collector.start(); // the same port
    assert.ok(await until(() => handler().backlog === 0, 15_000), `backlog delivered: ${JSON.stringify(handler())}`);
    const expected = [...before, ...outage].flatMap((id) => [[id, 'created'], [id, 'destroyed']]).slice(0, 4 + MAX_BACKLOG);
    assert.equal(collector.events.map((e) => [e.session_id, e.event['name']]), expected, 'everything before the outage and the first events of it, in order');
    const after = handler();
    assert.equal([after.sent, after.dropped, after.connected], [4 + MAX_BACKLOG, 2 * OUTAGE_SESSIONS - MAX_BACKLOG, true]);
    const status = (await t.admin.post('', { janus: 'ferry_status', admin_secret: t.config.auth.admin_secret }))['status'];
    assert.equal(status['event_handlers'][0]['dropped'], 2 * OUTAGE_SESSIONS - MAX_BACKLOG, 'Admin ferry_status shows it');
    const metrics = await (await fetch(`${t.adminBase}/metrics`)).text();
    assert.match(metrics, `ferry_event_handler_dropped_total{handler="http"} ${2 * OUTAGE_SESSIONS - MAX_BACKLOG}`);
    assert.match(metrics, `ferry_event_handler_backlog{handler="http"} 0`);
  } finally {
    await t.stop();
    await collector.stop();
  }
});

test.run();
