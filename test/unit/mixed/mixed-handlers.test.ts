// The routing layer against a fake OS runtime (a grpc-js CRI server on a
// unix socket) and a fake VM handler table; the real containerd is in
// test/integration/e2e/mixed-runtimes.test.ts. Here: what containerd 1.6
// cannot show (its event stream) and exact call routing.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadCriServices } from '../../../src/cri/proto.js';
import { CriError } from '../../../src/cri/errors.js';
import type { CallContext, HandlerTable } from '../../../src/cri/index.js';
import { mixedImageHandlers, mixedRuntimeHandlers, OsRuntime, type MixedDeps } from '../../../src/mixed/index.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
let dir: string;
let server: grpc.Server;
let socket: string;
const calls: { method: string; req: any }[] = [];
let osHasImage = false;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-mixed-unit-'));
  socket = join(dir, 'os.sock');
  const { RuntimeService } = loadCriServices();
  server = new grpc.Server();
  const unary = (method: string, answer: (req: any) => any) => (call: any, cb: any) => {
    calls.push({ method, req: call.request });
    try {
      cb(null, answer(call.request));
    } catch (err) {
      cb(err);
    }
  };
  server.addService(RuntimeService.service, {
    ListPodSandbox: unary('ListPodSandbox', () => ({ items: [{ id: 'os-pod', metadata: { name: 'os' } }] })),
    PodSandboxStatus: unary('PodSandboxStatus', (r) => {
      if (r.pod_sandbox_id !== 'os-pod') throw Object.assign(new Error('not found'), { code: grpc.status.NOT_FOUND, details: `an error occurred when try to find sandbox ${r.pod_sandbox_id}: not found` });
      return { status: { id: 'os-pod', state: 'SANDBOX_READY' } };
    }),
    CreateContainer: unary('CreateContainer', () => {
      if (!osHasImage) throw Object.assign(new Error('no image'), { code: grpc.status.NOT_FOUND, details: 'failed to resolve image "sha256:' + 'a'.repeat(64) + '": not found' });
      return { container_id: 'os-ctr' };
    }),
    GetContainerEvents: (call: any) => {
      calls.push({ method: 'GetContainerEvents', req: call.request });
      call.write({ container_id: 'os-1', container_event_type: 'CONTAINER_CREATED_EVENT' });
      call.write({ container_id: 'os-2', container_event_type: 'CONTAINER_STARTED_EVENT' });
      // Stays open, as containerd's does, until the client cancels.
    },
  });
  const { ImageService } = loadCriServices();
  server.addService(ImageService.service, {
    PullImage: unary('PullImage', () => {
      osHasImage = true;
      return { image_ref: 'sha256:' + 'a'.repeat(64) };
    }),
    RemoveImage: unary('RemoveImage', () => {
      osHasImage = false;
      return {};
    }),
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
});

after(async () => {
  server.forceShutdown();
  await rm(dir, { recursive: true, force: true });
});

function ctx(): CallContext & { abort(): void } {
  const c = new AbortController();
  return { rpc: 'test', signal: c.signal, deadline: undefined, stopping: new AbortController().signal, abort: () => c.abort() };
}

