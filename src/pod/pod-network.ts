// A pod's network, made in the order teardown needs: the namespace with the
// tap the VM's NIC is on (QEMU opens it at start), the CNI attachment (its
// DEL registered before ADD, since ADD can half-allocate), then the tap wired
// to eth0. What the guest must configure is read back from the namespace, as
// CNI left it.
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import type { UndoStack } from '../lib/undo.js';
import {
  CniNetwork, createNetns, deleteNetns, netnsPath, podIps, wireTap, type PodNetworkRequest, type TapWiring,
} from '../network/index.js';
import { PodError } from './errors.js';
import type { PodSpec } from './types.js';

const log = logger('pod');

export interface PodNetwork {
  netns: string;
  netnsPath: string;
  ips: string[];
  wiring: TapWiring;
}

/** The tap beside eth0 in every pod's namespace: the VM's NIC is on it. */
export const POD_TAP = 'tap0';

/**
 * The MAC a pod VM's NIC boots with, before CNI has given eth0 its own: random,
 * unicast, locally administered (no vendor's, and no other VM's).
 */
export function placeholderMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Name of a pod's namespace: short (ip netns names are file names), unique by pod id. */
export function podNetnsName(podId: string): string {
  return `frakti-${podId.slice(0, 16)}`;
}

export function cniRequest(podId: string, spec: PodSpec): PodNetworkRequest {
  return {
    podId,
    podName: spec.metadata.name,
    podNamespace: spec.metadata.namespace,
    netnsPath: netnsPath(podNetnsName(podId)),
    portMappings: spec.portMappings.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol, ...(p.hostIp ? { hostIP: p.hostIp } : {}) })),
  };
}

/** The pod's network namespace: made first, so QEMU can start in it while CNI works. */
export async function createPodNetns(podId: string, undo: UndoStack): Promise<string> {
  const netns = podNetnsName(podId);
  // Registered first: a namespace made but not brought up (lo) goes too. The
  // name is the pod's own, so deleting it can hit no one else's.
  undo.push(`delete netns ${netns}`, () => deleteNetns(netns));
  await createNetns(netns);
  return netns;
}

/** CNI ADD in the pod's namespace, then the tap wired to its eth0 (a pool VM's tap exists already). */
export async function attachPodNetwork(podId: string, spec: PodSpec, cni: CniNetwork, undo: UndoStack, opts: { tapExists?: boolean } = {}): Promise<PodNetwork> {
  const netns = podNetnsName(podId);
  const req = cniRequest(podId, spec);
  let addFailed = false;
  undo.push(`CNI DEL ${cni.name}`, async () => {
    try {
      await cni.del(req);
    } catch (err) {
      // After a failed ADD, DEL of the same config usually fails the same way
      // (a broken config). The namespace goes next, and the veth with it, so
      // this is reported, not kept as unfinished work.
      if (!addFailed) throw err;
      log.warn('CNI DEL after a failed ADD failed too', { pod: podId, err: errorMessage(err) });
    }
  });
  let result;
  try {
    result = await cni.add(req);
  } catch (err) {
    addFailed = true;
    throw new PodError('INTERNAL', `set up pod network (${cni.name}): ${errorMessage(err)}`, {}, err);
  }
  // The tap and its filters live in the namespace: deleting it removes them.
  const wiring = await wireTap(netns, 'eth0', POD_TAP, opts);
  return { netns, netnsPath: req.netnsPath, ips: podIps(result), wiring };
}

/** Idempotent teardown: CNI DEL (also for a half-made pod), then the namespace. */
export async function tearDownPodNetwork(podId: string, spec: PodSpec, cni: CniNetwork): Promise<void> {
  const failures: string[] = [];
  await cni.del(cniRequest(podId, spec)).catch((err) => failures.push(errorMessage(err)));
  await deleteNetns(podNetnsName(podId)).catch((err) => failures.push(errorMessage(err)));
  if (failures.length > 0) throw new PodError('INTERNAL', `tear down pod network: ${failures.join('; ')}`);
}
