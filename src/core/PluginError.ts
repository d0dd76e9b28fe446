/**
 * A request a plugin refuses, with its Janus error code: each plugin's dispatcher turns it into
 * its plugindata error shape (`{videoroom:"event", error_code, error}` and the like). Plugins
 * subclass it with their own code list and name.
 */
export class PluginError<Code extends number = number> extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}
