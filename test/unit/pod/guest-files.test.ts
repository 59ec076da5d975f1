// The node's resolver settings for a pod whose request has no DNS config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostDns, resolvConf } from '../../../src/pod/guest-files.js';

test('the node\'s resolv.conf without its loopback stub resolvers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-dns-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'resolv.conf');
  await writeFile(file, '# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # corp\nnameserver ::1\nnameserver fd00::53\nsearch a.example b.example\noptions edns0 trust-ad\n');
  const dns = await hostDns(file);
  assert.deepEqual(dns, { servers: ['10.0.0.2', 'fd00::53'], searches: ['a.example', 'b.example'], options: ['edns0', 'trust-ad'] });
  assert.equal(resolvConf(dns), 'nameserver 10.0.0.2\nnameserver fd00::53\nsearch a.example b.example\noptions edns0 trust-ad\n');
  // No file, or only a stub resolver: nothing to give.
  assert.equal(resolvConf(await hostDns(join(dir, 'missing'))), '');
  await writeFile(file, 'nameserver 127.0.0.53\n');
  assert.deepEqual((await hostDns(file)).servers, []);
});
