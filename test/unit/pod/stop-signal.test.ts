import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PodError } from '../../../src/pod/errors.js';
import { signalName, stopSignalFor } from '../../../src/pod/stop-signal.js';

test('signal names as images and clients write them, as the agent sends them', () => {
  for (const [given, want] of [['SIGTERM', 'SIGTERM'], ['TERM', 'SIGTERM'], ['usr1', 'SIGUSR1'], ['15', 'SIGTERM'], ['9', 'SIGKILL'], ['SIGIOT', 'SIGABRT'], ['SIGCLD', 'SIGCHLD'], ['SIGPOLL', 'SIGIO']] as const) {
    assert.equal(signalName(given), want, given);
  }
  for (const bad of ['SIGRTMIN+3', '0', '32', 'SIGNOPE', '']) assert.equal(signalName(bad), undefined, bad);
});

test("the stop signal: the request's, else the image's, else SIGTERM; a request the agent cannot send is refused", () => {
  assert.equal(stopSignalFor('SIGHUP', 'SIGUSR1'), 'SIGHUP');
  assert.equal(stopSignalFor('', 'SIGUSR1'), 'SIGUSR1');
  assert.equal(stopSignalFor(undefined, ''), 'SIGTERM');
  assert.equal(stopSignalFor('', 'SIGRTMIN+3'), 'SIGTERM');
  assert.throws(() => stopSignalFor('SIGRTMIN+3', ''), (e: unknown) => e instanceof PodError && e.code === 'INVALID_ARGUMENT');
});
