// Show: an HTTP collector receives the events of one full VideoRoom session (session, handle,
// jsep, webrtc, media, plugin) in Janus's shape, from werift peers on 127.0.0.1; ferry_status
// and /metrics count what the handler sent; the shutdown event arrives last.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ferryStatus } from '../helpers/ferry.js';
import { startVrFerry, until } from '../videoroom-e2e/harness.js';
import { checkVideoRoomEvents, Collector, hasMediaStats, videoRoomSession } from './helpers.js';

const EMITTER = 'ferry-evh-http';

test('HTTP handler: one full VideoRoom session in Janus\'s shape, grouped POSTs', async () => {
  const collector = new Collector();
  await collector.start();
  const vr = await startVrFerry({
    general: { server_name: EMITTER },
    events: { enabled: true, stats_period: 1, http_url: collector.url, http_events: 'all', http_grouping: true },
  });
  let stopped = false;
  try {
    const ids = await videoRoomSession(
      vr.f,
      (ids) => hasMediaStats(collector.events, ids.publisher.handle, 'packets-received') && hasMediaStats(collector.events, ids.subscriber.handle, 'packets-sent'),
      15_000,
    );
    // The endings (hangup, detached, destroyed) are delivered once the handler's pump gets to them.
    assert.ok(await until(() => collector.events.some((e) => e.type === 1 && e.session_id === ids.publisher.session && e.event['name'] === 'destroyed'), 10_000), 'session destroyed delivered');
    const status = await ferryStatus(vr.f);
    const http = status['event_handlers'][0];
    assert.equal([http.handler, http.target, http.events, http.grouping, http.dropped], ['http', collector.url, ['all'], true, 0]);
    assert.ok(http.sent >= collector.events.length - http.backlog, 'sent counts what the collector got');
    const metrics = await (await fetch(new URL('/metrics', vr.f.admin.base))).text();
    assert.match(metrics, /ferry_event_handler_sent_total\{handler="http"\} [1-9]/);
    assert.ok(collector.posts < collector.events.length, `grouping: ${collector.events.length} events in ${collector.posts} POSTs`);
    for (let i = 1; i < collector.events.length; i++) {
      assert.ok(collector.events[i]!.timestamp >= collector.events[i - 1]!.timestamp, 'delivered in the order they happened');
    }
    checkVideoRoomEvents(collector.events, ids, EMITTER);
    await vr.stop();
    stopped = true;
    const last = collector.events[collector.events.length - 1]!;
    assert.equal([last.type, last.subtype, last.event['status']], [256, 2, 'shutdown'], 'the shutdown event is delivered before ferry stops');
  } finally {
    if (!stopped) await vr.stop();
    await collector.stop();
  }
});

test.run();
