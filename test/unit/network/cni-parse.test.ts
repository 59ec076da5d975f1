import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetworkConfig } from '../../../src/network/cni-config.js';
import { parseCniResult, podIps } from '../../../src/network/cni-result.js';

test('a conflist and a single-plugin conf both become a plugin list', () => {
  const list = parseNetworkConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] }), 'a.conflist');
  assert.deepEqual(list.plugins.map((p) => p.type), ['bridge', 'portmap']);
  const one = parseNetworkConfig(JSON.stringify({ cniVersion: '0.4.0', name: 'net', type: 'ptp', ipam: { type: 'host-local' } }), 'b.conf');
  assert.deepEqual(one.plugins, [{ type: 'ptp', ipam: { type: 'host-local' } }]);
});

test('bad configs are refused naming the file and the fault', () => {
  const cases: [string, RegExp][] = [
    ['{', /x.conf: not JSON/],
    ['[]', /not a JSON object/],
    [JSON.stringify({ cniVersion: '9.9.9', name: 'n', type: 'bridge' }), /cniVersion "9.9.9"/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'bad name', type: 'bridge' }), /name must match/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), /neither "plugins"/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [] }), /list of 1..32/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '../../bin/sh' }] }), /plugin 0 has no valid "type"/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseNetworkConfig(text, 'x.conf'), re);
});

test('results of spec 0.4.0 and 1.0.0 parse to one shape', () => {
  const v1 = parseCniResult({
    cniVersion: '1.0.0',
    interfaces: [{ name: 'cni0', mac: '0a:58:0a:58:00:01' }, { name: 'eth0', mac: '0a:58:0a:58:00:05', sandbox: '/run/netns/x' }],
    ips: [{ address: '10.88.0.5/16', gateway: '10.88.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
  });
  assert.deepEqual(podIps(v1), ['10.88.0.5']);
  assert.deepEqual(v1.dns, { nameservers: ['10.96.0.10'], domain: undefined, search: ['svc.cluster.local'], options: [] });
  const v04 = parseCniResult({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.2.3/24', gateway: '10.1.2.1' }, { version: '6', address: 'fd00::3/64' }] });
  assert.deepEqual(podIps(v04), ['10.1.2.3', 'fd00::3']);
});

test('a result that lies is refused', () => {
  const bad: [unknown, RegExp][] = [
    [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.300/24' }] }, /ips\[0\].address is not a CIDR/],
    [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/33' }] }, /not a CIDR/],
    [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/24', interface: 4 }] }, /does not index an interface/],
    [{ cniVersion: '1.0.0', interfaces: [{ name: 'a/b' }] }, /not an interface name/],
    [{ cniVersion: '1.0.0', interfaces: [{ name: 'eth0', mac: 'zz' }] }, /not a MAC/],
    [{ cniVersion: '1.0.0', routes: [{ dst: 'nowhere' }] }, /routes\[0\].dst/],
    [{ cniVersion: '1.0.0', dns: { nameservers: ['not-an-ip'] } }, /nameservers must be IPs/],
    [{ cniVersion: '1.0.0', ips: new Array(65).fill({ address: '10.0.0.1/8' }) }, /at most 64/],
    [{ cniVersion: '2' }, /unsupported cniVersion/],
  ];
  for (const [raw, re] of bad) assert.throws(() => parseCniResult(raw), re);
});
