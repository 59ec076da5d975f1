import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeArgs, mergeEnv, resolveUser, type ImageDefaults } from '../../../src/pod/process-spec.js';
import { resolvConf, hostsFile, checkHostname } from '../../../src/pod/guest-files.js';

const img: ImageDefaults = { entrypoint: ['/entry'], cmd: ['serve', '--port=80'], env: ['PATH=/bin', 'A=1'], workingDir: '/app', user: '' };

test('command and args follow the Kubernetes rules', () => {
  assert.deepEqual(mergeArgs(img, { command: [], args: [] }), ['/entry', 'serve', '--port=80']);
  assert.deepEqual(mergeArgs(img, { command: [], args: ['x'] }), ['/entry', 'x']);
  assert.deepEqual(mergeArgs(img, { command: ['/bin/sh'], args: [] }), ['/bin/sh']);
  assert.deepEqual(mergeArgs(img, { command: ['/bin/sh'], args: ['-c', 'true'] }), ['/bin/sh', '-c', 'true']);
  assert.throws(() => mergeArgs({ ...img, entrypoint: [], cmd: [] }, { command: [], args: [] }), /no command/);
});

test('container env overrides the image; PATH is defaulted', () => {
  assert.deepEqual(mergeEnv(img.env, [['A', '2'], ['B', 'x=y']]), ['PATH=/bin', 'A=2', 'B=x=y']);
  assert.ok(mergeEnv([], []).some((e) => e.startsWith('PATH=/usr/local/sbin:')));
  assert.throws(() => mergeEnv([], [['A=B', '1']]), /bad environment variable name/);
});

test('users and groups resolve against the image files', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'frakti-user-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\ngarbage line\nbad:x:notanumber:1::/:/\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nwww:x:33:\nlog:x:4:www,other\nstaff:x:50:\n');
  const none = { additionalGids: [] as number[] };
  assert.deepEqual(await resolveUser(root, img, none), { uid: 0, gid: 0, additionalGids: [] });
  assert.deepEqual(await resolveUser(root, { ...img, user: 'www' }, none), { uid: 33, gid: 33, additionalGids: [4] });
  assert.deepEqual(await resolveUser(root, { ...img, user: 'www:staff' }, none), { uid: 33, gid: 50, additionalGids: [4] });
  assert.deepEqual(await resolveUser(root, { ...img, user: '1234:99' }, none), { uid: 1234, gid: 99, additionalGids: [] });
  assert.deepEqual(await resolveUser(root, img, { uid: 33, additionalGids: [7] }), { uid: 33, gid: 33, additionalGids: [4, 7] });
  assert.deepEqual(await resolveUser(root, img, { username: 'www', gid: 5, additionalGids: [] }), { uid: 33, gid: 5, additionalGids: [4] });
  await assert.rejects(resolveUser(root, { ...img, user: 'nobody' }, none), /user "nobody" not found/);
  await assert.rejects(resolveUser(root, { ...img, user: 'www:nogroup' }, none), /group "nogroup" not found/);
  // An image without /etc/passwd still runs numeric users.
  assert.deepEqual(await resolveUser(join(root, 'none'), img, { uid: 7, additionalGids: [] }), { uid: 7, gid: 0, additionalGids: [] });
});

test('resolv.conf and hosts for the pod', () => {
  assert.equal(resolvConf({ servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] }),
    'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n');
  assert.equal(resolvConf({ servers: [], searches: [], options: [] }), '');
  assert.throws(() => resolvConf({ servers: ['dns.example'], searches: [], options: [] }), /not an IP/);
  assert.match(hostsFile('web-0', ['10.88.0.5']), /^10\.88\.0\.5\tweb-0$/m);
  assert.throws(() => checkHostname('bad_host!'), /not a valid host name/);
  assert.equal(checkHostname('web-0.example'), 'web-0.example');
});
