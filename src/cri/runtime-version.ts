// RuntimeService/Version: who we are and which CRI version we speak.
import { FRAKTI_VERSION } from '../lib/version.js';
import type { VersionRequest, VersionResponse } from './cri-types.js';

export const RUNTIME_NAME = 'frakti';
export const CRI_API_VERSION = 'v1';
/** The version of the kubelet runtime API (not of CRI); kubelet ignores it, clients print it. */
export const KUBELET_API_VERSION = '0.1.0';

export async function runtimeVersion(_req: VersionRequest): Promise<VersionResponse> {
  return {
    version: KUBELET_API_VERSION,
    runtime_name: RUNTIME_NAME,
    runtime_version: FRAKTI_VERSION,
    runtime_api_version: CRI_API_VERSION,
  };
}
