// Which runtime a new pod goes to. A pod that needs the host (its network,
// PID or IPC namespace, privileges) cannot be given it by a VM: it runs as
// OS containers. So does a pod that asks for it by annotation, or by a
// RuntimeClass handler the operator gave to the OS runtime.

/** The original frakti's annotation: "true" sends the pod to the OS-container runtime. */
export const OS_CONTAINER_ANNOTATION = 'runtime.frakti.alpha.kubernetes.io/OSContainer';

/* eslint-disable @typescript-eslint/no-explicit-any */
/** Why the pod of this RunPodSandbox request runs as OS containers, or undefined for a VM. */
export function osRuntimeReason(req: any, osHandlers: readonly string[]): string | undefined {
  const config = req?.config ?? {};
  if (config.annotations?.[OS_CONTAINER_ANNOTATION] === 'true') return `annotation ${OS_CONTAINER_ANNOTATION}=true`;
  const sc = config.linux?.security_context ?? {};
  if (sc.privileged === true) return 'a privileged pod';
  const ns = sc.namespace_options ?? {};
  for (const kind of ['network', 'pid', 'ipc'] as const) {
    if (ns[kind] === 'NODE' || ns[kind] === 2) return `the host's ${kind === 'network' ? 'network' : kind.toUpperCase()} namespace`;
  }
  const handler = typeof req?.runtime_handler === 'string' ? req.runtime_handler : '';
  if (handler && osHandlers.includes(handler)) return `runtime handler ${handler}`;
  return undefined;
}
