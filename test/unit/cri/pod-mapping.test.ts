// What RunPodSandbox and CreateContainer take from a client, as containerd
// takes it: the inputs kubelet, crictl and test suites send that frakti
// used to refuse, and the refusals that stay, each INVALID_ARGUMENT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostnameFromPodName, MAX_LABELS, toContainerSpec, toPodSpec } from '../../../src/cri/pod-mapping.js';
import { toGrpcStatus } from '../../../src/cri/errors.js';
import { status } from '@grpc/grpc-js';

const sizing = { defaultCpus: 1, defaultMemoryMiB: 256, guestOverheadMiB: 64, maxCpus: 4 };

function podConfig(over: Record<string, unknown> = {}): never {
  return { metadata: { name: 'p', namespace: 'default', uid: 'u', attempt: 0 }, hostname: '', log_directory: '/var/log/pods/x', dns_config: null, port_mappings: [], labels: {}, annotations: {}, linux: null, ...over } as never;
}

function containerConfig(over: Record<string, unknown> = {}): never {
  return { metadata: { name: 'c', attempt: 0 }, image: { image: 'busybox' }, command: [], args: [], working_dir: '', envs: [], mounts: [], devices: [], labels: {}, annotations: {}, log_path: 'c_0.log', stdin: false, stdin_once: false, tty: false, linux: null, ...over } as never;
}

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return status[toGrpcStatus(err).code];
  }
  return 'OK';
};

test('a pod without a hostname gets one from its name: at most 63 bytes, valid, whatever the name', () => {
  const long = 'create-podsandbox-for-container-' + '0123456789abcdef'.repeat(3);
  const spec = toPodSpec(podConfig({ metadata: { name: long, namespace: 'ns', uid: 'u', attempt: 0 } }), '', sizing);
  assert.ok(Buffer.byteLength(spec.hostname) <= 63);
  assert.ok(long.startsWith(spec.hostname));
  assert.match(spec.hostname, /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/);
  assert.equal(hostnameFromPodName('web_0'), 'web-0');
  assert.equal(hostnameFromPodName('a'.repeat(62) + '-b'), 'a'.repeat(62)); // no trailing '-' after the cut
  assert.equal(hostnameFromPodName('___'), 'pod');
  // An explicit name is kept; one Linux cannot take is the client's mistake.
  assert.equal(toPodSpec(podConfig({ hostname: 'db-1' }), '', sizing).hostname, 'db-1');
  assert.equal(codeOf(() => toPodSpec(podConfig({ hostname: 'h'.repeat(65) }), '', sizing)), 'INVALID_ARGUMENT');
});

test('metadata needs a name only; no namespace options means every namespace is the pod\'s', () => {
  const spec = toPodSpec(podConfig({ metadata: { name: 'p', namespace: '', uid: '', attempt: 0 } }), '', sizing);
  assert.equal(spec.pidMode, 'pod');
  assert.equal(spec.dnsFromHost, true, 'no DNS config: the node\'s, as containerd gives');
  assert.equal(toPodSpec(podConfig({ dns_config: { servers: [], searches: [], options: [] } }), '', sizing).dnsFromHost, undefined);
  assert.equal(codeOf(() => toPodSpec(podConfig({ metadata: { name: '', namespace: 'n', uid: 'u', attempt: 0 } }), '', sizing)), 'INVALID_ARGUMENT');
  assert.equal(codeOf(() => toPodSpec(podConfig({ metadata: null }), '', sizing)), 'INVALID_ARGUMENT');
});

test('labels and annotations by the hundreds are taken; past the bound, refused', () => {
  const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, 'v']));
  assert.equal(Object.keys(toPodSpec(podConfig({ labels: many }), '', sizing).labels).length, 1000);
  const tooMany = Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`k${i}`, 'v']));
  assert.equal(codeOf(() => toPodSpec(podConfig({ annotations: tooMany }), '', sizing)), 'INVALID_ARGUMENT');
});

