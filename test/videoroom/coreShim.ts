/**
 * Stand-in for the one core change the VideoRoom needs (see the issue 5
 * report): `PluginContext.openMedia()`, so a subscriber handle can open its
 * PeerConnection to make the first offer before any jsep was exchanged.
 * Today `Handle.ensureMedia()` runs only when a jsep passes through. This
 * shim adds `openMedia` to every context the core builds, calling that same
 * private method; delete it once Plugin.ts/Handle.ts provide it.
 */
import { Handle } from '../../src/core/Handle.js';
import type { HandleMedia } from '../../src/core/Media.js';
import type { PluginContext } from '../../src/plugins/Plugin.js';

interface HandleInternals {
  makeContext(): PluginContext;
  ensureMedia(): HandleMedia | null;
}

const proto = Handle.prototype as unknown as HandleInternals & { __openMediaShim?: boolean };
if (!proto.__openMediaShim) {
  const original = proto.makeContext;
  proto.makeContext = function (this: HandleInternals): PluginContext {
    const ctx = original.call(this);
    return Object.assign(ctx, { openMedia: () => this.ensureMedia() });
  };
  proto.__openMediaShim = true;
}
