// Replies leave from the address the peer used: ferry bound to 0.0.0.0 advertises 127.0.0.2 and
// 127.0.0.3; a werift peer that may only pair with 127.0.0.2 and another only with 127.0.0.3
// both connect and get their EchoTest audio back (before IP_PKTINFO, ICE never connected:
// answers left from 127.0.0.1). Also in single-port mode.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { JanusWs } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { freeUdpPorts } from '../helpers/udp.js';
import { closePeer } from '../helpers/werift.js';
import { echoThrough } from '../helpers/echo.js';

for (const singlePort of [false, true]) {
  test(`bound to 0.0.0.0${singlePort ? ' in single-port mode' : ''}: peers reach ferry through each advertised address`, async () => {
    const threads = Number(process.env['FERRY_MEDIA_WORKERS'] ?? 1);
    const shared = singlePort ? { single_port: (await freeUdpPorts(threads)).join(','), workers: threads } : {};
    const f = await startFerry({ media: { bind: '0.0.0.0', candidate_addresses: '127.0.0.2,127.0.0.3', ...shared } });
    const ws = await JanusWs.connect(f.wsUrl);
    const peers: RTCPeerConnection[] = [];
    try {
      const session = (await ws.request({ janus: 'create' }))['data'].id as number;
      for (const address of ['127.0.0.2', '127.0.0.3']) {
        const echoed = await echoThrough(ws, session, address, peers);
        assert.is(echoed, 20, `every packet echoed through ${address}`);
      }
    } finally {
      for (const pc of peers) await closePeer(pc).catch(() => undefined);
      await ws.close();
      await f.stop();
    }
  });
}

test('nat_1_1_mapping announces the public address first; keep_private_host keeps the private one reachable', async () => {
  // 203.0.113.5 (TEST-NET-3) is announced but never paired with: the peer may only pair with
  // 127.0.0.2, so no packet leaves the machine.
  const f = await startFerry({ media: { bind: '0.0.0.0', candidate_addresses: '127.0.0.2', nat_1_1_mapping: '203.0.113.5', keep_private_host: true } });
  const ws = await JanusWs.connect(f.wsUrl);
  const peers: RTCPeerConnection[] = [];
  try {
    const session = (await ws.request({ janus: 'create' }))['data'].id as number;
    assert.is(await echoThrough(ws, session, '127.0.0.2', peers), 20, 'every packet echoed through the private address');
    const answer = peers[0]!.remoteDescription!.sdp;
    const announced = [...answer.matchAll(/a=candidate:\S+ 1 udp \d+ (\S+) \d+ typ host/g)].map((m) => m[1]);
    assert.equal([...new Set(announced)], ['203.0.113.5', '127.0.0.2'], 'the public address first, then the private one');
  } finally {
    for (const pc of peers) await closePeer(pc).catch(() => undefined);
    await ws.close();
    await f.stop();
  }
});

test.run();
