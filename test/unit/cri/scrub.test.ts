import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REDACTED, scrubForLog } from '../../../src/cri/scrub.js';

test('registry secrets are redacted at any depth, the request is untouched', () => {
  const req = {
    image: { image: 'registry.local/app:v1', annotations: {} },
    auth: { username: 'alice', password: 'hunter2', auth: 'YWxpY2U6aHVudGVyMg==', server_address: 'registry.local', identity_token: 'idt', registry_token: '' },
    nested: [{ auth: { password: 'deep' } }],
  };
  const copy = structuredClone(req);
  const out = JSON.stringify(scrubForLog(req));
  for (const secret of ['hunter2', 'YWxpY2U6aHVudGVyMg==', 'idt', 'deep']) assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
  assert.ok(out.includes('alice') && out.includes('registry.local/app:v1'));
  assert.ok(out.includes(REDACTED));
  // An empty secret stays empty: the log shows it was not given.
  assert.match(out, /"registry_token":""/);
  assert.deepEqual(req, copy);
});

test('logged requests are bounded', () => {
  const big = { list: Array.from({ length: 1000 }, (_, i) => i), text: 'x'.repeat(10_000), bytes: Buffer.alloc(5000) };
  const out = scrubForLog(big) as { list: unknown[]; text: string; bytes: string };
  assert.ok(out.list.length <= 33);
  assert.ok(out.text.length < 600);
  assert.equal(out.bytes, '<5000 bytes>');
  let deep: Record<string, unknown> = {};
  const top = deep;
  for (let i = 0; i < 50; i++) deep = (deep.next = {}) as Record<string, unknown>;
  assert.ok(JSON.stringify(scrubForLog(top)).length < 200);
});
