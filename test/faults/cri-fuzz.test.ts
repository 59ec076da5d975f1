// Hostile CRI requests against the real daemon: RunPodSandbox and
// CreateContainer with one field at a time — every field of
// PodSandboxConfig and ContainerConfig that runtime.v1 has, found by walking
// api.proto — given a hostile value: strings of 1 MiB, NUL bytes, '../' and
// relative paths, invalid UTF-8 (written into the encoded request, which no
// well-behaved client library sends), control characters, negative and huge
// integers, unknown enum numbers, thousands of entries in lists and maps.
//
// What the daemon must do with each: answer (it still answers Version), and
// either accept the request or refuse it with a gRPC status a client can act
// on (never UNKNOWN, nor INTERNAL: that is our bug) and a message; a refused
// request leaves the pod and container lists as they were, and a relative
// path where the CRI wants an absolute one is always refused. After the run,
// with every pod removed, nothing may be left on the node.
//
// Pods cost a VM boot each, so the pod fuzz aims at one pod kept running
// (the anchor): a request with the anchor's metadata that passes every check
// is refused ALREADY_EXISTS by the name reservation, which comes after the
// checks and before anything is made. A few of those (REAL_POD_RUNS) are
// sent again under a fresh name, to boot for real and be removed.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { execa } from 'execa';
import protobuf from 'protobufjs';
import { MAX_STATUS_DETAILS } from '../../src/cri/errors.js';
import { criProtoPath } from '../../src/cri/proto.js';
import type { RunningDaemon } from '../helpers/cri-client.js';
import { daemonLeavingNothing } from '../helpers/e2e-daemon.js';
import { buildBusyboxImage, pushImage, startRegistry, type Registry } from '../helpers/image-registry.js';
import { mountsUnder } from '../helpers/vmm-leaks.js';
import { auditLeaks, idsInLogs, nodeBaseline, type NodeBaseline } from './leak-audit.js';
import { faultSchedule, type Schedule } from './schedule.js';

const sched = faultSchedule('cri-fuzz');
const POD_CASES = sched.count(120, 1500);
const CONTAINER_CASES = sched.count(100, 1200);
/** Pods booted for real besides the anchor: the VM budget of a run. */
const REAL_POD_RUNS = 4;
const CALL_TIMEOUT_MS = 60_000;
const MIB = 1024 * 1024;
/** Entries in a list or map that asks for "thousands". */
const MANY = 5000;

const cri = new protobuf.Root().loadSync(criProtoPath(), { keepCase: true });
cri.resolveAll();
const criType = (name: string) => cri.lookupType(`runtime.v1.${name}`);

// --- the daemon, its image and the anchor pod ----------------------------------------

let dir: string;
let scratch: string;
let reg: Registry | undefined;
let image: string;
let d: RunningDaemon;
let baseline: NodeBaseline;
let anchorPod: string;
const ownIds = new Set<string>();
const cleanups: (() => unknown)[] = [];

const ANCHOR_METADATA = { name: 'fuzz-anchor', uid: 'uid-fuzz-anchor', namespace: 'fuzz', attempt: 0 };

