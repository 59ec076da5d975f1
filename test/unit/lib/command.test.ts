// Short commands through frakti-spawner (the real helper binary): what execa
// gave the callers (exit code, output, input, env, cwd, timeout, output
// limit), many at once, a helper killed mid-command, bad frames, and the
// commands of a daemon that has gone, let finish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../../src/lib/command.js';
import { shippedFile } from '../../../src/lib/shipped-files.js';
import { processesMentioning } from '../../helpers/vmm-leaks.js';
import { waitFor } from '../../helpers/cri-client.js';

/** Running (a killed process may linger as a zombie until its new parent reaps it). */
const alive = async (pid: number) => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
};

test('exit code, both outputs without their final newline, input, env and cwd', async () => {
  const r = await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3']);
  assert.deepEqual(r, { exitCode: 3, signal: undefined, stdout: 'out', stderr: 'err', timedOut: false, failed: true });
  const ok = await runCommand('sh', ['-c', 'cat; echo "[$FRAKTI_T]"; pwd'], { input: 'in\n', env: { FRAKTI_T: 'x y' }, cwd: '/tmp' });
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.failed, false);
  assert.equal(ok.stdout, 'in\n[x y]\n/tmp');
  // Input larger than a pipe holds, and output larger than one read.
  const big = 'z'.repeat(512 * 1024);
  assert.equal((await runCommand('cat', [], { input: big })).stdout, big);
  // An answer of many reads (8 MiB on both streams) comes back whole.
  const loud = await runCommand('sh', ['-c', 'head -c 8388608 /dev/zero | tr "\\0" a; head -c 8388608 /dev/zero | tr "\\0" b >&2']);
  assert.equal(loud.exitCode, 0);
  assert.equal(loud.stdout.length, 8 * 1024 * 1024);
  assert.equal(loud.stderr.length, 8 * 1024 * 1024);
  assert.ok(/^a+$/.test(loud.stdout) && /^b+$/.test(loud.stderr));
});

test('a command that cannot start, one that runs too long, one that prints too much', async () => {
  const missing = await runCommand('/no/such/command', []);
  assert.equal(missing.exitCode, undefined);
  assert.equal(missing.failed, true);
  assert.match(missing.stderr, /no such file/);
  const badCwd = await runCommand('true', [], { cwd: '/no/such/dir' });
  assert.equal(badCwd.exitCode, undefined);
  assert.match(badCwd.stderr, /ENOENT/);
  // A NUL would cut an argument short: refused before anything runs.
  const nul = await runCommand('touch', ['/tmp/frakti-nul\0x']);
  assert.equal(nul.failed, true);
  assert.match(nul.stderr, /NUL byte/);
  assert.equal(existsSync('/tmp/frakti-nul'), false);

  const t0 = Date.now();
  const slow = await runCommand('sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300 });
  assert.ok(Date.now() - t0 < 5_000, 'the timeout ends it');
  assert.equal(slow.timedOut, true);
  assert.equal(slow.failed, true);
  assert.equal(slow.exitCode, undefined);
  // Its whole process group goes: the background sleep too.
  const bg = Number(slow.stdout.trim());
  if (bg > 0) {
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await alive(bg), false, 'the command\'s own child was killed with it');
  }

  const loud = await runCommand('head', ['-c', '100000', '/dev/zero'], { maxBuffer: 1000 });
  assert.equal(loud.failed, true);
  assert.equal(loud.timedOut, false);
  assert.equal(loud.exitCode, undefined);
});

test('commands run at once, each gets its own answer', async () => {
  const t0 = Date.now();
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => runCommand('sh', ['-c', `sleep 0.3; echo ${i}`])));
  assert.deepEqual(all.map((r) => r.stdout), Array.from({ length: 20 }, (_, i) => String(i)));
  assert.ok(Date.now() - t0 < 3_000, `20 sleeps of 0.3 s ran in parallel (${Date.now() - t0} ms)`);
});

