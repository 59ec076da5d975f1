// The agent over vsock, through the relay: needs a VM with a vhost-vsock
// device, so it runs only where /dev/vhost-vsock exists.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { AGENT_VSOCK_PORT, PROTOCOL_VERSION, waitForAgent } from '../../../src/agent-protocol/index.js';
import { GUEST_DIR } from '../../helpers/agent-process.js';

const VHOST_VSOCK = '/dev/vhost-vsock';
const GUEST_CID = 1000 + (process.pid % 50000);
const BOOT_TIMEOUT_MS = 60_000;
const skip = existsSync(VHOST_VSOCK) ? false : `${VHOST_VSOCK} does not exist on this host (no vsock for guests)`;

test('the agent answers over vsock through the relay, then powers the VM off', { skip }, async (t) => {
  const qemu = spawn('qemu-system-x86_64', [
    '-M', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', '256', '-bios', '/usr/share/qemu/qboot.rom',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'null',
    '-kernel', `${GUEST_DIR}vmlinux`, '-initrd', `${GUEST_DIR}initrd.img`,
    '-append', 'console=ttyS0 panic=-1 quiet',
    '-device', `vhost-vsock-pci,guest-cid=${GUEST_CID}`,
  ], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => qemu.once('exit', (c) => r(c)));
  t.after(() => { qemu.kill('SIGKILL'); });
  const c = await waitForAgent({ kind: 'vsock', cid: GUEST_CID, port: AGENT_VSOCK_PORT }, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 100 });
  assert.equal((await c.version()).protocolVersion, PROTOCOL_VERSION);
  await c.shutdown();
  assert.equal(await exited, 0);
});
