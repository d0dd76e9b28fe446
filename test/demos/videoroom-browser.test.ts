// The VideoRoom demo page in headless Chromium: two pages publish into one
// room, each subscribes to the other and decodes its video; switching a
// tile to another feed keeps video playing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';
import { waitUntilIdle } from '../helpers/ferry.js';
import { pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';
import { createVideoRoom, openVideoRoomPage, publisherLayers, widthAtOrBelow } from '../helpers/videoroomPage.js';

const env = useFerryAndChromium(test);

interface SlotView {
  mid: string;
  type: string;
  feedId: number | null;
  framesDecoded: number;
  frameWidth: number;
}
interface RoomView {
  myId: number | null;
  feeds: number[];
  slots: SlotView[];
}

/** The page's subscription as it sees it: slots (mid → feed) with decoded frames per mid from getStats. */
function roomView(page: Page): Promise<RoomView> {
  return page.evaluate(async (): Promise<RoomView> => {
    const demo = (globalThis as any).ferryVideoRoom;
    const frames = new Map<string, { framesDecoded: number; frameWidth: number }>();
    const pc: any = demo.subscriber?.webrtcStuff?.pc;
    if (pc) {
      (await pc.getStats()).forEach((s: any) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames.set(String(s.mid), { framesDecoded: s.framesDecoded ?? 0, frameWidth: s.frameWidth ?? 0 });
      });
    }
    const slots: SlotView[] = [...demo.slots.values()].map((s: any) => ({
      mid: s.mid,
      type: s.type,
      feedId: s.feedId ?? null,
      framesDecoded: frames.get(s.mid)?.framesDecoded ?? 0,
      frameWidth: frames.get(s.mid)?.frameWidth ?? 0,
    }));
    return { myId: demo.myId, feeds: [...demo.feeds.keys()], slots };
  });
}

const videoOf = (view: RoomView, feedId: number | null) => view.slots.find((s) => s.type === 'video' && s.feedId === feedId);

const openRoomPage = (name: string, query = '', room = 1234) => openVideoRoomPage(env.browser, env.gw, name, room, query);

test('two VideoRoom pages publish, see each other, and keep playing across feed switches', async () => {
  const alice = await openRoomPage('alice');
  const bob = await openRoomPage('bob');
  const ids = await pollUntil(
    async () => [(await roomView(alice.page)).myId, (await roomView(bob.page)).myId],
    ([a, b]) => typeof a === 'number' && typeof b === 'number',
    15_000,
  );
  const [aliceId, bobId] = ids as [number, number];
  assert.ok(typeof aliceId === 'number' && typeof bobId === 'number', `joined: ${JSON.stringify(ids)}; ${alice.errors.join(' | ')} ${bob.errors.join(' | ')}`);

  // Each decodes the other's video.
  for (const [who, other] of [[alice, bobId], [bob, aliceId]] as const) {
    const view = await pollUntil(() => roomView(who.page), (v) => (videoOf(v, other)?.framesDecoded ?? 0) > 15, 30_000);
    assert.ok((videoOf(view, other)?.framesDecoded ?? 0) > 15, `decodes feed ${other}: ${JSON.stringify(view)}; errors: ${who.errors.join(' | ')}`);
  }
  await alice.page.waitForTimeout(5000); // a few seconds of plots for the pictures
  await saveScreenshot(alice.page, 'videoroom-alice');
  await saveScreenshot(bob.page, 'videoroom-bob');

  // Alice switches her tile from Bob to her own feed and back: same mid, no renegotiation, frames keep coming.
  const start = videoOf(await roomView(alice.page), bobId);
  assert.ok(start);
  let lastFrames = start.framesDecoded;
  for (const target of [aliceId, bobId, aliceId, bobId]) {
    const offers = await alice.page.evaluate(() => (globalThis as any).ferryVideoRoom.events.filter((e: any) => e.videoroom === 'updated').length);
    await alice.page.evaluate(([mid, feed]) => (globalThis as any).ferryVideoRoom.switchSlot(mid, feed), [start.mid, target] as const);
    const after = await pollUntil(
      () => roomView(alice.page),
      (v) => {
        const slot = v.slots.find((s) => s.mid === start.mid);
        return slot?.feedId === target && slot.framesDecoded >= lastFrames + 20;
      },
      20_000,
    );
    const slot = after.slots.find((s) => s.mid === start.mid);
    assert.is(slot?.feedId, target, `mid ${start.mid} now shows feed ${target}: ${JSON.stringify(after)}`);
    assert.ok((slot?.framesDecoded ?? 0) >= lastFrames + 20, `frames keep decoding after the switch to ${target}: ${lastFrames} → ${slot?.framesDecoded}`);
    lastFrames = slot?.framesDecoded ?? 0;
    const offersAfter = await alice.page.evaluate(() => (globalThis as any).ferryVideoRoom.events.filter((e: any) => e.videoroom === 'updated').length);
    assert.is(offersAfter, offers, 'a switch needs no renegotiation');
  }
  // Bob never stopped decoding Alice.
  const bobView = await roomView(bob.page);
  assert.ok((videoOf(bobView, aliceId)?.framesDecoded ?? 0) > 40, JSON.stringify(bobView));

  // Leaving ends both sessions; ferry returns every port.
  await leaveAll(alice.page, bob.page);
});

