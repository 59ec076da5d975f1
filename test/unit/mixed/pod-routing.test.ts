import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OS_CONTAINER_ANNOTATION, osRuntimeReason } from '../../../src/mixed/pod-routing.js';

const pod = (config: Record<string, unknown>, runtime_handler = '') => ({ config, runtime_handler });

test('pods that need the host go to the OS runtime, each with the reason named; every other pod to a VM', () => {
  assert.equal(osRuntimeReason(pod({}), ['runc']), undefined);
  assert.equal(osRuntimeReason(pod({ linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } } }), ['runc']), undefined);
  assert.equal(osRuntimeReason(pod({ annotations: { [OS_CONTAINER_ANNOTATION]: 'true' } }), []), `annotation ${OS_CONTAINER_ANNOTATION}=true`);
  assert.equal(osRuntimeReason(pod({ annotations: { [OS_CONTAINER_ANNOTATION]: 'false' } }), []), undefined);
  assert.equal(osRuntimeReason(pod({ linux: { security_context: { privileged: true } } }), []), 'a privileged pod');
  assert.equal(osRuntimeReason(pod({ linux: { security_context: { namespace_options: { network: 'NODE' } } } }), []), "the host's network namespace");
  assert.equal(osRuntimeReason(pod({ linux: { security_context: { namespace_options: { pid: 'NODE' } } } }), []), "the host's PID namespace");
  assert.equal(osRuntimeReason(pod({ linux: { security_context: { namespace_options: { ipc: 2 } } } }), []), "the host's IPC namespace");
  assert.equal(osRuntimeReason(pod({}, 'runc'), ['runc']), 'runtime handler runc');
  assert.equal(osRuntimeReason(pod({}, 'kata'), ['runc']), undefined);
  assert.equal(osRuntimeReason(undefined, ['runc']), undefined);
});
