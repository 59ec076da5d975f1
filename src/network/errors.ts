import { FraktiError, type ErrorFields } from '../lib/errors.js';

export class NetworkError extends FraktiError {
  constructor(code: string, message: string, fields: ErrorFields = {}, cause?: unknown) {
    super(code, message, fields, cause === undefined ? undefined : { cause });
  }
}

/** A CNI plugin failed; carries the plugin's own code and message (CNI spec error object). */
export class CniPluginError extends NetworkError {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly cniCode: number | undefined,
    readonly msg: string,
    readonly details?: string,
  ) {
    super('CNI_PLUGIN', `CNI ${command} ${plugin}: ${msg}${details ? ` (${details})` : ''}`, { plugin, command, cniCode });
  }
}
