// The proto must be the real runtime.v1 API: every RPC present with its
// streaming kind, and the field numbers clients depend on most.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import { criProtoPath, loadCriServices } from '../../../src/cri/proto.js';

const RUNTIME_UNARY = [
  'Version', 'RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'PodSandboxStatus', 'ListPodSandbox',
  'CreateContainer', 'StartContainer', 'StopContainer', 'RemoveContainer', 'ListContainers', 'ContainerStatus',
  'UpdateContainerResources', 'ReopenContainerLog', 'ExecSync', 'Exec', 'Attach', 'PortForward', 'ContainerStats',
  'ListContainerStats', 'PodSandboxStats', 'ListPodSandboxStats', 'UpdateRuntimeConfig', 'Status',
  'CheckpointContainer', 'CheckpointPod', 'RestorePod', 'ListMetricDescriptors', 'ListPodSandboxMetrics',
  'RuntimeConfig', 'UpdatePodSandboxResources',
];
const RUNTIME_STREAM = ['StreamPodSandboxes', 'StreamContainers', 'StreamContainerStats', 'StreamPodSandboxStats', 'GetContainerEvents', 'StreamPodSandboxMetrics'];
const IMAGE_UNARY = ['ListImages', 'ImageStatus', 'PullImage', 'RemoveImage', 'ImageFsInfo'];
const IMAGE_STREAM = ['StreamImages'];

test('both services carry every runtime.v1 RPC with the right streaming kind', () => {
  const { RuntimeService, ImageService } = loadCriServices();
  const kinds = (def: Record<string, { responseStream: boolean; requestStream: boolean; path: string }>) =>
    Object.fromEntries(Object.entries(def).map(([k, m]) => [k, m.requestStream ? 'client-stream' : m.responseStream ? 'stream' : 'unary']));
  const want = (unary: string[], stream: string[]) => Object.fromEntries([...unary.map((n) => [n, 'unary']), ...stream.map((n) => [n, 'stream'])]);
  assert.deepEqual(kinds(RuntimeService.service as never), want(RUNTIME_UNARY, RUNTIME_STREAM));
  assert.deepEqual(kinds(ImageService.service as never), want(IMAGE_UNARY, IMAGE_STREAM));
  // The HTTP/2 path is what a Go client sends: package and service names must be exact.
  assert.equal(RuntimeService.service.Version!.path, '/runtime.v1.RuntimeService/Version');
  assert.equal(ImageService.service.PullImage!.path, '/runtime.v1.ImageService/PullImage');
});

test('field numbers and types clients depend on', () => {
  const root = new protobuf.Root().loadSync(criProtoPath(), { keepCase: true }).resolveAll();
  const field = (msg: string, name: string) => {
    const f = root.lookupType(`runtime.v1.${msg}`).fields[name];
    assert.ok(f, `${msg}.${name} exists`);
    return `${f.id} ${f.repeated ? 'repeated ' : ''}${f.map ? `map<${(f as unknown as protobuf.MapField).keyType},${f.type}>` : f.type}`;
  };
  const cases: [string, string, string][] = [
    ['VersionResponse', 'runtime_api_version', '4 string'],
    ['Image', 'size', '4 uint64'],
    ['Image', 'uid', '5 Int64Value'],
    ['Image', 'pinned', '8 bool'],
    ['ImageSpec', 'user_specified_image', '18 string'],
    ['ImageSpec', 'image_ref', '20 string'],
    ['AuthConfig', 'registry_token', '6 string'],
    ['PullImageRequest', 'sandbox_config', '3 PodSandboxConfig'],
    ['FilesystemUsage', 'inodes_used', '4 UInt64Value'],
    ['ImageFsInfoResponse', 'container_filesystems', '2 repeated FilesystemUsage'],
    ['LinuxSandboxSecurityContext', 'run_as_group', '8 Int64Value'],
    ['LinuxSandboxSecurityContext', 'supplemental_groups_policy', '11 SupplementalGroupsPolicy'],
    ['LinuxContainerSecurityContext', 'run_as_group', '12 Int64Value'],
    ['ContainerConfig', 'CDI_devices', '17 repeated CDIDevice'],
    ['ContainerConfig', 'stop_signal', '18 Signal'],
    ['Mount', 'uidMappings', '6 repeated IDMapping'],
    ['Mount', 'image_sub_path', '10 string'],
    ['ContainerStatus', 'user', '18 ContainerUser'],
    ['PodSandboxStatusResponse', 'containers_statuses', '3 repeated ContainerStatus'],
    ['Namespace', 'options', '2 NamespaceOption'],
    ['PsiStats', 'Some', '2 PsiData'],
    ['ExecSyncRequest', 'timeout', '3 int64'],
    ['StatusResponse', 'features', '4 RuntimeFeatures'],
    ['LinuxPodSandboxConfig', 'sysctls', '3 map<string,string>'],
  ];
  for (const [msg, name, want] of cases) assert.equal(field(msg, name), want, `${msg}.${name}`);
  const e = (name: string) => root.lookupEnum(`runtime.v1.${name}`).values;
  assert.equal(e('CgroupDriver').CGROUPFS, 1);
  assert.equal(e('ContainerState').CONTAINER_UNKNOWN, 3);
  assert.equal(e('Signal').SIGNAL_SIGRTMAX, 65);
  assert.equal(Object.keys(e('Signal')).length, 66);
});