test('a container without a log directory or log path runs with no log file', () => {
  const withLog = toPodSpec(podConfig(), '', sizing);
  assert.equal(toContainerSpec(containerConfig(), withLog).logPath, '/var/log/pods/x/c_0.log');
  assert.equal(toContainerSpec(containerConfig({ log_path: '' }), withLog).logPath, '');
  const noDir = toPodSpec(podConfig({ log_directory: '' }), '', sizing);
  assert.equal(toContainerSpec(containerConfig(), noDir).logPath, '');
  assert.equal(toContainerSpec(containerConfig({ log_path: '/abs/c.log' }), noDir).logPath, '');
  assert.equal(codeOf(() => toContainerSpec(containerConfig({ log_path: '../../etc/x' }), withLog)), 'INVALID_ARGUMENT');
  assert.equal(codeOf(() => toContainerSpec(containerConfig(), toPodSpec(podConfig({ log_directory: 'rel/dir' }), '', sizing))), 'INVALID_ARGUMENT');
});

test('host CPU numbers from kubelet\'s CPU manager are not passed into the guest; a relative working_dir is refused', () => {
  const pod = toPodSpec(podConfig(), '', sizing);
  const spec = toContainerSpec(containerConfig({ linux: { resources: { cpu_shares: '2', cpuset_cpus: '12-15', cpuset_mems: '1' } } }), pod);
  assert.deepEqual(spec.resources, { cpuShares: 2 });
  assert.equal(codeOf(() => toContainerSpec(containerConfig({ working_dir: 'app' }), pod)), 'INVALID_ARGUMENT');
  const group = (sc: Record<string, unknown>) => containerConfig({ linux: { security_context: sc } });
  assert.equal(codeOf(() => toContainerSpec(group({ run_as_group: { value: '1000' } }), pod)), 'INVALID_ARGUMENT');
  assert.equal(toContainerSpec(group({ run_as_group: { value: '1000' }, run_as_user: { value: '1000' } }), pod).user.gid, 1000);
  // seccomp names as containerd takes them; an unknown one is refused (critest: a profile without localhost/).
  for (const ok of ['', 'unconfined', 'runtime/default', 'docker/default', 'localhost//var/lib/kubelet/seccomp/a.json']) toContainerSpec(group({ seccomp_profile_path: ok }), pod);
  assert.equal(codeOf(() => toContainerSpec(group({ seccomp_profile_path: '/abs/profile.json' }), pod)), 'INVALID_ARGUMENT');
  assert.equal(codeOf(() => toContainerSpec(group({ seccomp: { profile_type: 'Localhost', localhost_ref: '' } }), pod)), 'INVALID_ARGUMENT');
  toContainerSpec(group({ seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' }, seccomp_profile_path: 'ignored/when/seccomp/is/set' }), pod);
  assert.equal(toContainerSpec(containerConfig({ working_dir: '/app/not/in/image' }), pod).workingDir, '/app/not/in/image');
});

test('seccomp, AppArmor, masked paths and the stop signal as containerd reads them', () => {
  const pod = toPodSpec(podConfig(), '', sizing);
  const sc = (s: Record<string, unknown>) => containerConfig({ linux: { resources: null, security_context: { privileged: false, capabilities: null, namespace_options: null, run_as_user: null, run_as_username: '', run_as_group: null, readonly_rootfs: false, supplemental_groups: [], no_new_privs: false, ...s } } });
  assert.deepEqual(toContainerSpec(sc({}), pod).seccomp, { type: 'unconfined' });
  assert.deepEqual(toContainerSpec(sc({ seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } }), pod).seccomp, { type: 'runtime-default' });
  assert.deepEqual(toContainerSpec(sc({ seccomp_profile_path: 'docker/default' }), pod).seccomp, { type: 'runtime-default' });
  assert.deepEqual(toContainerSpec(sc({ seccomp_profile_path: 'localhost//etc/p.json' }), pod).seccomp, { type: 'localhost', path: '/etc/p.json' });
  assert.equal(codeOf(() => toContainerSpec(sc({ seccomp: { profile_type: 'Localhost', localhost_ref: 'rel.json' } }), pod)), 'INVALID_ARGUMENT');
  // AppArmor: the default and unconfined are taken; a named profile cannot be applied in a VM.
  assert.equal(codeOf(() => toContainerSpec(sc({ apparmor: { profile_type: 'RuntimeDefault', localhost_ref: '' } }), pod)), 'OK');
  assert.equal(codeOf(() => toContainerSpec(sc({ apparmor_profile: 'runtime/default' }), pod)), 'OK');
  assert.equal(codeOf(() => toContainerSpec(sc({ apparmor: { profile_type: 'Localhost', localhost_ref: 'k8s-nginx' } }), pod)), 'INVALID_ARGUMENT');
  assert.equal(codeOf(() => toContainerSpec(sc({ apparmor_profile: 'localhost/k8s-nginx' }), pod)), 'INVALID_ARGUMENT');
  // No lists: containerd's defaults; lists given: as they are.
  assert.ok(toContainerSpec(sc({}), pod).maskedPaths?.includes('/proc/kcore'));
  assert.deepEqual(toContainerSpec(sc({ masked_paths: ['/x'], readonly_paths: ['/y'] }), pod).readonlyPaths, ['/y']);
  assert.equal(toContainerSpec(containerConfig({ stop_signal: 'SIGNAL_SIGUSR1' }), pod).stopSignal, 'SIGUSR1');
  assert.equal(toContainerSpec(containerConfig({ stop_signal: 'SIGNAL_RUNTIME_DEFAULT' }), pod).stopSignal, '');
  assert.equal(codeOf(() => toPodSpec(podConfig({ linux: { sysctls: { 'kernel.panic': '1' } } }), '', sizing)), 'INVALID_ARGUMENT');
  assert.equal(codeOf(() => toPodSpec(podConfig({ linux: { sysctls: { 'net.ipv4.ip_forward': '1', 'kernel.shm_rmid_forced': '1', 'fs.mqueue.msg_max': '20' } } }), '', sizing)), 'OK');
});

test('mount propagation: HOST_TO_CONTAINER kept, PRIVATE (and unset) private, BIDIRECTIONAL refused; device permissions of r, w, m only', () => {
  const mounts = (propagation?: string) => [{ container_path: '/data', host_path: '/srv/data', readonly: false, ...(propagation ? { propagation } : {}) }];
  assert.equal(toContainerSpec(containerConfig({ mounts: mounts('PROPAGATION_HOST_TO_CONTAINER') }), podConfig()).mounts[0]!.propagation, 'host-to-container');
  assert.equal(toContainerSpec(containerConfig({ mounts: mounts('PROPAGATION_PRIVATE') }), podConfig()).mounts[0]!.propagation, 'private');
  assert.equal(toContainerSpec(containerConfig({ mounts: mounts() }), podConfig()).mounts[0]!.propagation, 'private');
  assert.throws(() => toContainerSpec(containerConfig({ mounts: mounts('PROPAGATION_BIDIRECTIONAL') }), podConfig()), /bidirectional propagation cannot cross a VM/);
  const device = (permissions: string) => ({ devices: [{ container_path: '/dev/xvda', host_path: '/dev/loop0', permissions }] });
  assert.equal(toContainerSpec(containerConfig(device('rw')), podConfig()).devices![0]!.permissions, 'rw');
  assert.equal(toContainerSpec(containerConfig(device('')), podConfig()).devices![0]!.permissions, 'rwm');
  assert.throws(() => toContainerSpec(containerConfig(device('rwx')), podConfig()), /not of r, w, m/);
});
