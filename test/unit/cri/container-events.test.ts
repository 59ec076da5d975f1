// GetContainerEvents over a real socket: events reach a subscriber in order;
// one that stops reading is cut off with RESOURCE_EXHAUSTED once its queue is
// full, and nothing more is held for it, however many events follow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { CriServer } from '../../../src/cri/server.js';
import { makeGetContainerEvents } from '../../../src/cri/container-events.js';
import { ContainerEventHub } from '../../../src/pod/container-events.js';
import type { PodDeps } from '../../../src/cri/pod-manager-holder.js';
import { criClient } from '../../helpers/cri-client.js';

const MAX_QUEUED = 16;

async function serve(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-events-'));
  const hub = new ContainerEventHub();
  // Just what the handler uses of the pod manager.
  const manager = { subscribeEvents: (n?: number) => hub.subscribe(n), pods: () => [], containers: () => [] };
  const deps = { pods: () => manager, sizing: {} } as unknown as PodDeps;
  const server = await CriServer.listen({ socketPath: join(dir, 'cri.sock'), runtime: { stream: { GetContainerEvents: makeGetContainerEvents(deps, MAX_QUEUED) } }, image: { unary: {} } });
  server.gate.setReady();
  const client = criClient(server.socketPath);
  t.after(async () => {
    client.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return { hub, client };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
test('a subscriber gets every event in order', async (t) => {
  const { hub, client } = await serve(t);
  const call = (client.raw.runtime as any).GetContainerEvents({});
  const got: string[] = [];
  call.on('data', (e: any) => got.push(`${e.container_id}:${e.container_event_type}`));
  call.on('error', () => {});
  while (hub.subscribers === 0) await new Promise((r) => setTimeout(r, 10));
  hub.recordChanged('c1', 'p', undefined, { state: 'CREATED' } as never);
  hub.recordChanged('c1', 'p', { state: 'CREATED' } as never, { state: 'RUNNING' } as never);
  hub.recordChanged('c1', 'p', { state: 'RUNNING' } as never, undefined);
  while (got.length < 4) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, ['c1:CONTAINER_CREATED_EVENT', 'c1:CONTAINER_STARTED_EVENT', 'c1:CONTAINER_STOPPED_EVENT', 'c1:CONTAINER_DELETED_EVENT']);
  call.cancel();
});

test('a subscriber that stops reading is cut off with RESOURCE_EXHAUSTED; nothing piles up for it', async (t) => {
  const { hub, client } = await serve(t);
  const call = (client.raw.runtime as any).GetContainerEvents({});
  call.pause();
  let received = 0;
  const ended = new Promise<any>((resolve) => {
    call.on('error', resolve);
    call.on('end', () => resolve(undefined));
  });
  while (hub.subscribers === 0) await new Promise((r) => setTimeout(r, 10));
  // Far more than gRPC's and HTTP/2's buffers hold: the handler blocks on its send, its queue fills.
  let emitted = 0;
  for (let batch = 0; batch < 200 && hub.subscribers > 0; batch++) {
    for (let i = 0; i < 500; i++, emitted++) hub.recordChanged(`c${emitted}`, 'p', undefined, { state: 'CREATED' } as never);
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(hub.subscribers, 0, 'the stalled subscriber was dropped');
  call.on('data', () => received++);
  call.resume();
  const err = await ended;
  assert.equal(err?.code, status.RESOURCE_EXHAUSTED, String(err));
  assert.match(err.details, /fell too far behind/);
  assert.ok(received < emitted, `${received} of ${emitted} delivered`);
});
