// Issue 12's Chromium proof of send-side bandwidth estimation: a VideoRoom subscriber whose
// downlink is capped moves down a simulcast layer by itself, and back up when the cap is
// lifted. The cap is a shaping UDP relay (test/helpers/shapedRelay.ts) between the pages and
// ferry, all on loopback: ferry binds 127.0.0.1 and announces 127.0.0.2, where the relay
// listens; only the port of the subscriber's PeerConnection gets a cap on what ferry sends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';
import { mediaRange, waitUntilIdle } from '../helpers/ferry.js';
import { pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';
import { startShapedRelay, type ShapedRelay } from '../helpers/shapedRelay.js';
import { createVideoRoom, openVideoRoomPage, publisherLayers, RIDS_LOW_TO_HIGH, type PublisherLayers } from '../helpers/videoroomPage.js';

const FERRY_ADDRESS = '127.0.0.1';
const CANDIDATE_ADDRESS = '127.0.0.2';
const PORTS = mediaRange(20);
const ROOM = 7777;
/**
 * The subscriber's downlink while capped: room for the low layer and audio, not for the
 * middle layer (Chrome's fake camera at 1280x720 sends about 100-150 / 300 / 700+ kbit/s).
 */
const CAP_BPS = 300_000;
/** Looks (a second apart) the uncapped state must hold to count as settled. */
const SETTLED_LOOKS = 5;
/** Looks the cap is held after the subscriber moved down, to see it stay down. */
const HELD_LOOKS = 10;

const env = useFerryAndChromium(test, { media: { bind: FERRY_ADDRESS, candidate_addresses: CANDIDATE_ADDRESS, ...PORTS } });
let relay: ShapedRelay | undefined;

test.before(async () => {
  const ports = Array.from({ length: PORTS.rtp_port_max - PORTS.rtp_port_min + 1 }, (_, i) => PORTS.rtp_port_min + i);
  relay = await startShapedRelay({ listenAddress: CANDIDATE_ADDRESS, ferryAddress: FERRY_ADDRESS, ports, queueMs: 150 });
});
test.after(async () => {
  await relay?.close();
});

/** What the subscriber page sees of one received video (getStats inbound-rtp by mid). */
interface Received {
  framesDecoded: number;
  frameWidth: number;
  freezeCount: number | null;
  nackCount: number | null;
  retransmittedPacketsReceived: number | null;
  packetsLost: number | null;
}

async function received(page: Page, mid: string): Promise<Received | null> {
  return page.evaluate(async (wanted): Promise<Received | null> => {
    const pc: any = (globalThis as any).ferryVideoRoom.subscriber?.webrtcStuff?.pc;
    if (!pc) return null;
    let found: Received | null = null;
    (await pc.getStats()).forEach((s: any) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && String(s.mid) === wanted) {
        found = {
          framesDecoded: s.framesDecoded ?? 0,
          frameWidth: s.frameWidth ?? 0,
          freezeCount: s.freezeCount ?? null,
          nackCount: s.nackCount ?? null,
          retransmittedPacketsReceived: s.retransmittedPacketsReceived ?? null,
          packetsLost: s.packetsLost ?? null,
        };
      }
    });
    return found;
  }, mid);
}

/** The `substream` events the subscriber page got for `mid`, in order. */
function substreamEvents(page: Page, mid: string): Promise<number[]> {
  return page.evaluate(
    (wanted) => (globalThis as any).ferryVideoRoom.events.filter((e: any) => e.substream !== undefined && String(e.mid) === wanted).map((e: any) => e.substream as number),
    mid,
  );
}

/** Admin `handle_info` of the page's subscriber handle: its `webrtc` part (port, bwe, …). */
async function subscriberWebrtc(page: Page): Promise<Record<string, any>> {
  const ids = await page.evaluate(() => {
    const demo = (globalThis as any).ferryVideoRoom;
    return { session: demo.janus.getSessionId() as number, handle: demo.subscriber.getId() as number };
  });
  const info = await env.gw.admin.post(`/${ids.session}/${ids.handle}`, { janus: 'handle_info', admin_secret: env.gw.config.auth.admin_secret });
  return (info['info']?.['webrtc'] ?? {}) as Record<string, any>;
}

