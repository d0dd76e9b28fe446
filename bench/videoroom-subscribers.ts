// Child process of bench/videoroom-werift.bench.ts: werift subscribers of one
// VideoRoom feed, so that receivers (which decrypt in JavaScript) are spread
// over processes as real subscribers are over machines. Started with
// `node --import tsx bench/videoroom-subscribers.ts WS_URL ROOM FEED COUNT`;
// talks over IPC: sends {ready} once every subscriber is up, answers
// {count} with {received: Received[]}, and {stop} with {stopped} after closing.
import type { RTCPeerConnection } from 'werift';

import { VrClient, closeAll, subscribe } from '../test/videoroom-e2e/harness.js';
import { DeliveryCounter, type Received } from './videoroom-count.js';

const [wsUrl, room, feed, count] = process.argv.slice(2);
if (!wsUrl || !room || !feed || !count || !process.send) throw new Error('usage: (forked) videoroom-subscribers.ts WS_URL ROOM FEED COUNT');
const send = (msg: object) => process.send!(msg);

const peers: RTCPeerConnection[] = [];
const counters: DeliveryCounter[] = [];
const clients: VrClient[] = [];

const drain = (): Received[] => counters.map((c) => ({ ...c.drain() }));
const drainTimer = setInterval(drain, 20);

async function stop(): Promise<void> {
  clearInterval(drainTimer);
  for (const c of clients) await c.close().catch(() => undefined);
  await closeAll(peers);
}

process.on('message', (msg: { type: string; sessionKeepalive?: boolean }) => {
  if (msg.type === 'count') {
    send({ type: 'received', received: drain() });
  } else if (msg.type === 'keepalive') {
    for (const c of clients) void c.ws.request({ janus: 'keepalive', session_id: c.sessionId }).catch(() => undefined);
  } else if (msg.type === 'stop') {
    void stop().then(() => {
      send({ type: 'stopped' });
      process.disconnect();
      process.exit(0);
    });
  }
});

try {
  for (let i = 0; i < Number(count); i++) {
    const s = await subscribe({ wsUrl }, Number(room), [{ feed: Number(feed) }], peers);
    counters.push(new DeliveryCounter(s));
    clients.push(s.client);
  }
  send({ type: 'ready' });
} catch (err) {
  send({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  await stop();
  process.exit(1);
}
