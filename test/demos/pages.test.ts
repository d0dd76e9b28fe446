// Serving the demo pages: on by default under /demos, off by config, ferry.json
// carries no secret, and only janus.js/adapter.js are reachable from their packages.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startFerry } from '../helpers/ferry.js';

test('the pages, janus.js and adapter.js are served; ferry.json names ports and paths only', async () => {
  const gw = await startFerry({ log: { level: 'warn' } });
  try {
    const base = `${gw.origin}${gw.config.demos.path}`;
    for (const page of ['/', '/index.html', '/echotest.html', '/videoroom.html', '/streaming.html', '/streaming.js', '/sip.html', '/admin.html', '/common.js', '/style.css']) {
      const r = await fetch(base + page);
      assert.is(r.status, 200, `${page} → ${r.status}`);
      await r.arrayBuffer();
    }
    const janus = await (await fetch(`${base}/vendor/janus-gateway/janus.js`)).text();
    assert.match(janus, /Janus\.init\s*=\s*function/, 'the janus.js of the janus-gateway package');
    const adapter = await fetch(`${base}/vendor/webrtc-adapter/adapter.js`);
    assert.is(adapter.status, 200);
    await adapter.arrayBuffer();
    // Nothing else of those packages, and no way out of the pages directory.
    for (const path of ['/vendor/janus-gateway/package.json', '/vendor/janus-gateway/../../package.json', '/vendor/webrtc-adapter/adapter_no_global.js', '/../../package.json', '/%2e%2e/%2e%2e/package.json']) {
      const r = await fetch(base + path);
      assert.ok(r.status === 404 || r.status === 403 || r.status === 400, `${path} → ${r.status}`);
      await r.arrayBuffer();
    }
    const client = (await (await fetch(`${base}/ferry.json`)).json()) as Record<string, unknown>;
    assert.equal(Object.keys(client).sort(), ['admin', 'janusPath', 'websocketPort']);
    assert.is(client['janusPath'], gw.config.http.base_path);
    assert.is(client['websocketPort'], Number(new URL(gw.wsUrl).port));
    assert.not.match(JSON.stringify(client), new RegExp(String(gw.config.auth.admin_secret)));
    // `/` leads to the pages; the Janus API is unchanged beside them.
    const root = await fetch(`${gw.origin}/`, { redirect: 'manual' });
    assert.is(root.status, 302);
    assert.is(root.headers.get('location'), `${gw.config.demos.path}/`);
    const info = await gw.http.get('/info');
    assert.is((info.body as Record<string, unknown>)['janus'], 'server_info');
  } finally {
    await gw.stop();
  }
});

test('demos.enabled=false serves no page', async () => {
  const gw = await startFerry({ log: { level: 'warn' }, demos: { enabled: false } });
  try {
    for (const path of ['/demos/', '/demos/echotest.html', '/demos/ferry.json', '/demos/vendor/janus-gateway/janus.js', '/']) {
      const r = await fetch(gw.origin + path, { redirect: 'manual' });
      assert.is(r.status, 404, `${path} → ${r.status}`);
      await r.arrayBuffer();
    }
  } finally {
    await gw.stop();
  }
});

test.run();
