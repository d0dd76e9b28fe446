// Child process of bench/videoroom-werift.bench.ts: werift subscribers of one
// VideoRoom feed, so that receivers (which decrypt in JavaScript) are spread
// over processes as real subscribers are over machines. Started with
// `node --import tsx bench/videoroom-subscribers.ts WS_URL ROOM FEED COUNT`;
// talks over IPC: sends {ready} once every subscriber is up, answers
// {count} with {received: number[]}, and {stop} with {stopped} after closing.
import type { RTCPeerConnection } from 'werift';

import { VrClient, closeAll, subscribe, type WeriftSubscriber } from '../test/videoroom-e2e/harness.js';

const [wsUrl, room, feed, count] = process.argv.slice(2);
if (!wsUrl || !room || !feed || !count || !process.send) throw new Error('usage: (forked) videoroom-subscribers.ts WS_URL ROOM FEED COUNT');
const send = (msg: object) => process.send!(msg);

const peers: RTCPeerConnection[] = [];
const subs: WeriftSubscriber[] = [];
const clients: VrClient[] = [];
const received: number[] = [];

/** Counts what each subscriber received and drops the packets (the harness keeps them all). */
function drain(): void {
  subs.forEach((s, i) => {
    for (const list of s.received.values()) {
      received[i] = (received[i] ?? 0) + list.length;
      list.length = 0;
    }
  });
}

const drainTimer = setInterval(drain, 20);

async function stop(): Promise<void> {
  clearInterval(drainTimer);
  for (const c of clients) await c.close().catch(() => undefined);
  await closeAll(peers);
}

process.on('message', (msg: { type: string; sessionKeepalive?: boolean }) => {
  if (msg.type === 'count') {
    drain();
    send({ type: 'received', received });
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
    subs.push(s);
    clients.push(s.client);
    received.push(0);
  }
  send({ type: 'ready' });
} catch (err) {
  send({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  await stop();
  process.exit(1);
}