async function leaveAll(...pages: Page[]): Promise<void> {
  for (const page of pages) await page.click('#leave');
  const status = await waitUntilIdle(env.gw);
  assert.is(status['sessions'], 0, JSON.stringify(status));
  assert.is(status['peer_connections'], 0, JSON.stringify(status));
  assert.is(env.gw.ferry.leasedPorts(), 0);
  for (const page of pages) await page.context().close();
}

test('simulcast layer buttons change the decoded resolution; talking events from Chrome\'s audio levels', async () => {
  // Chrome's fake microphone beeps at about −75 dBov on average: a threshold of 100 makes it "talk".
  await createVideoRoom(env.gw, { room: 5555, publishers: 4, audiolevel_event: true, audio_active_packets: 25, audio_level_average: 100 });
  const carol = await openRoomPage('carol', '&simulcast=1', 5555);
  const dave = await openRoomPage('dave', '', 5555);
  const carolId = (await pollUntil(() => roomView(carol.page), (v) => typeof v.myId === 'number', 15_000)).myId;
  const decoding = await pollUntil(() => roomView(dave.page), (v) => (videoOf(v, carolId)?.framesDecoded ?? 0) > 15, 30_000);
  const slot = videoOf(decoding, carolId);
  assert.ok(slot, `dave decodes carol: ${JSON.stringify(decoding)}; ${dave.errors.join(' | ')}`);
  // Each button: what dave decodes settles on the width carol's browser sends on that layer
  // (rid l/m/h), counting only the layers it sends now (publisherLayers), with their current
  // width. A layer not sent falls back to the nearest lower one, as in Janus.
  const carolLayers = publisherLayers(carol.page);
  const sentWidths = async (): Promise<Record<string, number>> => (await carolLayers()).widths;
  // Under CPU load Chrome's default ("balanced") adaptation lowers resolution, which pauses the
  // upper layers; this test is about ferry following the buttons, so carol keeps resolution
  // (RTCRtpSendParameters.degradationPreference) and the buttons wait until two layers flow.
  const preference = await carol.page.evaluate(async () => {
    const pc: any = (globalThis as any).ferryVideoRoom.publisher?.webrtcStuff?.pc;
    const sender = pc?.getSenders().find((s: any) => s.track?.kind === 'video');
    if (!sender) return 'no video sender';
    const params = sender.getParameters();
    await sender.setParameters({ ...params, degradationPreference: 'maintain-resolution' });
    return String(sender.getParameters().degradationPreference);
  });
  let limitedBy = '';
  await pollUntil(
    async () => {
      limitedBy = await carol.page.evaluate(async () => {
        const reasons: string[] = [];
        (await (globalThis as any).ferryVideoRoom.publisher?.webrtcStuff?.pc?.getStats())?.forEach((s: any) => {
          if (s.type === 'outbound-rtp' && s.kind === 'video') reasons.push(`${s.rid}:${s.qualityLimitationReason}`);
        });
        return reasons.join(' ');
      });
      return sentWidths();
    },
    (widths) => Object.keys(widths).length >= 2,
    30_000,
    500,
  );
  const seen: string[] = [];
  for (const [substream, rid] of [[0, 'l'], [2, 'h'], [1, 'm']] as const) {
    await dave.page.evaluate(([mid, s]) => (globalThis as any).ferryVideoRoom.setSubstream(mid, s), [slot.mid, substream] as const);
    let sent: Record<string, number> = {};
    const view = await pollUntil(
      async () => {
        sent = await sentWidths();
        return roomView(dave.page);
      },
      (v) => widthAtOrBelow(sent, rid) !== undefined && v.slots.find((s) => s.mid === slot.mid)?.frameWidth === widthAtOrBelow(sent, rid),
      20_000,
      500,
    );
    const width = view.slots.find((s) => s.mid === slot.mid)?.frameWidth ?? 0;
    seen.push(`${rid}: decoded ${width}, sent ${JSON.stringify(sent)}`);
    assert.is(width, widthAtOrBelow(sent, rid), `substream ${substream} (rid ${rid}): ${seen.join('; ')}`);
  }
  // At least two layers were sent and decoded, so the decoded width really followed the buttons.
  assert.ok(new Set(seen.map((line) => line.split(',')[0]?.split(' ')[2])).size >= 2, `${seen.join('; ')}; degradationPreference ${preference}; limited by ${limitedBy}`);
  // ferry told dave that carol talks (a talking event, or `talking: true` in the publishers
  // list when she started before he joined), and his tile for her shows it.
  const talking = await pollUntil(
    () => dave.page.evaluate((id) => (globalThis as any).ferryVideoRoom.talking.has(id), carolId),
    (known) => known,
    15_000,
  );
  const told = await dave.page.evaluate(() => JSON.stringify((globalThis as any).ferryVideoRoom.events.filter((e: any) => /talking/.test(e.videoroom) || e.publishers)));
  assert.ok(talking, `dave knows carol talks: ${told}`);
  const badge = await dave.page.locator(`.tile[data-mid="${slot.mid}"] .state.ok`, { hasText: 'talking' }).isVisible();
  assert.ok(badge, 'the talking badge is shown on carol\'s tile');
  await saveScreenshot(dave.page, 'videoroom-simulcast');
  await leaveAll(carol.page, dave.page);
});

test.run();
