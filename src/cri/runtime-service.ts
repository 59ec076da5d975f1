// The RuntimeService handler table: runtime info here, pods and containers
// through the pod room when the daemon hands one in, the streaming URLs
// when it hands in a streaming server too. An RPC without a handler
// answers UNIMPLEMENTED naming itself.
import { makeRuntimeStatus, type RuntimeStatusDeps } from './runtime-status.js';
import { runtimeConfig } from './runtime-config.js';
import { runtimeVersion } from './runtime-version.js';
import { RuntimeConfigState } from './runtime-update-config.js';
import type { HandlerTable } from './service-table.js';
import type { PodDeps } from './pod-manager-holder.js';
import { makeRunPodSandbox } from './sandbox-run.js';
import { makeStopPodSandbox } from './sandbox-stop.js';
import { makeRemovePodSandbox } from './sandbox-remove.js';
import { makePodSandboxStatus } from './sandbox-status.js';
import { makeListPodSandbox } from './sandbox-list.js';
import { makeUpdatePodSandboxResources } from './sandbox-update-resources.js';
import { makeCreateContainer } from './container-create.js';
import { makeStartContainer } from './container-start.js';
import { makeStopContainer } from './container-stop.js';
import { makeRemoveContainer } from './container-remove.js';
import { makeContainerStatus } from './container-status.js';
import { makeListContainers } from './container-list.js';
import { makeExecSync } from './container-exec-sync.js';
import { makeUpdateContainerResources } from './container-update-resources.js';
import { makeReopenContainerLog } from './container-reopen-log.js';
import { makeAttach, makeExec, makePortForward, type StreamingDeps } from './container-streaming.js';
import { streamedList } from './list-streaming.js';
import { makeGetContainerEvents } from './container-events.js';
import { makeListMetricDescriptors, makeListPodSandboxMetrics } from './sandbox-metrics.js';
import { makeContainerStats, makeListContainerStats, makeListPodSandboxStats, makePodSandboxStats } from './container-stats.js';

export type RuntimeServiceDeps = RuntimeStatusDeps & { pods?: PodDeps; streaming?: StreamingDeps['streaming'] };

function podHandlers(d: PodDeps) {
  return {
    RunPodSandbox: makeRunPodSandbox(d),
    StopPodSandbox: makeStopPodSandbox(d),
    RemovePodSandbox: makeRemovePodSandbox(d),
    PodSandboxStatus: makePodSandboxStatus(d),
    ListPodSandbox: makeListPodSandbox(d),
    CreateContainer: makeCreateContainer(d),
    StartContainer: makeStartContainer(d),
    StopContainer: makeStopContainer(d),
    RemoveContainer: makeRemoveContainer(d),
    ContainerStatus: makeContainerStatus(d),
    ListContainers: makeListContainers(d),
    ExecSync: makeExecSync(d),
    UpdateContainerResources: makeUpdateContainerResources(d),
    ReopenContainerLog: makeReopenContainerLog(d),
    ContainerStats: makeContainerStats(d),
    ListContainerStats: makeListContainerStats(d),
    PodSandboxStats: makePodSandboxStats(d),
    ListPodSandboxStats: makeListPodSandboxStats(d),
    UpdatePodSandboxResources: makeUpdatePodSandboxResources(d),
    ListMetricDescriptors: makeListMetricDescriptors(),
    ListPodSandboxMetrics: makeListPodSandboxMetrics(d),
  };
}

/** KEP-5825's Stream* calls: the List* answers, an item a message. */
function podListStreams(d: PodDeps) {
  return {
    StreamPodSandboxes: streamedList(makeListPodSandbox(d), (r) => r.items, (x) => ({ pod_sandboxes: [x] })),
    StreamContainers: streamedList(makeListContainers(d), (r) => r.containers, (x) => ({ containers: [x] })),
    StreamContainerStats: streamedList(makeListContainerStats(d), (r) => r.stats, (x) => ({ container_stats: [x] })),
    StreamPodSandboxStats: streamedList(makeListPodSandboxStats(d), (r) => r.stats, (x) => ({ pod_sandbox_stats: [x] })),
  };
}

function streamingHandlers(d: StreamingDeps) {
  return { Exec: makeExec(d), Attach: makeAttach(d), PortForward: makePortForward(d) };
}

export function runtimeHandlers(deps: RuntimeServiceDeps = {}): HandlerTable {
  const config = new RuntimeConfigState();
  const verboseInfo = () => ({ ...deps.verboseInfo?.(), pod_cidr: config.podCidr });
  return {
    unary: {
      Version: runtimeVersion,
      Status: makeRuntimeStatus({ ...deps, verboseInfo }),
      RuntimeConfig: runtimeConfig,
      UpdateRuntimeConfig: config.handler,
      ...(deps.pods ? podHandlers(deps.pods) : {}),
      ...(deps.pods && deps.streaming ? streamingHandlers({ ...deps.pods, streaming: deps.streaming }) : {}),
    },
    stream: deps.pods ? { ...podListStreams(deps.pods), GetContainerEvents: makeGetContainerEvents(deps.pods) } : {},
  };
}
