// Runs the real guest agent binary on the host (`frakti-agent --listen-unix`)
// for integration tests, and stops it afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** build/bin, from dist/test/helpers/. */
export const BUILD_BIN = fileURLToPath(new URL('../../../build/bin/', import.meta.url));
export const AGENT_BIN = join(BUILD_BIN, 'frakti-agent');
export const RELAY_BIN = join(BUILD_BIN, 'frakti-vsock-relay');
export const GUEST_DIR = fileURLToPath(new URL('../../../build/guest/', import.meta.url));

const READY_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 2_000;

export interface AgentProcess {
  path: string;
  child: ChildProcess;
  /** Everything the agent printed on stdout and stderr so far. */
  output(): string;
  exited(): Promise<number | null>;
  stop(): Promise<void>;
}

export async function startAgentProcess(): Promise<AgentProcess> {
  if (!existsSync(AGENT_BIN)) throw new Error(`${AGENT_BIN} is missing: run make`);
  const dir = await mkdtemp(join(tmpdir(), 'frakti-agent-'));
  const path = join(dir, 'agent.sock');
  const child = spawn(AGENT_BIN, ['--listen-unix', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exit;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!out.includes('ready on')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`agent did not become ready: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return { path, child, output: () => out, exited: () => exit, stop };
}
