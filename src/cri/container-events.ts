// RuntimeService/GetContainerEvents: the container lifecycle as a stream,
// for kubelet's evented PLEG. Each event carries the pod's status and the
// statuses of its containers as they are when the event is sent, as
// containerd's CRI plugin sends them. A consumer that falls behind by more
// than the pod room's queue bound is cut off with RESOURCE_EXHAUSTED; it
// may subscribe again (kubelet then relists).
import { CriError } from './errors.js';
import type { PodDeps } from './pod-manager-holder.js';
import { nanos, toContainerStatus, toPodSandboxStatus } from './pod-mapping.js';
import type { StreamHandler } from './rpc-wrapper.js';
import type { ContainerEvent, PodManager } from '../pod/index.js';

const EVENT_TYPE = { CREATED: 'CONTAINER_CREATED_EVENT', STARTED: 'CONTAINER_STARTED_EVENT', STOPPED: 'CONTAINER_STOPPED_EVENT', DELETED: 'CONTAINER_DELETED_EVENT' } as const;

export function eventMessage(pods: PodManager, e: ContainerEvent) {
  const pod = pods.pods().find((p) => p.meta.id === e.podId);
  return {
    container_id: e.containerId,
    container_event_type: EVENT_TYPE[e.type],
    created_at: nanos(e.at),
    pod_sandbox_status: pod ? toPodSandboxStatus(pod) : null,
    containers_statuses: pods.containers().filter((c) => c.meta.podId === e.podId).map(toContainerStatus),
  };
}

export function makeGetContainerEvents(d: PodDeps, maxQueued?: number): StreamHandler<Record<string, never>, ReturnType<typeof eventMessage>> {
  return async (_req, ctx, send) => {
    const sub = d.pods().subscribeEvents(maxQueued);
    if (!sub) throw new CriError('RESOURCE_EXHAUSTED', 'GetContainerEvents: too many subscribers already');
    const over = AbortSignal.any([ctx.signal, ctx.stopping]);
    try {
      for (;;) {
        const e = await sub.next(over);
        if (!e) break;
        await send(eventMessage(d.pods(), e));
      }
      if (sub.ended === 'overflow') throw new CriError('RESOURCE_EXHAUSTED', 'GetContainerEvents: the client fell too far behind; subscribe again and relist');
    } finally {
      sub.close();
    }
  };
}
