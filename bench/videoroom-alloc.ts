// What ferry's JavaScript allocates while a VideoRoom forwards: the scenario of
// videoroom-werift.bench.ts (ferry as its own process, 1 werift publisher at
// 1000 packets/s, 10 werift subscribers), with V8's sampling heap profiler
// running in the ferry process over the steady-state window through the
// inspector, counting garbage as well as what survives. Prints bytes allocated
// per second and the allocating stacks. A diagnostic, not a figure:
//
//   node --import tsx bench/videoroom-alloc.ts [window seconds, default 20]
import WebSocket from 'ws';

import { videoroomWerift } from './videoroom-werift.bench.js';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const seconds = Number(process.argv[2] ?? 20);
/** One sample per this many bytes on average (V8's default is 32 KiB: far too coarse here). */
const SAMPLING_INTERVAL = 256;

let report = '';
const result = await videoroomWerift(seconds, {
  nodeArgs: ['--inspect=127.0.0.1:0'],
  duringWindow: async (fp, ms) => {
    const url = /ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+/.exec(fp.output())?.[0];
    if (!url) throw new Error(`the ferry process printed no inspector URL\n${fp.output()}`);
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    let nextId = 0;
    const pending = new Map<number, (result: unknown) => void>();
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
    });
    const call = (method: string, params: object = {}) =>
      new Promise<unknown>((resolve) => {
        const id = ++nextId;
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      });
    await call('HeapProfiler.enable');
    await call('HeapProfiler.startSampling', {
      samplingInterval: SAMPLING_INTERVAL,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, ms - 300)));
    const { profile } = (await call('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
    const sampled = (performance.now() - t0) / 1000;
    ws.close();

    const stacks = new Map<string, number>();
    let total = 0;
    const frame = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
    const walk = (n: ProfileNode, path: string[]) => {
      const here = [frame(n), ...path];
      if (n.selfSize > 0) {
        const key = here.slice(0, 6).join(' < ');
        stacks.set(key, (stacks.get(key) ?? 0) + n.selfSize);
        total += n.selfSize;
      }
      for (const c of n.children) walk(c, here);
    };
    walk(profile.head, []);
    const top = [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 20);
    report = [
      `ferry JS allocated ~${(total / 1024 / sampled).toFixed(1)} KB/s over ${sampled.toFixed(1)} s (sampled every ~${SAMPLING_INTERVAL} bytes)`,
      ...top.map(([stack, bytes]) => `${(bytes / 1024 / sampled).toFixed(2).padStart(8)} KB/s  ${stack}`),
    ].join('\n');
  },
});
console.log(report);
console.log(
  `delivered ${result.deliveredPps.toFixed(0)} packets/s (published ${result.publishedPps.toFixed(0)}/s); ` +
    `ferry ${result.usPerPacket.toFixed(3)} µs/packet (node ${result.nodeUsPerPacket.toFixed(3)}, media ${result.mediaUsPerPacket.toFixed(3)}; inspector attached)`,
);