function podConfig(metadata: Record<string, unknown>): Record<string, unknown> {
  return {
    metadata,
    hostname: 'fuzz',
    log_directory: join(dir, 'logs'),
    dns_config: { servers: ['10.96.0.10'], searches: ['fuzz.svc.cluster.local'], options: ['ndots:5'] },
    labels: { app: 'fuzz' },
    annotations: { note: 'fuzz' },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

function containerConfig(name: string): Record<string, unknown> {
  return {
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '1000'],
    working_dir: '/',
    envs: [{ key: 'FUZZ', value: Buffer.from('1') }],
    log_path: `${name}.log`,
    labels: { c: 'fuzz' },
  };
}

/** The element a list gets where a mutation reaches into it: each is accepted by itself. */
function baseElement(typeName: string): Record<string, unknown> {
  switch (typeName) {
    case 'PortMapping': return { protocol: 'TCP', container_port: 80, host_port: 0 };
    case 'Mount': return { container_path: '/fuzz-data', host_path: join(scratch, 'hostdata') };
    case 'Device': return { container_path: '/dev/fuzz-null', host_path: '/dev/null', permissions: 'rw' };
    case 'KeyValue': return { key: 'FUZZ_EXTRA', value: Buffer.from('x') };
    case 'HugepageLimit': return { page_size: '2MB', limit: 0 };
    case 'IDMapping': return { host_id: 0, container_id: 0, length: 1 };
    default: return {};
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-cri-fuzz-'));
  scratch = join(dir, 'scratch');
  await mkdir(join(scratch, 'hostdata'), { recursive: true });
  reg = await startRegistry();
  image = `${reg.host}/busybox:latest`;
  await pushImage((await buildBusyboxImage(dir)).layout, image);
  baseline = await nodeBaseline();
  d = await daemonLeavingNothing({ after: (fn) => cleanups.push(fn) }, dir, 'daemon');
  // The pod ids it logs: the final audit counts only its own namespaces and rules (other daemons may share the node).
  let tail = '';
  d.child.stderr?.on('data', (b: Buffer) => {
    const text = tail + b.toString();
    for (const id of idsInLogs(text)) ownIds.add(id);
    tail = text.slice(-64);
  });
  await d.client.image.PullImage!({ image: { image } }, { timeoutMs: CALL_TIMEOUT_MS });
  anchorPod = (await d.client.runtime.RunPodSandbox!({ config: podConfig(ANCHOR_METADATA) }, { timeoutMs: CALL_TIMEOUT_MS })).pod_sandbox_id;
});

after(async () => {
  // daemonLeavingNothing's check: the pods removed, no QEMU, virtiofsd or namespace left.
  try {
    for (const fn of cleanups.reverse()) await fn();
  } finally {
    await reg?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

// --- the fields and their hostile values -----------------------------------------------

type Segment = string | 0;
interface Leaf {
  /** Field names from the config down; 0 stands for a list's one element. */
  path: Segment[];
  field: protobuf.Field;
  name: string;
}

/** Every field of `type` a value can be put in, recursively: messages are walked, lists both filled and walked into. */
function leavesOf(type: protobuf.Type, prefix: Segment[] = []): Leaf[] {
  const out: Leaf[] = [];
  for (const field of type.fieldsArray) {
    const path = [...prefix, field.name];
    const name = path.filter((s) => s !== 0).join('.');
    const sub = field.resolvedType;
    if (!field.map && sub instanceof protobuf.Type) {
      if (field.repeated) {
        out.push({ path, field, name });
        out.push(...leavesOf(sub, [...path, 0]));
      } else out.push(...leavesOf(sub, path));
    } else out.push({ path, field, name });
  }
  return out;
}

const POD_LEAVES = [...leavesOf(criType('PodSandboxConfig')), { path: ['runtime_handler'], field: criType('RunPodSandboxRequest').fields.runtime_handler!, name: 'runtime_handler' }];
const CONTAINER_LEAVES = leavesOf(criType('ContainerConfig'));

/**
 * Fields the CRI defines as absolute paths on the host or in the container
 * (and log_path, relative to the pod's log directory, which must stay in
 * it): a relative or '../' value there must be refused, or the daemon would
 * resolve it against its own working directory.
 */
const ABSOLUTE_PATHS = new Set(['log_directory', 'working_dir', 'mounts.host_path', 'mounts.container_path', 'devices.host_path', 'devices.container_path', 'linux.security_context.masked_paths', 'linux.security_context.readonly_paths']);
const INSIDE_LOG_DIRECTORY = new Set(['log_path']);

/** An ASCII stand-in that is swapped for invalid UTF-8 of the same length in the encoded request. */
const UTF8_MARKER = 'Zq7UTF8x';
const INVALID_UTF8 = Buffer.from([0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xf8]);

interface Hostile {
  value: unknown;
  note: string;
  /** A relative or '../' path: refused where the field is an absolute path. */
  relative?: 'relative' | 'dotdot';
}

function hostileStrings(): Hostile[] {
  return [
    { value: 'a'.repeat(MIB), note: 'a string of 1 MiB' },
    { value: 'fuzz\0nul', note: 'a NUL byte' },
    { value: '../../../../etc', note: "a '../' path", relative: 'dotdot' },
    { value: 'relative/path', note: 'a relative path', relative: 'relative' },
    { value: UTF8_MARKER, note: 'invalid UTF-8' },
    { value: 'a\nb\rc\td', note: 'control characters' },
    { value: '', note: 'empty' },
    { value: `${scratch}/nul\0x`, note: 'an absolute path with a NUL byte' },
    { value: `${scratch}/${'a'.repeat(MIB)}`, note: 'an absolute path of 1 MiB' },
    { value: `${scratch}/${UTF8_MARKER}`, note: 'an absolute path of invalid UTF-8' },
  ];
}

const HOSTILE_INTS: Record<string, (string | number)[]> = {
  int32: [-1, -2147483648, 2147483647],
  uint32: [4294967295, 2147483648],
  int64: ['-1', '-9223372036854775808', '9223372036854775807', '9007199254740993'],
  uint64: ['18446744073709551615', '9223372036854775808'],
};

/** The hostile values a field can take. */
function hostileValues(leaf: Leaf): Hostile[] {
  const f = leaf.field;
  const sub = f.resolvedType;
  if (f.map) {
    const many = Object.fromEntries(Array.from({ length: MANY }, (_, i) => [`fuzz-${i}`, 'v']));
    return [
      { value: many, note: `${MANY} entries` },
      ...hostileStrings().flatMap((h) => [
        { value: { [String(h.value)]: 'v' }, note: `a key of ${h.note}` },
        { value: { k: h.value }, note: `a value of ${h.note}` },
      ]),
    ];
  }
  if (sub instanceof protobuf.Type) return [{ value: Array.from({ length: MANY }, () => baseElement(sub.name)), note: `${MANY} entries` }];
  let one: Hostile[];
  if (sub instanceof protobuf.Enum) one = [99, -1, 2147483647].map((n) => ({ value: n, note: `unknown enum number ${n}` }));
  else if (f.type === 'string') one = hostileStrings();
  else if (f.type === 'bytes') one = hostileStrings().map((h) => ({ ...h, value: Buffer.from(String(h.value)) })).concat([{ value: INVALID_UTF8, note: 'invalid UTF-8 bytes' }]);
  else if (f.type === 'bool') one = [{ value: true, note: 'true' }, { value: false, note: 'false' }];
  else one = (HOSTILE_INTS[f.type] ?? HOSTILE_INTS.int64!).map((n) => ({ value: n, note: String(n) }));
  if (!f.repeated) return one;
  const filler = f.type === 'string' ? (i: number) => `fuzz-${i}` : (i: number) => i;
  return [{ value: Array.from({ length: MANY }, (_, i) => filler(i)), note: `${MANY} entries` }, ...one.map((h) => ({ ...h, value: [h.value], note: `an entry of ${h.note}` }))];
}

/** `base` with `value` at `path` (lists on the way get their base element). */
function withValue(base: Record<string, unknown>, leaf: Leaf, value: unknown, type: protobuf.Type): Record<string, unknown> {
  const out = structuredClone(base);
  let at: Record<string, unknown> | unknown[] = out;
  let atType: protobuf.Type = type;
  for (let i = 0; i < leaf.path.length - 1; i++) {
    const seg = leaf.path[i]!;
    if (seg === 0) {
      const list = at as unknown as unknown[];
      at = list[0] as Record<string, unknown>;
      continue;
    }
    const field = atType.fields[seg]!;
    const subType = field.resolvedType as protobuf.Type;
    const obj = at as Record<string, unknown>;
    if (field.repeated) {
      if (!Array.isArray(obj[seg]) || (obj[seg] as unknown[]).length === 0) obj[seg] = [baseElement(subType.name)];
    } else if (typeof obj[seg] !== 'object' || obj[seg] === null) obj[seg] = {};
    at = obj[seg] as Record<string, unknown>;
    atType = subType;
  }
  (at as Record<string, unknown>)[leaf.path[leaf.path.length - 1] as string] = value;
  return out;
}

/** The request's bytes, with every UTF-8 marker made invalid UTF-8. */
function encode(typeName: string, req: Record<string, unknown>): Buffer {
  const t = criType(typeName);
  const bytes = Buffer.from(t.encode(t.fromObject(req)).finish());
  const marker = Buffer.from(UTF8_MARKER);
  for (let at = bytes.indexOf(marker); at >= 0; at = bytes.indexOf(marker, at + marker.length)) INVALID_UTF8.copy(bytes, at);
  return bytes;
}

/** One RuntimeService call with bytes encoded here: resolves with the decoded answer, or the ServiceError. */
function rawCall(method: string, bytes: Buffer, answerType: string): Promise<{ ok: Record<string, unknown> } | { err: grpc.ServiceError }> {
  return new Promise((resolve) => {
    d.client.raw.runtime.makeUnaryRequest<Buffer, Buffer>(
      `/runtime.v1.RuntimeService/${method}`,
      (b) => b,
      (b) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + CALL_TIMEOUT_MS },
      (err, res) => {
        if (err) return resolve({ err });
        const t = criType(answerType);
        resolve({ ok: t.toObject(t.decode(res!), { defaults: true }) });
      },
    );
  });
}

// --- what every answer must look like ---------------------------------------------------------

/** Codes a client can act on; UNKNOWN and INTERNAL are not among them. */
const REFUSAL_CODES = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.RESOURCE_EXHAUSTED, grpc.status.OUT_OF_RANGE, grpc.status.NOT_FOUND, grpc.status.ALREADY_EXISTS]);

function describe(err: grpc.ServiceError): string {
  return `${grpc.status[err.code]}: ${err.details.slice(0, 300)}`;
}

function assertRefusal(err: grpc.ServiceError, what: string): void {
  assert.ok(REFUSAL_CODES.has(err.code), `${what} was refused with ${describe(err)}`);
  assert.ok(err.details.trim().length > 0, `${what} was refused with ${grpc.status[err.code]} and no message`);
  assert.doesNotMatch(err.details, /^internal error/, `${what}: ${describe(err)}`);
}

interface Listed {
  pods: string[];
  containers: string[];
  /** The daemon's pod, container and VM folders: what leak-audit.ts reads at the end, per case. */
  folders: string[];
}

async function listed(): Promise<Listed> {
  const rt = d.client.runtime;
  const pods = (await rt.ListPodSandbox!({}, { timeoutMs: CALL_TIMEOUT_MS })).items.map((p: { id: string }) => p.id).sort();
  const containers = (await rt.ListContainers!({}, { timeoutMs: CALL_TIMEOUT_MS })).containers.map((c: { id: string }) => c.id).sort();
  const folders: string[] = [];
  for (const at of [join(d.root, 'pods'), join(d.root, 'containers'), join(d.state, 'pods'), join(d.state, 'vm')]) {
    for (const e of await readdir(at).catch(() => [])) folders.push(join(at, e));
  }
  return { pods, containers, folders: folders.sort() };
}

/** The daemon still answers, and its lists and folders are what they were before the case. */
async function assertUnchanged(before: Listed, what: string): Promise<void> {
  const v = await d.client.runtime.Version!({}, { timeoutMs: 10_000 }).catch((e: unknown) => e);
  assert.ok(typeof v?.runtime_name === 'string', `the daemon stopped answering Version after ${what}: ${String(v)}`);
  assert.deepEqual(await listed(), before, `${what} left the pod or container lists, or the daemon's folders, changed`);
}

function mustRefuse(leaf: Leaf, h: Hostile): boolean {
  return (ABSOLUTE_PATHS.has(leaf.name) && h.relative !== undefined) || (INSIDE_LOG_DIRECTORY.has(leaf.name) && h.relative === 'dotdot');
}

interface Case {
  index: number;
  leaf: Leaf;
  hostile: Hostile;
}

const label = (c: Case) => `case ${c.index}: ${c.leaf.name} = ${c.hostile.note}`;

function pickCase(s: Schedule, leaves: Leaf[], index: number): Case {
  const leaf = s.pick(leaves);
  return { index, leaf, hostile: s.pick(hostileValues(leaf)) };
}

function failWithSeed(err: unknown, c: Case): Error {
  return new Error(`${label(c)}: ${(err as Error).message}\nreplay with FRAKTI_FAULT_SEED=${sched.seed}`, { cause: err });
}

/** Stops and removes a pod the fuzz made; the lists are then as before. */
async function removePod(id: string): Promise<void> {
  await d.client.runtime.StopPodSandbox!({ pod_sandbox_id: id }, { timeoutMs: CALL_TIMEOUT_MS });
  await d.client.runtime.RemovePodSandbox!({ pod_sandbox_id: id }, { timeoutMs: CALL_TIMEOUT_MS });
}

// --- the tests ----------------------------------------------------------------------------------

/** Requests that found bugs of the CRI room, each refused now: [where, field, value, what it did before]. */
const REGRESSIONS: ['pod' | 'container', string, unknown, string][] = [
  ['pod', 'linux.security_context.seccomp_profile_path', 'a'.repeat(MIB), 'the refusal echoed 1 MiB into the status trailer: the call and the connection hung'],
  ['pod', 'port_mappings.protocol', -1, 'INTERNAL: (p.protocol || "TCP").toLowerCase is not a function'],
  ['pod', 'port_mappings.host_ip', '../../etc', "taken; CNI's portmap refuses it only once the VM booted"],
  ['pod', 'metadata.namespace', 'a'.repeat(MIB), 'UNKNOWN after the VM booted: CNI ADD could not run with it in CNI_ARGS'],
  ['pod', 'metadata.name', 'x;IP=10.249.0.99', "taken into CNI_ARGS, where ';' starts an argument of the client's choosing"],
  ['pod', 'log_directory', 'relative/logs', "taken, and resolved against the daemon's working directory"],
  ['container', 'mounts.host_path', '../../../../etc', "the node's /etc (relative to the daemon's working directory) bound into the container"],
  ['container', 'mounts.host_path', `/tmp/${'a'.repeat(MIB)}`, 'INTERNAL: ENAMETOOLONG from mkdir'],
  ['container', 'mounts', Array.from({ length: MANY }, () => ({ container_path: '/fuzz-data', host_path: '/tmp' })), 'one bind mount on the host each, for minutes'],
  ['container', 'linux.security_context.seccomp.profile_type', 99, 'taken as no profile: unconfined'],
  ['container', 'linux.security_context.run_as_user.value', '9223372036854775807', 'refused only by the agent client, after the root filesystem was mounted'],
  ['container', 'stop_signal', 99, 'read as the signal "99", refused only after the root filesystem was mounted'],
];

test('regressions: requests that found bugs of the CRI room are refused, and the daemon serves on', async () => {
  for (const [where, name, value, before] of REGRESSIONS) {
    const what = `${where} ${name} (it was: ${before})`;
    const leaf = (where === 'pod' ? POD_LEAVES : CONTAINER_LEAVES).find((l) => l.name === name);
    assert.ok(leaf, name);
    const was = await listed();
    const started = Date.now();
    let res;
    if (where === 'pod') {
      const metadata = name.startsWith('metadata.') ? { ...ANCHOR_METADATA, name: 'fuzz-regression' } : ANCHOR_METADATA;
      res = await rawCall('RunPodSandbox', encode('RunPodSandboxRequest', { config: withValue(podConfig(metadata), leaf, value, criType('PodSandboxConfig')) }), 'RunPodSandboxResponse');
    } else {
      const config = withValue(containerConfig('fuzz-regression'), leaf, value, criType('ContainerConfig'));
      res = await rawCall('CreateContainer', encode('CreateContainerRequest', { pod_sandbox_id: anchorPod, config, sandbox_config: podConfig(ANCHOR_METADATA) }), 'CreateContainerResponse');
    }
    if ('ok' in res) {
      // Taken again: undo it before failing, so that what follows is not disturbed.
      if (where === 'pod') await removePod(String(res.ok.pod_sandbox_id));
      else await removeContainer(String(res.ok.container_id));
      assert.fail(`${what}: taken`);
    }
    assert.equal(res.err.code, grpc.status.INVALID_ARGUMENT, `${what}: ${describe(res.err)}`);
    assert.ok(res.err.details.length > 0 && res.err.details.length <= MAX_STATUS_DETAILS + 64, `${what}: a message of ${res.err.details.length} characters`);
    assert.ok(Date.now() - started < 10_000, `${what}: took ${Date.now() - started} ms`);
    await assertUnchanged(was, what);
  }
});

// --- bugs of the pod room this fuzz found (fixed) ------------------------------------------------
// Each would still be worked around where it shows, so that a run goes on
// finding other things, but it is counted and the run fails on it; a named
// test below keeps the case that found it.

/**
 * 1. RemoveContainer of a container with a host mount unmounts the folder
 * that holds the container's bind mounts, not the mounts in it, then fails
 * to remove it (INTERNAL, EBUSY), and the container stays.
 */
const MOUNTS_LEFT_MOUNTED = /EBUSY: resource busy or locked, rmdir '(.*\/mounts)\/\d+'/;

/** RemoveContainer; where bug 1 strikes, unmounts what it left and removes again. Returns whether it struck. */
async function removeContainer(id: string): Promise<boolean> {
  const remove = () => d.client.runtime.RemoveContainer!({ container_id: id }, { timeoutMs: CALL_TIMEOUT_MS });
  const err: grpc.ServiceError | undefined = await remove().then(() => undefined, (e: grpc.ServiceError) => e);
  const folder = err && MOUNTS_LEFT_MOUNTED.exec(err.details)?.[1];
  if (!folder) {
    if (err) throw err;
    return false;
  }
  for (const m of (await mountsUnder(folder)).reverse()) await execa('umount', ['-l', m]);
  await remove();
  return true;
}

/**
 * 2. A CreateContainer refused after the container's root filesystem was
 * mounted (by the guest, or by a check of the pod room that comes late)
 * leaves the container's folder root/containers/<id>, empty: its undo
 * removes only the rw folder inside. Removes such folders; returns how many.
 */
async function sweepBug2(before: Listed): Promise<number> {
  let n = 0;
  const at = join(d.root, 'containers');
  for (const e of await readdir(at).catch(() => [] as string[])) {
    const folder = join(at, e);
    if (before.folders.includes(folder) || (await readdir(folder).catch(() => ['?'])).length > 0) continue;
    await rmdir(folder);
    n++;
  }
  return n;
}

/** Fields the VM or the pod network sees: where a pod that passes the checks is worth a boot. */
const REACHES_THE_VM = /^(hostname|log_directory|dns_config|port_mappings|linux\.(sysctls|resources|overhead)|runtime_handler)/;

test(`RunPodSandbox: ${POD_CASES} requests with one hostile field each`, { timeout: sched.long ? 3 * 3600_000 : 300_000 }, async () => {
  const seen = { refused: 0, passedChecks: 0, booted: [] as string[], byCode: {} as Record<string, number> };
  let vmsLeft = REAL_POD_RUNS;
  let serial = 0;
  for (let index = 0; index < POD_CASES; index++) {
    // Metadata makes a new pod name: such a case boots when it passes, so it is drawn only while VMs are left.
    const leaves = vmsLeft > 0 ? POD_LEAVES : POD_LEAVES.filter((l) => l.path[0] !== 'metadata');
    const c = pickCase(sched, leaves, index);
    const wantsReal = sched.random() < (REACHES_THE_VM.test(c.leaf.name) ? 0.3 : 0.03);
    const before = await listed();
    const fresh = () => ({ name: `fuzz-${index}-${serial++}`, uid: `uid-${index}`, namespace: 'fuzz', attempt: 0 });
    const request = (metadata: Record<string, unknown>) => {
      const config = podConfig(metadata);
      if (c.leaf.name === 'runtime_handler') return { config, runtime_handler: c.hostile.value };
      return { config: withValue(config, c.leaf, c.hostile.value, criType('PodSandboxConfig')), runtime_handler: '' };
    };
    try {
      const ownName = c.leaf.path[0] === 'metadata';
      let res = await rawCall('RunPodSandbox', encode('RunPodSandboxRequest', request(ownName ? fresh() : ANCHOR_METADATA)), 'RunPodSandboxResponse');
      if ('err' in res && res.err.code === grpc.status.ALREADY_EXISTS && !ownName) {
        // Past every check, stopped by the anchor's name.
        seen.passedChecks++;
        assert.ok(!mustRefuse(c.leaf, c.hostile), `a relative path passed the checks: ${describe(res.err)}`);
        if (!wantsReal || vmsLeft === 0) {
          await assertUnchanged(before, label(c));
          continue;
        }
        res = await rawCall('RunPodSandbox', encode('RunPodSandboxRequest', request(fresh())), 'RunPodSandboxResponse');
      }
      if ('ok' in res) {
        vmsLeft--;
        seen.booted.push(label(c));
        const id = String(res.ok.pod_sandbox_id);
        const st = await d.client.runtime.PodSandboxStatus!({ pod_sandbox_id: id }, { timeoutMs: CALL_TIMEOUT_MS });
        await removePod(id);
        assert.equal(st.status.state, 'SANDBOX_READY', 'an accepted pod is ready');
        assert.ok(!mustRefuse(c.leaf, c.hostile), 'a relative path was accepted');
      } else {
        seen.refused++;
        seen.byCode[grpc.status[res.err.code]] = (seen.byCode[grpc.status[res.err.code]] ?? 0) + 1;
        assertRefusal(res.err, label(c));
        if (mustRefuse(c.leaf, c.hostile)) assert.equal(res.err.code, grpc.status.INVALID_ARGUMENT, describe(res.err));
      }
      await assertUnchanged(before, label(c));
    } catch (err) {
      throw failWithSeed(err, c);
    }
  }
  process.stderr.write(`cri fuzz RunPodSandbox: ${POD_CASES} requests; refused ${seen.refused} ${JSON.stringify(seen.byCode)}, past every check ${seen.passedChecks}, VMs booted ${seen.booted.length} (${seen.booted.join('; ')})\n`);
  assert.ok(seen.refused > 0 && seen.passedChecks > 0);
});

test(`CreateContainer: ${CONTAINER_CASES} requests with one hostile field each`, { timeout: sched.long ? 3 * 3600_000 : 300_000 }, async () => {
  const seen = { refused: 0, created: 0, bug1: 0, bug2: 0, byCode: {} as Record<string, number> };
  for (let index = 0; index < CONTAINER_CASES; index++) {
    const c = pickCase(sched, CONTAINER_LEAVES, index);
    const before = await listed();
    try {
      const config = withValue(containerConfig(`fuzz-${index}`), c.leaf, c.hostile.value, criType('ContainerConfig'));
      const req = { pod_sandbox_id: anchorPod, config, sandbox_config: podConfig(ANCHOR_METADATA) };
      const res = await rawCall('CreateContainer', encode('CreateContainerRequest', req), 'CreateContainerResponse');
      if ('ok' in res) {
        seen.created++;
        const id = String(res.ok.container_id);
        const st = await d.client.runtime.ContainerStatus!({ container_id: id }, { timeoutMs: CALL_TIMEOUT_MS });
        assert.equal(st.status.state, 'CONTAINER_CREATED');
        assert.ok(!mustRefuse(c.leaf, c.hostile), 'a relative path was accepted');
        if (await removeContainer(id)) seen.bug1++;
      } else {
        seen.refused++;
        seen.byCode[grpc.status[res.err.code]] = (seen.byCode[grpc.status[res.err.code]] ?? 0) + 1;
        assertRefusal(res.err, label(c));
        if (mustRefuse(c.leaf, c.hostile)) assert.equal(res.err.code, grpc.status.INVALID_ARGUMENT, describe(res.err));
        seen.bug2 += await sweepBug2(before);
      }
      await assertUnchanged(before, label(c));
    } catch (err) {
      throw failWithSeed(err, c);
    }
  }
  process.stderr.write(
    `cri fuzz CreateContainer: ${CONTAINER_CASES} requests; refused ${seen.refused} ${JSON.stringify(seen.byCode)}, created ${seen.created}` +
      `; pod-room bugs worked around: mounts left mounted ${seen.bug1}, folder left by a refused create ${seen.bug2}\n`,
  );
  assert.ok(seen.refused > 0 && seen.created > 0);
  assert.deepEqual({ mountsLeftMounted: seen.bug1, foldersLeft: seen.bug2 }, { mountsLeftMounted: 0, foldersLeft: 0 }, 'the pod room left what it made');
});

test('bug 1 (fixed): a created container with a host mount is removed by RemoveContainer', async () => {
  const config = { ...containerConfig('with-mount'), mounts: [baseElement('Mount')] };
  const { container_id: id } = await d.client.runtime.CreateContainer!({ pod_sandbox_id: anchorPod, config, sandbox_config: podConfig(ANCHOR_METADATA) }, { timeoutMs: CALL_TIMEOUT_MS });
  assert.equal(await removeContainer(id), false, 'RemoveContainer failed with EBUSY on the mounts it left');
});

test('bug 2 (fixed): a CreateContainer refused after its root filesystem was mounted leaves no folder', async () => {
  const before = await listed();
  const sc = { seccomp: { profile_type: 'Localhost', localhost_ref: join(scratch, 'no-such-profile.json') } };
  const config = { ...containerConfig('bad-profile'), linux: { security_context: sc } };
  const err = await d.client.runtime.CreateContainer!({ pod_sandbox_id: anchorPod, config, sandbox_config: podConfig(ANCHOR_METADATA) }, { timeoutMs: CALL_TIMEOUT_MS }).then(
    () => assert.fail('a seccomp profile that does not exist was taken'),
    (e: grpc.ServiceError) => e,
  );
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT, describe(err));
  const left = await sweepBug2(before);
  assert.equal(left, 0, 'folders left');
});

test('with the anchor pod removed, nothing of the fuzz is left on the node', async () => {
  await removePod(anchorPod);
  assert.deepEqual(await listed(), { pods: [], containers: [], folders: [] });
  assert.deepEqual(await auditLeaks(d, baseline, ownIds), []);
});