test('a helper killed under a command fails that command, and the next one starts a new helper', async () => {
  await runCommand('true', []);
  const helpers = (await processesMentioning('frakti-spawner')).filter((p) => !p.cmd.includes('node'));
  const mine = [];
  for (const h of helpers) {
    const ppid = Number((await readFile(`/proc/${h.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[1]);
    if (ppid === process.pid) mine.push(h.pid);
  }
  assert.equal(mine.length, 1, 'one helper, ours');
  const running = runCommand('sleep', ['30']);
  await new Promise((r) => setTimeout(r, 200));
  process.kill(mine[0]!, 'SIGKILL');
  const r = await running;
  assert.equal(r.failed, true);
  assert.match(r.stderr, /spawner/);
  const again = await runCommand('echo', ['back']);
  assert.equal(again.stdout, 'back');
});

/** A request frame as lib/command.ts writes it: no env, no input, cwd kept. */
function request(id: number, argv: string[], timeoutMs = 0): Buffer {
  const strings = Buffer.concat(['', ...argv].map((x) => Buffer.from(`${x}\0`)));
  const head = Buffer.alloc(28);
  head.writeUInt32LE(24 + strings.length, 0);
  head.writeUInt32LE(id, 4);
  head.writeUInt32LE(timeoutMs, 8);
  head.writeUInt32LE(argv.length, 16);
  return Buffer.concat([head, strings]);
}

/** Waits (bounded) until no running process has `needle` in its command line. */
async function gone(needle: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const left = [];
    for (const p of await processesMentioning(needle)) if (await alive(p.pid)) left.push(p.pid);
    if (left.length === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function running(needle: string): Promise<void> {
  for (let i = 0; i < 50 && (await processesMentioning(needle)).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await processesMentioning(needle)).length, 1, `${needle} runs`);
}

test('the helper answers a bad request with a refusal and stops at a frame too large to be ours, killing what it ran', async (t) => {
  const helper = spawn(shippedFile('frakti-spawner'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(async () => {
    helper.kill('SIGKILL');
    for (const p of await processesMentioning('sleep 3141')) process.kill(p.pid, 'SIGKILL');
  });
  const out: Buffer[] = [];
  helper.stdout.on('data', (b: Buffer) => out.push(b));
  // argc 0: refused with EINVAL (22), the helper goes on.
  const bad = Buffer.alloc(4 + 24);
  bad.writeUInt32LE(24, 0);
  bad.writeUInt32LE(7, 4);
  helper.stdin.write(bad);
  await new Promise((r) => setTimeout(r, 300));
  const answer = Buffer.concat(out);
  assert.equal(answer.readUInt32LE(4), 7, 'the answer carries the request id');
  assert.equal(answer.readInt32LE(8), 3, 'kind: refused');
  assert.equal(answer.readInt32LE(12), 22, 'EINVAL');
  // A command under way, then a length over 1 MiB: not a frame of ours; the
  // helper exits, and what it ran goes with it (its timeouts went too).
  helper.stdin.write(request(8, ['sleep', '3141']));
  await running('sleep 3141');
  const huge = Buffer.alloc(4);
  huge.writeUInt32LE(2 * 1024 * 1024, 0);
  const exited = new Promise<number | null>((r) => helper.on('exit', (code) => r(code)));
  helper.stdin.write(huge);
  assert.equal(await exited, 2);
  assert.equal(await gone('sleep 3141'), true, 'the running command was killed');
});

/** The answers in `out` as id -> [kind, code, stdout]. */
function answers(out: Buffer[]): Map<number, [number, number, string]> {
  const all = Buffer.concat(out);
  const got = new Map<number, [number, number, string]>();
  for (let at = 0; at + 4 <= all.length; ) {
    const len = all.readUInt32LE(at);
    const f = all.subarray(at + 4, at + 4 + len);
    got.set(f.readUInt32LE(0), [f.readInt32LE(4), f.readInt32LE(8), f.subarray(24, 24 + f.readUInt32LE(16)).toString()]);
    at += 4 + len;
  }
  return got;
}

test('when the daemon goes (stdin closed), the command under way runs to its end and the helper exits after it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-spawner-'));
  const helper = spawn(shippedFile('frakti-spawner'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(async () => {
    helper.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const exited = new Promise<number | null>((r) => helper.on('exit', (code) => r(code)));
  // What a CNI DEL is: steps that must all be done once begun.
  helper.stdin.write(request(1, ['sh', '-c', `sleep 1; echo done > ${dir}/marker`]));
  await new Promise((r) => setTimeout(r, 200));
  helper.stdin.end();
  const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('running'), 400))]);
  assert.equal(early, 'running', 'the helper waits for the command');
  assert.equal(await exited, 0);
  assert.equal(await readFile(join(dir, 'marker'), 'utf8'), 'done\n', 'the command ran to its end');
});

test('a helper whose answers cannot be written lets its commands finish within their timeouts, then exits', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-spawner-'));
  const helper = spawn(shippedFile('frakti-spawner'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(async () => {
    helper.kill('SIGKILL');
    for (const p of await processesMentioning('sleep 3142')) process.kill(p.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const sent = Date.now();
  helper.stdin.write(request(1, ['sleep', '3142'], 1500));
  helper.stdin.write(request(2, ['sh', '-c', `sleep 0.5; echo done > ${dir}/marker`]));
  await running('sleep 3142');
  const exited = new Promise<number | null>((r) => helper.on('exit', (code) => r(code)));
  helper.stdout.destroy();
  // Its answer meets a closed pipe.
  helper.stdin.write(request(3, ['true']));
  assert.equal(await exited, 0);
  const took = Date.now() - sent;
  assert.ok(took >= 1400 && took < 6500, `the helper exited once the sleep's 1.5 s timeout killed it (${took} ms after it was sent)`);
  assert.equal(await readFile(join(dir, 'marker'), 'utf8'), 'done\n', 'the other command ran to its end');
  assert.equal(await gone('sleep 3142'), true, 'the command past its timeout was killed');
});

test('a helper given a lock file runs nothing until the previous holder\'s commands are over', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-spawner-'));
  const lock = join(dir, 'spawner.lock');
  const first = spawn(shippedFile('frakti-spawner'), [lock], { stdio: ['pipe', 'pipe', 'inherit'] });
  let second: ReturnType<typeof spawn> | undefined;
  t.after(async () => {
    first.kill('SIGKILL');
    second?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  first.stdin.write(request(1, ['sh', '-c', `sleep 1; echo first > ${dir}/marker`]));
  await new Promise((r) => setTimeout(r, 200));
  first.stdin.end(); // its daemon is gone; the command goes on
  second = spawn(shippedFile('frakti-spawner'), [lock], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: Buffer[] = [];
  second.stdout!.on('data', (b: Buffer) => out.push(b));
  second.stdin!.write(request(1, ['cat', join(dir, 'marker')]));
  await waitFor('the second helper\'s answer', async () => answers(out).has(1), 10_000);
  // Run at once, `cat` would have found no file: the first command sleeps 1 s before writing it.
  assert.deepEqual(answers(out).get(1), [0, 0, 'first\n'], 'the second helper\'s command ran after the first one\'s was done');
});
