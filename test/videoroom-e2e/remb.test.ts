// A room's bitrate caps its publishers as Janus's VideoRoom does it: REMB (draft-alvestrand-
// rmcat-remb) with the room's `bitrate`, or the publisher's own `configure` `bitrate`, repeated
// every second; a werift publisher's sender records the cap it was sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { payload, publish, sendRtp, until, withRoom } from './harness.js';

test("the room's bitrate reaches the publisher as REMB; configure bitrate changes it, within the room's cap", () =>
  withRoom({ room: 66, publishers: 2, bitrate: 300_000, bitrate_cap: true }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 66, 'capped', peers);
    const sender = pub.video as unknown as { receiverEstimatedMaxBitrate: bigint | number };
    const cap = () => Number(sender.receiverEstimatedMaxBitrate ?? 0);
    // Media flows, so the publisher's SSRC is known and the REMB names it.
    for (let i = 0; i < 20; i++) await sendRtp(pub.video, 10 + i, i * 3000, payload('v', i, 300), true);
    assert.ok(await until(() => Math.abs(cap() - 300_000) < 3000, 5000), `REMB with the room's bitrate (got ${cap()})`);
    // Lower by configure: the new cap goes out at once.
    await pub.client.call({ request: 'configure', bitrate: 120_000 });
    assert.ok(await until(() => Math.abs(cap() - 120_000) < 2000, 5000), `REMB with the configured bitrate (got ${cap()})`);
    // Above the room's cap: bitrate_cap keeps it at the room's.
    await pub.client.call({ request: 'configure', bitrate: 5_000_000 });
    assert.ok(await until(() => Math.abs(cap() - 300_000) < 3000, 5000), `capped by the room (got ${cap()})`);
    const sent = vr.f.ferry.engine.stats().endpoints.reduce((n, e) => n + e.rembSent, 0);
    assert.ok(sent >= 3, `REMBs counted (${sent})`);
  }));

test.run();