const vmAnswered: string[] = [];
function vmTable(): HandlerTable {
  const h = (name: string, answer: (req: any) => any = () => ({})) => async (req: any) => {
    vmAnswered.push(name);
    return answer(req);
  };
  return {
    unary: {
      Status: h('Status', () => ({ status: { conditions: [] }, runtime_handlers: [{ name: '' }] })),
      UpdateRuntimeConfig: h('UpdateRuntimeConfig'),
      RunPodSandbox: h('RunPodSandbox', () => ({ pod_sandbox_id: 'vm-pod' })),
      CreateContainer: h('CreateContainer', () => ({ container_id: 'vm-ctr' })),
      PodSandboxStatus: h('PodSandboxStatus', (r) => {
        if (r.pod_sandbox_id !== 'vm-pod') throw new CriError('NOT_FOUND', `pod ${r.pod_sandbox_id} not found`);
        return { status: { id: 'vm-pod' } };
      }),
      ListPodSandbox: h('ListPodSandbox', () => ({ items: [{ id: 'vm-pod' }] })),
      ...Object.fromEntries(['StopPodSandbox', 'RemovePodSandbox', 'PodSandboxStats', 'UpdatePodSandboxResources', 'PortForward', 'StartContainer', 'StopContainer', 'RemoveContainer', 'ContainerStatus', 'ContainerStats', 'ExecSync', 'Exec', 'Attach', 'UpdateContainerResources', 'ReopenContainerLog', 'ListContainers', 'ListContainerStats', 'ListPodSandboxStats', 'ListPodSandboxMetrics'].map((n) => [n, h(n, () => ({ containers: [], stats: [], pod_metrics: [] }))])),
    },
    stream: {
      GetContainerEvents: async (_req, c, send) => {
        await send({ container_id: 'vm-1', container_event_type: 'CONTAINER_CREATED_EVENT' });
        await new Promise<void>((resolve) => c.signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    },
  };
}

function deps(os: OsRuntime | undefined): MixedDeps {
  return { os, osHandlers: ['runc'], ownsPod: (id) => id === 'vm-pod', ownsContainer: (id) => id === 'vm-ctr' };
}

const vmImages: HandlerTable = {
  unary: { ImageStatus: async (req: any) => (req.image.image.startsWith('sha256:') ? { image: { id: req.image.image, repo_tags: ['reg/busybox:latest'], repo_digests: ['reg/busybox@sha256:' + 'b'.repeat(64)] } } : { image: null }) },
};

test('each call goes to the runtime that holds its pod; lists merge; a filter by id asks the owner only', async () => {
  const os = new OsRuntime(`unix://${socket}`);
  try {
    const t = mixedRuntimeHandlers(vmTable(), deps(os), vmImages).unary!;
    assert.deepEqual((await t.PodSandboxStatus!({ pod_sandbox_id: 'vm-pod' }, ctx())).status.id, 'vm-pod');
    assert.deepEqual((await t.PodSandboxStatus!({ pod_sandbox_id: 'os-pod' }, ctx())).status.id, 'os-pod');
    await assert.rejects(t.PodSandboxStatus!({ pod_sandbox_id: 'nobody' }, ctx()), (e: unknown) => e instanceof CriError && e.code === 'NOT_FOUND' && /OS-container runtime: an error occurred when try to find sandbox nobody/.test(e.message));
    assert.deepEqual((await t.ListPodSandbox!({}, ctx())).items.map((p: any) => p.id), ['vm-pod', 'os-pod']);
    calls.length = 0;
    assert.deepEqual((await t.ListPodSandbox!({ filter: { id: 'vm-pod' } }, ctx())).items.map((p: any) => p.id), ['vm-pod']);
    assert.equal(calls.length, 0, 'the OS runtime is not asked about a VM pod');
    assert.deepEqual((await t.ListPodSandbox!({ filter: { id: 'os-pod' } }, ctx())).items.map((p: any) => p.id), ['os-pod']);
    // Host pods: to the OS runtime; the rest to a VM.
    vmAnswered.length = 0;
    assert.equal((await t.RunPodSandbox!({ config: {} }, ctx())).pod_sandbox_id, 'vm-pod');
    assert.deepEqual(vmAnswered, ['RunPodSandbox']);
  } finally {
    os.close();
  }
});

test('a host pod\'s container from an image the OS runtime lacks: pulled there by the digest frakti holds, then created', async () => {
  const os = new OsRuntime(`unix://${socket}`);
  try {
    osHasImage = false;
    calls.length = 0;
    const t = mixedRuntimeHandlers(vmTable(), deps(os), vmImages).unary!;
    const id = 'sha256:' + 'a'.repeat(64);
    assert.equal((await t.CreateContainer!({ pod_sandbox_id: 'os-pod', config: { image: { image: id } } }, ctx())).container_id, 'os-ctr');
    assert.deepEqual(calls.map((c) => c.method), ['CreateContainer', 'PullImage', 'CreateContainer']);
    assert.equal(calls[1]!.req.image.image, 'reg/busybox@sha256:' + 'b'.repeat(64));
  } finally {
    os.close();
  }
});

test('GetContainerEvents: frakti\'s events and the OS runtime\'s on one stream; both end with the call', async () => {
  const os = new OsRuntime(`unix://${socket}`);
  try {
    const t = mixedRuntimeHandlers(vmTable(), deps(os), vmImages).stream!;
    const got: string[] = [];
    const c = ctx();
    const run = t.GetContainerEvents!({}, c, async (m: any) => {
      got.push(m.container_id);
      if (got.length === 3) c.abort();
    });
    await run;
    assert.deepEqual(got.sort(), ['os-1', 'os-2', 'vm-1']);
  } finally {
    os.close();
  }
});

test('no OS runtime socket on the node: frakti answers alone, as without mixed runtimes', async () => {
  const os = new OsRuntime(`unix://${join(dir, 'absent.sock')}`);
  const t = mixedRuntimeHandlers(vmTable(), deps(os), vmImages).unary!;
  await assert.rejects(t.PodSandboxStatus!({ pod_sandbox_id: 'nobody' }, ctx()), (e: unknown) => e instanceof CriError && e.code === 'NOT_FOUND' && /pod nobody not found/.test(e.message));
  assert.deepEqual((await t.ListPodSandbox!({}, ctx())).items.map((p: any) => p.id), ['vm-pod']);
  await assert.rejects(
    t.RunPodSandbox!({ config: { linux: { security_context: { privileged: true } } } }, ctx()),
    (e: unknown) => e instanceof CriError && e.code === 'FAILED_PRECONDITION' && /needs the OS-container runtime \(a privileged pod\).*its socket .*absent\.sock does not exist/.test(e.message),
  );
  const none = mixedRuntimeHandlers(vmTable(), deps(undefined), vmImages).unary!;
  await assert.rejects(none.RunPodSandbox!({ config: {}, runtime_handler: 'runc' }, ctx()), (e: unknown) => e instanceof CriError && e.code === 'FAILED_PRECONDITION' && /runtime handler runc.*none is configured/.test(e.message));
});

test('a pull frakti fails leaves the image in neither store; one it makes is in both', async () => {
  const os = new OsRuntime(`unix://${socket}`);
  try {
    const failing = mixedImageHandlers({ unary: { PullImage: async () => Promise.reject(new CriError('UNAVAILABLE', 'registry down')), RemoveImage: async () => ({}) } }, deps(os)).unary!;
    osHasImage = false;
    calls.length = 0;
    await assert.rejects(failing.PullImage!({ image: { image: 'reg/busybox:latest' } }, ctx()), /registry down/);
    assert.deepEqual(calls.map((c) => c.method), ['PullImage', 'RemoveImage']);
    assert.equal(osHasImage, false);
    const working = mixedImageHandlers({ unary: { PullImage: async () => ({ image_ref: 'sha256:' + 'a'.repeat(64) }), RemoveImage: async () => ({}) } }, deps(os)).unary!;
    await working.PullImage!({ image: { image: 'reg/busybox:latest' } }, ctx());
    assert.equal(osHasImage, true);
  } finally {
    os.close();
  }
});
