// A CNI network attached to pods: ADD runs the plugin chain in order (each
// gets the previous result), DEL in reverse, CHECK in order. The result of
// ADD is cached on disk, atomically, because DEL and CHECK need it, also
// after a frakti restart.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { errorMessage } from '../lib/errors.js';
import type { CniNetworkConfig } from './cni-config.js';
import { invokePlugin, type CniInvocation } from './cni-plugin.js';
import { parseCniResult, type CniResult } from './cni-result.js';
import { NetworkError } from './errors.js';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface PodNetworkRequest {
  /** The sandbox id (CNI_CONTAINERID). */
  podId: string;
  podName: string;
  podNamespace: string;
  netnsPath: string;
  /** Interface name inside the namespace. Default eth0. */
  ifName?: string;
  portMappings?: PortMapping[];
}

export interface CniNetworkOptions {
  config: CniNetworkConfig;
  /** Plugin search path. */
  binDirs: string[];
  /** Where ADD results are kept for DEL and CHECK. */
  cacheDir: string;
}

const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

export class CniNetwork {
  constructor(private readonly opts: CniNetworkOptions) {}

  get name(): string {
    return this.opts.config.name;
  }

  private invocation(command: CniInvocation['command'], req: PodNetworkRequest): CniInvocation {
    if (!ID_RE.test(req.podId)) throw new NetworkError('CNI_BAD_REQUEST', `pod id ${JSON.stringify(req.podId)} is not usable as a CNI container id`);
    return {
      command,
      containerId: req.podId,
      netnsPath: req.netnsPath,
      ifName: req.ifName ?? 'eth0',
      args: {
        IgnoreUnknown: 'true',
        K8S_POD_NAMESPACE: req.podNamespace,
        K8S_POD_NAME: req.podName,
        K8S_POD_INFRA_CONTAINER_ID: req.podId,
      },
      binDirs: this.opts.binDirs,
    };
  }

  private pluginConfig(i: number, req: PodNetworkRequest, prevResult: unknown): object {
    const { config } = this.opts;
    const plugin = config.plugins[i]!;
    const conf: Record<string, unknown> = { ...plugin, cniVersion: config.cniVersion, name: config.name };
    // Capabilities reach only the plugins that declare them, as runtimeConfig.
    const runtimeConfig: Record<string, unknown> = {};
    if (plugin.capabilities?.portMappings && req.portMappings && req.portMappings.length > 0) runtimeConfig.portMappings = req.portMappings;
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    if (prevResult !== undefined) conf.prevResult = prevResult;
    return conf;
  }

  private cacheFile(podId: string): string {
    return join(this.opts.cacheDir, `${this.name}-${podId}.json`);
  }

  /** Attaches the pod: runs the chain; the caller registers del() before calling (ADD can half-allocate). */
  async add(req: PodNetworkRequest): Promise<CniResult> {
    const inv = this.invocation('ADD', req);
    let prev: unknown;
    for (let i = 0; i < this.opts.config.plugins.length; i++) {
      prev = await invokePlugin(this.opts.config.plugins[i]!.type, this.pluginConfig(i, req, prev), inv);
    }
    const result = parseCniResult(prev);
    await mkdir(this.opts.cacheDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.cacheFile(req.podId), JSON.stringify({ request: req, result: prev }), 0o600);
    return result;
  }

  /** Detaches the pod. Idempotent: a pod never added, or already deleted, is fine. */
  async del(req: PodNetworkRequest): Promise<void> {
    const inv = this.invocation('DEL', req);
    const prev = await this.cachedRawResult(req.podId);
    const failures: string[] = [];
    for (let i = this.opts.config.plugins.length - 1; i >= 0; i--) {
      try {
        await invokePlugin(this.opts.config.plugins[i]!.type, this.pluginConfig(i, req, prev), inv);
      } catch (err) {
        failures.push(errorMessage(err));
      }
    }
    if (failures.length > 0) throw new NetworkError('CNI_DEL', `CNI DEL for pod ${req.podId}: ${failures.join('; ')}`);
    await rm(this.cacheFile(req.podId), { force: true });
  }

  /** Asks every plugin whether the pod's network is as ADD left it. */
  async check(req: PodNetworkRequest): Promise<void> {
    if (this.opts.config.disableCheck) return;
    const prev = await this.cachedRawResult(req.podId);
    if (prev === undefined) throw new NetworkError('CNI_CHECK', `CNI CHECK for pod ${req.podId}: no cached ADD result`);
    const inv = this.invocation('CHECK', req);
    for (let i = 0; i < this.opts.config.plugins.length; i++) {
      await invokePlugin(this.opts.config.plugins[i]!.type, this.pluginConfig(i, req, prev), inv);
    }
  }

  async cachedResult(podId: string): Promise<CniResult | undefined> {
    const raw = await this.cachedRawResult(podId);
    return raw === undefined ? undefined : parseCniResult(raw);
  }

  private async cachedRawResult(podId: string): Promise<unknown> {
    try {
      return (JSON.parse(await readFile(this.cacheFile(podId), 'utf8')) as { result: unknown }).result;
    } catch {
      return undefined;
    }
  }
}
