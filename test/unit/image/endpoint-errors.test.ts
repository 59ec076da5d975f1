// What a failed attempt at a registry endpoint is called, and whether the
// pull moves on to the next endpoint after it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { classifyAttempt, movesOn } from '../../../src/image/endpoint-errors.js';
import {
  ContentInvalidError,
  ImageNotFoundError,
  ImageStoreClosedError,
  ImageStoreExhaustedError,
  RegistryAuthError,
  RegistryError,
  RegistryUnreachableError,
  UnsafeLayerEntryError,
} from '../../../src/image/errors.js';
import { ImageStore } from '../../../src/image/index.js';

function sysError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

test('network, TLS and HTTP-parse failures are named; a full disk is the store\'s', () => {
  const cases: [Error, new (...a: never[]) => Error, boolean | undefined][] = [
    [sysError('ENOTFOUND', 'getaddrinfo ENOTFOUND registry.k8s.io'), RegistryUnreachableError, false],
    [sysError('EAI_AGAIN', 'getaddrinfo EAI_AGAIN registry.k8s.io'), RegistryUnreachableError, true],
    [sysError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:443'), RegistryUnreachableError, true],
    [sysError('ECONNRESET', 'socket hang up'), RegistryUnreachableError, true],
    [sysError('ETIMEDOUT', 'no answer from x within 100 ms'), RegistryUnreachableError, true],
    [sysError('CERT_HAS_EXPIRED', 'certificate has expired'), RegistryUnreachableError, false],
    [sysError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"), RegistryUnreachableError, false],
    [sysError('HPE_INVALID_CONSTANT', 'Parse Error: Expected HTTP/'), RegistryError, undefined],
    [sysError('ENOSPC', 'ENOSPC: no space left on device, write'), ImageStoreExhaustedError, undefined],
    [sysError('EDQUOT', 'EDQUOT: disk quota exceeded, write'), ImageStoreExhaustedError, undefined],
  ];
  for (const [err, cls, transient] of cases) {
    const got = classifyAttempt(err, 'registry registry.k8s.io', 'manifest 3.9');
    assert.ok(got instanceof cls, `${err.message}: got ${String(got)}`);
    if (got instanceof RegistryUnreachableError) {
      assert.equal(got.transient, transient, err.message);
      assert.equal(got.message, `cannot reach registry registry.k8s.io for manifest 3.9: ${err.message}`);
      assert.equal(got.cause, err);
    }
  }
  const eacces = sysError('EACCES', 'EACCES: permission denied');
  assert.equal(classifyAttempt(eacces, 'x', 'y'), eacces, 'anything else is left as it is');
});

test('the pull moves on after endpoint failures only, never after bad content', () => {
  const next = [new RegistryUnreachableError('x', new Error('down'), { transient: false }), new RegistryError('500'), new RegistryAuthError('401'), new ImageNotFoundError('x:1')];
  const stop = [new ContentInvalidError('digest'), new UnsafeLayerEntryError('../x', 'climbs out'), new ImageStoreExhaustedError(sysError('ENOSPC', 'full') as NodeJS.ErrnoException), new Error('a bug')];
  for (const e of next) assert.equal(movesOn(e), true, e.message);
  for (const e of stop) assert.equal(movesOn(e), false, e.message);
});

test('a closed store says so with its own error', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'frakti-closed-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const store = await ImageStore.open({ root });
  await store.close();
  await assert.rejects(store.list(), ImageStoreClosedError);
  await assert.rejects(store.pull('busybox'), ImageStoreClosedError);
});
