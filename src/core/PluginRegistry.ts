/** The plugins a gateway runs, by package name (`janus.plugin.x`). */
import type { JsonObject } from './Json.js';
import type { Plugin } from './Plugin.js';

export class PluginRegistry {
  private readonly plugins = new Map<string, Plugin>();

  register(plugin: Plugin): void {
    if (this.plugins.has(plugin.info.package)) throw new Error(`plugin ${plugin.info.package} registered twice`);
    this.plugins.set(plugin.info.package, plugin);
  }

  get(name: string): Plugin | undefined {
    return this.plugins.get(name);
  }

  names(): string[] {
    return [...this.plugins.keys()];
  }

  all(): Plugin[] {
    return [...this.plugins.values()];
  }

  /** `plugins` section of `server_info`. */
  describe(): JsonObject {
    const out: JsonObject = {};
    for (const p of this.plugins.values()) {
      out[p.info.package] = {
        name: p.info.name,
        author: p.info.author,
        description: p.info.description,
        version_string: p.info.versionString,
        version: p.info.version,
      };
    }
    return out;
  }

  destroyAll(): void {
    for (const p of this.plugins.values()) p.destroy();
  }
}
