// VP8 temporal layers (RFC 7741 §4.2 TID/Y): a subscriber's `configure` `temporal` choice makes
// ferry forward only the layers up to it, with contiguous sequence numbers and continuous
// PictureID/TL0PICIDX, and Janus's `temporal` event says when the choice took effect.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { pause, sendRtp, until, withPublisherAndSubscriber } from './harness.js';

/** A VP8 payload with X, I (15-bit PictureID), L (TL0PICIDX) and T (TID, Y) set, frame start. */
function vp8(pictureId: number, tl0: number, tid: number, sync: boolean, tag: number): Buffer {
  return Buffer.from([0x90, 0xe0, 0x80 | (pictureId >> 8), pictureId & 0xff, tl0 & 0xff, (tid << 6) | (sync ? 0x20 : 0), 0x01, tag & 0xff, 0x55, 0x55]);
}

function fields(payload: Buffer): { pictureId: number; tl0: number; tid: number; tag: number } {
  return { pictureId: ((payload[2]! & 0x7f) << 8) | payload[3]!, tl0: payload[4]!, tid: payload[5]! >> 6, tag: payload[7]! };
}

test('temporal: 0 forwards only the base layer without gaps; temporal: 2 brings the rest back at a layer-sync frame', () =>
  withPublisherAndSubscriber(90, 'layers', async ({ vr, pub, sub }) => {
    let seq = 100;
    let pictureId = 500;
    // An L1T2 pattern: TID 0, 1, 0, 1 …; every TID 1 frame is a layer-sync frame when `sync`.
    const sendFrames = async (count: number, sync: boolean) => {
      for (let i = 0; i < count; i++, seq++, pictureId++) {
        const tid = pictureId % 2;
        await sendRtp(pub.video, seq, seq * 3000, vp8(pictureId, Math.floor(pictureId / 2), tid, sync && tid === 1, seq), true);
        if (i % 5 === 4) await pause(5);
      }
    };
    const video = () => sub.received.get('1')!;
    await sendFrames(20, false);
    assert.ok(await until(() => video().length >= 20), 'all layers at first');

    const chosen = sub.client.ws.nextEvent((e) => e['plugindata']?.data?.['temporal'] === 0, 5000);
    await sub.client.call({ request: 'configure', streams: [{ mid: '1', temporal: 0 }] });
    assert.is((await chosen)['plugindata'].data['mid'], '1', 'Janus `temporal` event for the m-line');
    const before = video().length;
    await sendFrames(20, false);
    assert.ok(await until(() => video().length >= before + 10), 'base layer frames arrive');
    await pause(100);
    const base = video().slice(before);
    assert.is(base.length, 10, 'only the 10 TID 0 frames of 20');
    assert.ok(base.every((p) => fields(p.payload).tid === 0));
    const all = video();
    for (let i = 1; i < all.length; i++) {
      assert.is(all[i]!.header.sequenceNumber, (all[i - 1]!.header.sequenceNumber + 1) & 0xffff, `sequence contiguous at ${i}`);
    }
    // PictureID as the subscriber sees it keeps increasing (TID 1 frames simply do not come).
    const ids = all.map((p) => fields(p.payload).pictureId);
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'PictureID increases');
    assert.is(vr.f.ferry.engine.stats().outputs.reduce((n, o) => n + o.filtered, 0), 10, 'the TID 1 frames were filtered, not lost');

    const raised = sub.client.ws.nextEvent((e) => e['plugindata']?.data?.['temporal'] === 2, 5000);
    await sub.client.call({ request: 'configure', streams: [{ mid: '1', temporal: 2 }] });
    const before2 = video().length;
    await sendFrames(20, true);
    await raised;
    assert.ok(await until(() => video().length >= before2 + 19), `every layer again from the first layer-sync frame (${video().length - before2})`);
    assert.is(sub.decryptFailures(), 0);
  }));

test.run();
