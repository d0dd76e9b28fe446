// The VideoRoom demo page across a two-node ferry cluster (issue 15), in headless Chromium:
// Alice's page publishes on node A, Bob's page on node B; Bob's page lists Alice's feed and
// decodes her video, which reaches B over the automatic cascade from A. janus.js and the demo
// page are unchanged: they only ever talk to their own node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';

import type { TestFerry } from '../helpers/ferry.js';
import type { Json } from '../helpers/http.js';
import { launchChromium, pollUntil, saveScreenshot } from '../helpers/browser.js';
import { openVideoRoomPage } from '../helpers/videoroomPage.js';
import { withCluster, type Node } from './harness.js';

/** What the page's demo object knows: its own id, the feeds it lists, and decoded frames per feed. */
async function view(page: Page): Promise<{ myId: number | null; feeds: number[]; decoded: Record<string, number> }> {
  return page.evaluate(async () => {
    const demo = (globalThis as any).ferryVideoRoom;
    const byMid = new Map<string, number>();
    const pc: any = demo.subscriber?.webrtcStuff?.pc;
    if (pc) (await pc.getStats()).forEach((s: any) => s.type === 'inbound-rtp' && s.kind === 'video' && byMid.set(String(s.mid), s.framesDecoded ?? 0));
    const decoded: Record<string, number> = {};
    for (const s of demo.slots.values()) if (s.type === 'video' && s.feedId != null) decoded[String(s.feedId)] = byMid.get(String(s.mid)) ?? 0;
    return { myId: demo.myId ?? null, feeds: [...demo.feeds.keys()], decoded };
  });
}

/** The page helper's view of a ferry process: where its demo pages are. */
const pagesOf = (n: Node) => ({ origin: `http://127.0.0.1:${n.proc.addresses.http!.port}`, config: n.proc.config }) as unknown as TestFerry;

test('the demo VideoRoom page on node B shows and plays the publisher that joined on node A', async () => {
  await withCluster(['node-a', 'node-b'], async ({ nodes }) => {
    const [a, b] = nodes as [Node, Node];
    const browser = await launchChromium();
    try {
      const alice = await openVideoRoomPage(browser, pagesOf(a), 'alice', 1234);
      const aliceId = (await pollUntil(() => view(alice.page), (v) => typeof v.myId === 'number', 15_000)).myId;
      assert.ok(typeof aliceId === 'number', `alice joined on A: ${alice.errors.join(' | ')}`);
      const bob = await openVideoRoomPage(browser, pagesOf(b), 'bob', 1234);
      const seen = await pollUntil(() => view(bob.page), (v) => (v.decoded[String(aliceId)] ?? 0) > 15, 30_000);
      assert.ok(seen.feeds.includes(aliceId!), `B's page lists alice's feed: ${JSON.stringify(seen)}`);
      if ((seen.decoded[String(aliceId)] ?? 0) <= 15) {
        const handles: Json[] = [];
        const sessions = (await b.proc.admin.post('', { janus: 'list_sessions', admin_secret: 'janusoverlord' }))['sessions'] as number[];
        for (const sid of sessions ?? []) {
          const hs = (await b.proc.admin.post(`/${sid}`, { janus: 'list_handles', admin_secret: 'janusoverlord' }))['handles'] as number[];
          for (const hid of hs ?? []) handles.push((await b.proc.admin.post(`/${sid}/${hid}`, { janus: 'handle_info', admin_secret: 'janusoverlord' }))['info'] as Json);
        }
        const why = { a: (await a.status())['cluster'], b: (await b.status())['cluster'], engineB: (await b.status())['engine'], handles };
        assert.unreachable(`B's page decodes alice's video: ${JSON.stringify(seen)}; ${bob.errors.join(' | ')}; ${JSON.stringify(why)}\n${b.proc.output().split('\n').filter((l) => l.includes('cluster')).join('\n')}`);
      }
      // Chat over the publishers' data channels crosses the nodes both ways.
      const chat = (p: Page) => p.evaluate(() => ((globalThis as any).ferryVideoRoom.chat as { from: number; text: string }[]));
      const deliver = async (from: Page, to: Page, text: string) => {
        const got = await pollUntil(
          async () => {
            await from.evaluate((t) => (globalThis as any).ferryVideoRoom.sendChat(t), text);
            return chat(to);
          },
          (msgs) => msgs.some((m) => m.text === text),
          20_000,
          1000,
        );
        return got.find((m) => m.text === text);
      };
      assert.is((await deliver(alice.page, bob.page, 'hello from A'))?.from, aliceId, 'A → B, labelled with alice\'s feed');
      const bobId = (await view(bob.page)).myId;
      assert.is((await deliver(bob.page, alice.page, 'hello from B'))?.from, bobId, 'B → A');
      await saveScreenshot(bob.page, 'cluster-videoroom-bob-on-node-b');
      const cascades = (await b.cluster())['cascades_in'] as Json[];
      assert.ok(cascades.some((c) => c['feed'] === aliceId && c['from'] === 'node-a'), `B receives alice over a cascade from A: ${JSON.stringify(cascades)}`);
      // The Admin demo page on B shows the cluster: both nodes, the room's owner, the cascade from A.
      const adminContext = await browser.newContext();
      const adminPage = await adminContext.newPage();
      await adminPage.goto(`${pagesOf(b).origin}${b.proc.config.demos.path}/admin.html?interval=500&secret=janusoverlord`);
      const panel = await pollUntil(
        () => adminPage.evaluate(() => ((globalThis as any).document.getElementById('cluster-panel').style.display === 'none' ? '' : (globalThis as any).document.getElementById('cluster').textContent as string)),
        (text) => text.includes('node-a') && text.includes('node-b (this)') && text.includes(String(aliceId)),
        15_000,
      );
      assert.ok(panel.includes('node-b (this)') && panel.includes('node-a'), `the Admin page lists both nodes: ${panel}`);
      assert.ok(panel.includes(String(aliceId)), `and the cascade of alice's feed: ${panel}`);
      await saveScreenshot(adminPage, 'cluster-admin-node-b');
      await adminContext.close();
      await alice.page.context().close();
      await bob.page.context().close();
    } finally {
      await browser.close();
    }
  }, { videoroom: { demo_room: true } });
});

test.run();
