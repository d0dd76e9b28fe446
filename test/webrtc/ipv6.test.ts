// IPv6 (media.ipv6): ferry's media sockets are dual-stack and an EchoTest runs over ::1 with a
// werift peer that only speaks IPv6; an IPv4 peer still connects to the same ferry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { JanusWs } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { echoThrough } from '../helpers/echo.js';
import { closePeer } from '../helpers/werift.js';

test('an EchoTest over ::1, and one over 127.0.0.1, on dual-stack media sockets', async () => {
  const f = await startFerry({ media: { ipv6: true, bind: '0.0.0.0', candidate_addresses: '::1,127.0.0.1' } });
  const ws = await JanusWs.connect(f.wsUrl);
  const peers: RTCPeerConnection[] = [];
  try {
    const session = (await ws.request({ janus: 'create' }))['data'].id as number;
    const six = await echoThrough(ws, session, '::1', peers, { iceUseIpv6: true, iceUseIpv4: false, iceInterfaceAddresses: { udp6: '::1' }, iceAdditionalHostAddresses: ['::1'] });
    assert.is(six, 20, 'every packet echoed over IPv6');
    const four = await echoThrough(ws, session, '127.0.0.1', peers);
    assert.is(four, 20, 'and over IPv4 on the same sockets');
    const selected = f.ferry.engine.stats().endpoints.length;
    assert.is(selected, 2);
  } finally {
    for (const pc of peers) await closePeer(pc).catch(() => undefined);
    await ws.close();
    await f.stop();
  }
});

test.run();