/** The subscriber PeerConnection's states and what it received, for a failure's message. */
function subscriberConnection(page: Page): Promise<Record<string, unknown>> {
  return page.evaluate(async () => {
    const pc: any = (globalThis as any).ferryVideoRoom.subscriber?.webrtcStuff?.pc;
    if (!pc) return { pc: null };
    const out: Record<string, unknown> = { connection: pc.connectionState, ice: pc.iceConnectionState, signaling: pc.signalingState };
    const inbound: unknown[] = [];
    (await pc.getStats()).forEach((s: any) => {
      if (s.type === 'transport') Object.assign(out, { dtls: s.dtlsState, pair: s.selectedCandidatePairId, packetsReceived: s.packetsReceived, bytesReceived: s.bytesReceived });
      if (s.type === 'inbound-rtp') inbound.push({ kind: s.kind, mid: s.mid, packets: s.packetsReceived, frames: s.framesDecoded });
    });
    out['inbound'] = inbound;
    return out;
  });
}

const topWidth = (widths: Record<string, number>): number | undefined => {
  for (const rid of [...RIDS_LOW_TO_HIGH].reverse()) if (widths[rid] !== undefined) return widths[rid];
  return undefined;
};

test('a subscriber whose downlink is capped moves down a simulcast layer by itself and back up when the cap is lifted', async () => {
  const r = relay!;
  await createVideoRoom(env.gw, { room: ROOM, publishers: 4 });
  const carol = await openVideoRoomPage(env.browser, env.gw, 'carol', ROOM, '&simulcast=1');
  const carolId = await pollUntil(() => carol.page.evaluate(() => (globalThis as any).ferryVideoRoom.myId as number | null), (id) => typeof id === 'number', 15_000);
  assert.ok(typeof carolId === 'number', `carol joined; ${carol.errors.join(' | ')}`);
  const dave = await openVideoRoomPage(env.browser, env.gw, 'dave', ROOM);
  const slotMid = await pollUntil(
    () => dave.page.evaluate((id) => [...(globalThis as any).ferryVideoRoom.slots.values()].find((s: any) => s.type === 'video' && s.feedId === id)?.mid ?? null, carolId),
    (mid) => typeof mid === 'string',
    30_000,
  );
  assert.ok(typeof slotMid === 'string', `dave subscribes to carol's video; ${dave.errors.join(' | ')}`);
  const mid = slotMid as string;

  // The subscriber's PeerConnection port: the only one whose ferry → browser side gets a cap.
  const webrtc = await pollUntil(() => subscriberWebrtc(dave.page), (w) => typeof w['port'] === 'number' && w['bwe'] !== null && w['bwe'] !== undefined, 15_000);
  const port = webrtc['port'] as number;
  assert.ok(port >= PORTS.rtp_port_min && port <= PORTS.rtp_port_max, `subscriber port ${port} in ferry's range: ${JSON.stringify(webrtc)}`);
  assert.ok(webrtc['bwe'], `Chrome kept transport-cc, so ferry estimates its link: ${JSON.stringify(webrtc)}`);
  const relayed = await pollUntil(async () => r.traffic(port), (t) => t.upPackets > 0 && t.downPackets > 0, 10_000);
  assert.ok(relayed.upPackets > 0 && relayed.downPackets > 0, `the subscriber's media goes through the relay: ${JSON.stringify(relayed)} ${JSON.stringify(webrtc['ice'])}`);
  const endpoint = env.gw.ferry.ports.list().find((l) => l.port === port)?.endpoint;
  assert.ok(endpoint !== undefined, `ferry leases port ${port}`);

  // A line per look (printed when something fails, or with FERRY_BWE_TRACE=1): what ferry estimates and chooses, what
  // carol sends, what dave decodes, what the relay passed.
  const trace: string[] = [];
  const started = Date.now();
  const seconds = (): string => ((Date.now() - started) / 1000).toFixed(1);
  const sending = publisherLayers(carol.page);
  interface Look {
    sent: PublisherLayers;
    got: Received | null;
    /** Admin handle_info webrtc.bwe.limited. */
    limited: boolean;
    estimate: number;
    /** The layer ferry's engine chose for dave (-1: none). */
    layer: number;
  }
  const look = async (): Promise<Look> => {
    const sent = await sending();
    const got = await received(dave.page, mid);
    const bwe = (await subscriberWebrtc(dave.page))['bwe'] ?? {};
    const stats = env.gw.ferry.engine.stats();
    const ep = stats.endpoints.find((e) => e.id === endpoint);
    // The only output choosing among layers is carol's video to dave.
    const layer = stats.outputs.find((o) => o.layer >= 0)?.layer ?? -1;
    const t = r.traffic(port);
    trace.push(
      `${seconds()}s cap=${t.capBps ?? '-'} estimate=${ep?.bweEstimateBps} loss‰=${ep?.bweLossPermille} rtt=${ep?.rttMs}ms limited=${bwe['limited']} ` +
        `probes=${ep?.probePackets} layer=${layer} carol(kbit/s)=${JSON.stringify(sent.kbps)} pli/kf=${JSON.stringify(sent.keyframes)} ` +
        `dave=${got?.frameWidth}@${got?.framesDecoded} relay↓=${t.downPackets}/${t.downDropped} dropped`,
    );
    return { sent, got, limited: bwe['limited'] === true, estimate: ep?.bweEstimateBps ?? 0, layer };
  };
  const report = (): string => trace.slice(-30).join('\n');

  try {
    // Uncapped, dave settles on the top layer carol sends, the same for several looks in a
    // row: Chrome starts its top layer last, once its own estimate allows (under CPU load it
    // may never; then two layers do).
    let steady = 0;
    let looks = 0;
    let lastTop: number | undefined;
    const settled = await pollUntil(
      look,
      (l) => {
        looks++;
        const top = topWidth(l.sent.widths);
        const onTop = Object.keys(l.sent.widths).length >= 2 && l.got !== null && l.got.framesDecoded > 30 && l.got.frameWidth === top;
        steady = onTop && top === lastTop ? steady + 1 : onTop ? 1 : 0;
        lastTop = top;
        return steady >= SETTLED_LOOKS && (Object.keys(l.sent.widths).length === RIDS_LOW_TO_HIGH.length || looks >= 30);
      },
      60_000,
      1000,
    );
    if (steady < SETTLED_LOOKS) {
      const connection = JSON.stringify(await subscriberConnection(dave.page));
      const ferrySide = JSON.stringify(await subscriberWebrtc(dave.page));
      assert.unreachable(`uncapped, dave settles on the top layer of two or more carol sends:\n${report()}\ndave's subscriber PeerConnection: ${connection}\nferry's: ${ferrySide}; ${dave.errors.join(' | ')}`);
    }
    const top = settled.got!.frameWidth;
    const topLayer = settled.layer;
    const before = settled.got!;
    const eventsBefore = (await substreamEvents(dave.page, mid)).length;
    const settledAt = seconds();

    // Capped: the estimate falls and the engine moves dave to a lower layer by itself.
    r.setCap(port, CAP_BPS);
    const cappedAt = Date.now();
    let sawLimited = false;
    const down = await pollUntil(
      async () => {
        const l = await look();
        sawLimited ||= l.limited;
        return l;
      },
      (l) => {
        const width = l.got?.frameWidth ?? 0;
        return sawLimited && width > 0 && width < top && Object.values(l.sent.widths).includes(width);
      },
      60_000,
      1000,
    );
    const downWidth = down.got?.frameWidth ?? 0;
    assert.ok(downWidth > 0 && downWidth < top, `capped at ${CAP_BPS} bit/s, dave decodes a lower layer than ${top}:\n${report()}`);
    assert.ok(Object.values(down.sent.widths).includes(downWidth), `the width decoded (${downWidth}) is one carol sends: ${JSON.stringify(down.sent.widths)}`);
    assert.ok(sawLimited, `Admin handle_info webrtc.bwe.limited became true:\n${report()}`);
    const eventsDown = (await substreamEvents(dave.page, mid)).slice(eventsBefore);
    assert.ok(eventsDown.some((s) => s < 2), `a substream event told dave of a lower layer: ${JSON.stringify(eventsDown)}`);
    const downAfterS = (Date.now() - cappedAt) / 1000;

    // While the cap holds, the engine keeps dave below the top layer.
    const held: Look[] = [];
    await pollUntil(
      async () => {
        held.push(await look());
        return held.length;
      },
      (n) => n >= HELD_LOOKS,
      HELD_LOOKS * 3_000,
      1000,
    );
    const capped = held.at(-1)?.got ?? null;
    const heldLayers = held.map((l) => l.layer);
    assert.ok(held.length >= HELD_LOOKS && heldLayers.every((layer) => layer >= 0 && layer < topLayer), `under the cap the engine keeps dave below the top layer (${topLayer}): ${JSON.stringify(heldLayers)}\n${report()}`);
    const cappedEstimates = held.map((l) => l.estimate);

    // Lifted: the estimate climbs back (probing) and dave gets the top layer again.
    r.setCap(port, null);
    const liftedAt = Date.now();
    const up = await pollUntil(look, (l) => l.got !== null && l.got.frameWidth === topWidth(l.sent.widths) && l.layer >= topLayer, 90_000, 1000);
    assert.ok(up.got !== null && up.got.frameWidth === topWidth(up.sent.widths) && up.layer >= topLayer, `cap lifted, dave decodes the top layer again (${top} at settle):\n${report()}`);
    const eventsUp = (await substreamEvents(dave.page, mid)).slice(eventsBefore);
    assert.is(eventsUp.at(-1), topLayer, `the last substream event is the top layer again: ${JSON.stringify(eventsUp)}`);
    const after = up.got!;

    // Chrome's view of the repairs and freezes (recorded; sanity only) and the run in brief.
    const summary = {
      chrome: {
        freezeCount: { settled: before.freezeCount, capped: capped?.freezeCount, recovered: after.freezeCount },
        nackCount: { settled: before.nackCount, capped: capped?.nackCount, recovered: after.nackCount },
        retransmittedPacketsReceived: { settled: before.retransmittedPacketsReceived, capped: capped?.retransmittedPacketsReceived, recovered: after.retransmittedPacketsReceived },
        packetsLost: { settled: before.packetsLost, capped: capped?.packetsLost, recovered: after.packetsLost },
      },
      widths: { settled: top, capped: downWidth, recovered: after.frameWidth },
      estimateBps: { settled: settled.estimate, cappedMin: Math.min(...cappedEstimates), cappedMax: Math.max(...cappedEstimates), recovered: up.estimate },
      seconds: { settledAt, down: downAfterS, up: (Date.now() - liftedAt) / 1000 },
      substreamEvents: eventsUp,
      relay: r.traffic(port),
    };
    console.log(`videoroom-bwe: uncapped → ${CAP_BPS} bit/s → uncapped: ${JSON.stringify(summary)}`);
    // FERRY_BWE_TRACE=1: the whole run, look by look.
    if (process.env['FERRY_BWE_TRACE']) console.log(trace.join('\n'));
    for (const key of ['freezeCount', 'nackCount', 'retransmittedPacketsReceived'] as const) {
      const value = after[key];
      assert.ok(value === null || (Number.isInteger(value) && value >= 0), `${key} is a count: ${JSON.stringify(summary)}`);
    }
    assert.ok(after.framesDecoded > before.framesDecoded, `frames kept decoding: ${JSON.stringify(summary)}`);
    await saveScreenshot(dave.page, 'videoroom-bwe');
  } catch (err) {
    console.log(`videoroom-bwe trace:\n${trace.join('\n')}`);
    throw err;
  }

  for (const page of [carol.page, dave.page]) await page.click('#leave');
  const status = await waitUntilIdle(env.gw);
  assert.is(status['sessions'], 0, JSON.stringify(status));
  assert.is(env.gw.ferry.leasedPorts(), 0);
  for (const page of [carol.page, dave.page]) await page.context().close();
});

test.run();
