// Show: the MQTT handler delivers the events of one full VideoRoom session through a real
// mosquitto (Debian's) started by the test on 127.0.0.1, to a subscriber on the topic. Then the
// broker goes away: ferry keeps the events in its backlog (counted), reconnects when the broker
// is back, and the subscriber, whose session the broker kept, receives them all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { MqttClient } from '../../src/events/mqtt/MqttClient.js';
import { ferryStatus } from '../helpers/ferry.js';
import { freePort } from '../sip/helpers.js';
import { pause, startVrFerry, until } from '../videoroom-e2e/harness.js';
import { checkVideoRoomEvents, eventsOf, hasMediaStats, Mosquitto, videoRoomSession, type JanusEventJson } from './helpers.js';

const EMITTER = 'ferry-evh-mqtt';
const TOPIC = 'ferry/test/events';
const OUTAGE_SESSIONS = 5;

test('MQTT handler: one full VideoRoom session through mosquitto, and a broker restart survived', async () => {
  const broker = new Mosquitto(await freePort());
  await broker.start();
  const received: JanusEventJson[] = [];
  // A persistent session (clean session off, QoS 1): the broker queues for it while it is away.
  const subscriber = new MqttClient({ host: '127.0.0.1', port: broker.port, clientId: 'ferry-test-sub', cleanSession: false, keepAliveSeconds: 5, onMessage: (topic, payload) => {
    if (topic === TOPIC) received.push(...eventsOf(JSON.parse(payload.toString('utf8'))));
  } });
  subscriber.start();
  const vr = await (async () => {
    await subscriber.whenConnected(5000);
    await subscriber.subscribe(TOPIC, 1);
    return startVrFerry({
      general: { server_name: EMITTER },
      events: { enabled: true, stats_period: 1, mqtt_url: `mqtt://127.0.0.1:${broker.port}`, mqtt_topic: TOPIC, mqtt_events: 'all', mqtt_grouping: true },
    });
  })();
  try {
    const handler = async () => (await ferryStatus(vr.f))['event_handlers'][0];
    assert.ok(await until(() => received.some((e) => e.type === 256 && e.event['status'] === 'started'), 10_000), 'core started through the broker');
    const ids = await videoRoomSession(
      vr.f,
      (ids) => hasMediaStats(received, ids.publisher.handle, 'packets-received') && hasMediaStats(received, ids.subscriber.handle, 'packets-sent'),
      15_000,
    );
    assert.ok(await until(() => received.some((e) => e.type === 1 && e.session_id === ids.publisher.session && e.event['name'] === 'destroyed'), 10_000), 'session destroyed delivered');
    checkVideoRoomEvents(received, ids, EMITTER);
    const up = await handler();
    assert.equal([up.handler, up.target, up.connected, up.dropped], ['mqtt', `mqtt://127.0.0.1:${broker.port}/${TOPIC}`, true, 0]);

    // The broker goes away; sessions come and go meanwhile.
    await broker.stop();
    assert.ok(await until(() => !vr.f.ferry.gateway.events.status()[0]!.connected, 10_000), 'the handler sees the broker gone');
    const outage: number[] = [];
    for (let i = 0; i < OUTAGE_SESSIONS; i++) {
      const id = await vr.f.http.createSession();
      await vr.f.http.post(`/${id}`, { janus: 'destroy' });
      outage.push(id);
    }
    await pause(1000);
    const down = await handler();
    assert.ok(down.backlog >= 2 * OUTAGE_SESSIONS, `held in the backlog: ${JSON.stringify(down)}`);
    assert.is(down.dropped, 0, 'within the backlog: nothing dropped');
    assert.ok(down.failed_attempts >= 1);

    await broker.start();
    assert.ok(await until(() => vr.f.ferry.gateway.events.status()[0]!.backlog === 0, 15_000), `delivered after the broker came back: ${JSON.stringify(vr.f.ferry.gateway.events.status()[0])}`);
    const expected = outage.flatMap((id) => [[id, 'created'], [id, 'destroyed']]);
    const got = () => received.filter((e) => e.type === 1 && outage.includes(e.session_id!)).map((e) => [e.session_id, e.event['name']]);
    assert.ok(await until(() => got().length >= expected.length, 15_000), `the subscriber got the outage's events: ${JSON.stringify(got())}`);
    assert.equal(got(), expected, 'every one, in order');
    assert.is((await handler()).dropped, 0);
  } finally {
    await vr.stop();
    subscriber.close();
    await broker.dispose();
  }
});

test.run();
