import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { CriError, toGrpcStatus } from '../../../src/cri/errors.js';
import { FraktiError } from '../../../src/lib/errors.js';
import { AmbiguousReferenceError, ImageInUseError, ImageNotFoundError, InvalidReferenceError, PullAbortedError, RegistryAuthError, RegistryError } from '../../../src/image/index.js';
import { PodError } from '../../../src/pod/errors.js';
import { AgentCallError, AgentError } from '../../../src/agent-protocol/errors.js';

test('stable codes map to their gRPC status and keep the message', () => {
  const cases: [FraktiError, status][] = [
    [new CriError('NOT_FOUND', 'no pod x'), status.NOT_FOUND],
    [new CriError('INVALID_ARGUMENT', 'bad'), status.INVALID_ARGUMENT],
    [new CriError('ALREADY_EXISTS', 'dup'), status.ALREADY_EXISTS],
    [new CriError('FAILED_PRECONDITION', 'running'), status.FAILED_PRECONDITION],
    [new CriError('DEADLINE_EXCEEDED', 'slow'), status.DEADLINE_EXCEEDED],
    [new CriError('UNIMPLEMENTED', 'later'), status.UNIMPLEMENTED],
    [new PodError('ALREADY_EXISTS', 'pod name reserved'), status.ALREADY_EXISTS],
    [new ImageNotFoundError('busybox'), status.NOT_FOUND],
    [new InvalidReferenceError('UPPER', 'uppercase'), status.INVALID_ARGUMENT],
    [new AmbiguousReferenceError('sha256:ab', 2), status.INVALID_ARGUMENT],
    [new ImageInUseError('sha256:ab', ['c1']), status.FAILED_PRECONDITION],
    [new PullAbortedError('busybox'), status.CANCELLED],
    [new RegistryAuthError('denied'), status.PERMISSION_DENIED],
    [new RegistryError('manifest unknown', { status: 404 }), status.NOT_FOUND],
    [new RegistryError('bad gateway', { status: 502 }), status.UNAVAILABLE],
    [new RegistryError('teapot', { status: 418 }), status.UNKNOWN],
    // Codes of other rooms fall back on their wording.
    [new FraktiError('SANDBOX_NOT_FOUND', 'no sandbox'), status.NOT_FOUND],
    [new FraktiError('AGENT_TIMEOUT', 'agent did not answer'), status.DEADLINE_EXCEEDED],
    [new FraktiError('QMP_PROTOCOL', 'garbage'), status.INTERNAL],
  ];
  for (const [err, want] of cases) {
    const got = toGrpcStatus(err);
    assert.equal(status[got.code], status[want], err.code);
    assert.equal(got.details, err.message);
  }
});

test('a lower room\'s error wrapped for context keeps its status; agent errors map by what they say', () => {
  const wrapped = (cause: unknown) => new PodError('INTERNAL', 'create container c1: ' + String((cause as Error).message), {}, cause);
  const cases: [Error, status][] = [
    [wrapped(new ImageNotFoundError('busybox')), status.NOT_FOUND],
    [wrapped(new AgentCallError('createContainer', 22, 'unknown capability CAP_ALL')), status.INVALID_ARGUMENT],
    [wrapped(new AgentCallError('startContainer', 2, 'exec `nope`')), status.INVALID_ARGUMENT],
    [wrapped(new AgentCallError('createContainer', 5, 'EIO')), status.INTERNAL],
    [wrapped(new AgentError('AGENT_OPTIONS', 'hostname too long')), status.INVALID_ARGUMENT],
    [wrapped(new AgentError('AGENT_CLOSED', 'closed by the peer')), status.UNAVAILABLE],
    [wrapped(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })), status.RESOURCE_EXHAUSTED],
    [wrapped(new TypeError('x is undefined')), status.INTERNAL],
    [new PodError('INTERNAL', 'outer', {}, wrapped(new ImageNotFoundError('x'))), status.NOT_FOUND],
  ];
  for (const [err, want] of cases) {
    const got = toGrpcStatus(err);
    assert.equal(status[got.code], status[want], err.message);
    assert.equal(got.details, err.message);
  }
});

test('a plain Error is INTERNAL and says so', () => {
  const got = toGrpcStatus(new TypeError('x is undefined'));
  assert.equal(got.code, status.INTERNAL);
  assert.equal(got.details, 'internal error: x is undefined');
  assert.equal(toGrpcStatus('thrown string').code, status.INTERNAL);
});
