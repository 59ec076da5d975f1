// Exec, attach and port forward over WebSocket against the real daemon and
// a real pod VM, through @kubernetes/client-node's Exec, Attach and
// PortForward (a client nobody here wrote), pointed at the URLs the CRI
// calls answer. The SPDY path through the same URLs is in cri-pod.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { WebSocket } from 'ws';
import { servedBusybox, type Registry } from '../../helpers/image-registry.js';
import { waitFor } from '../../helpers/cri-client.js';
import { daemonLeavingNothing } from '../../helpers/e2e-daemon.js';
import { Attach, PortForward, channelClient, closed, collect, exitCodeOf, k8sExec, kubeConfigFor, onChannel, terminalOutput, toStreamingUrl } from '../../helpers/k8s-websocket.js';

let dir: string;
let reg: Registry;
let image: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'frakti-e2e-ws-'));
  ({ reg, image } = await servedBusybox(dir));
});

after(async () => {
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
});

const daemon = (t: { after(fn: () => unknown): void }, name: string) => daemonLeavingNothing(t, dir, name);

test('exec (with and without a terminal, stdin, resize, exit code), attach and port-forward over WebSocket with client-node', { timeout: 300_000 }, async (t) => {
  const d = await daemon(t, 'ws');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } });
  const config = { metadata: { name: 'ws', uid: 'uid-ws', namespace: 'default', attempt: 0 }, hostname: 'ws', log_directory: join(d.dir, 'logs') };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config });
  const container = (name: string, command: string[], extra: Record<string, unknown> = {}) => ({ metadata: { name, attempt: 0 }, image: { image }, command, log_path: `${name}/0.log`, ...extra });
  const web = ['sh', '-c', 'mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www'];
  const { container_id: c1 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: container('web', web), sandbox_config: config });
  const echoer = container('echoer', ['sh', '-c', 'while read l; do echo "echo:$l"; done'], { stdin: true });
  const { container_id: c2 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: echoer, sandbox_config: config });
  await rt.StartContainer!({ container_id: c1 });
  await rt.StartContainer!({ container_id: c2 });

  // kubectl exec -i: stdin (ended by v5's close signal), both outputs, the exit code.
  const ex = await rt.Exec!({ container_id: c1, cmd: ['sh', '-c', 'read line; echo "got $line"; echo oops >&2; exit 7'], stdin: true, stdout: true, stderr: true });
  const r1 = await k8sExec(ex.url, ['sh'], { stdin: 'hello\n' });
  assert.equal(r1.stdout, 'got hello\n');
  assert.equal(r1.stderr, 'oops\n');
  assert.equal(r1.status.reason, 'NonZeroExitCode');
  assert.equal(exitCodeOf(r1.status), 7);

  // kubectl exec without stdin: success.
  const plain = await rt.Exec!({ container_id: c1, cmd: ['cat', '/www/index.html'], stdout: true, stderr: true });
  const r2 = await k8sExec(plain.url, ['cat']);
  assert.equal(r2.stdout, 'hello from the pod\n');
  assert.equal(exitCodeOf(r2.status), 0);

  // kubectl exec -it: a terminal sized by the client, then resized.
  const tty = await rt.Exec!({ container_id: c1, cmd: ['sh', '-c', 'read x; stty size; read y; tty; stty size'], stdin: true, stdout: true, tty: true });
  const stdout = terminalOutput(100, 33);
  const stdin = new PassThrough();
  const shown = collect(stdout);
  const running = k8sExec(tty.url, ['sh'], { stdin, stdout, tty: true });
  // client-node sends its size as the session opens; the first line asks for it once that has landed.
  await new Promise((r) => setTimeout(r, 500));
  stdin.write('\n');
  await waitFor('the first size', async () => /33 100/.test(shown()), 20_000);
  Object.assign(stdout, { columns: 120, rows: 50 });
  stdout.emit('resize');
  await new Promise((r) => setTimeout(r, 500));
  stdin.end('\n');
  const r3 = await running;
  assert.match(r3.stdout, /\/dev\/pts\/\d+/);
  assert.match(r3.stdout, /50 120/);
  assert.equal(exitCodeOf(r3.status), 0);

  // kubectl attach -i: the container's own stdin and output; it keeps running after the client leaves.
  const at = await rt.Attach!({ container_id: c2, stdin: true, stdout: true, stderr: true });
  const aOut = new PassThrough();
  const aIn = new PassThrough();
  const attached = collect(aOut);
  const aws = (await new Attach(kubeConfigFor('http://apiserver.invalid'), toStreamingUrl(at.url)).attach('default', 'ws', 'echoer', aOut, new PassThrough(), aIn, false)) as unknown as WebSocket;
  aIn.write('ping\n');
  await waitFor('the echo', async () => attached().includes('echo:ping'), 20_000);
  aws.close();
  await closed(aws);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await rt.ContainerStatus!({ container_id: c2 })).status.state, 'CONTAINER_RUNNING');

  // kubectl port-forward: an HTTP request to a server on the pod's loopback.
  await waitFor('the web server to listen', async () => Buffer.from((await rt.ExecSync!({ container_id: c1, cmd: ['sh', '-c', 'netstat -tln | grep -c :8080 || true'], timeout: '10' })).stdout).toString().trim() !== '0', 15_000);
  const pf = await rt.PortForward!({ pod_sandbox_id: pod, port: [8080] });
  const output = new PassThrough();
  const errors = new PassThrough();
  const input = new PassThrough();
  const page = collect(output);
  const errText = collect(errors);
  const fws = (await new PortForward(kubeConfigFor('http://apiserver.invalid'), true, toStreamingUrl(pf.url)).portForward('default', 'ws', [8080], output, errors, input)) as unknown as WebSocket;
  input.write('GET /index.html HTTP/1.0\r\n\r\n');
  // httpd closes after its answer; the server then closes the WebSocket.
  await closed(fws);
  assert.match(page(), /^HTTP\/1\.[01] 200/);
  assert.match(page(), /hello from the pod/);
  assert.equal(errText(), '');

  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
});

test('a pod removed under open WebSocket exec, attach and port-forward sessions ends them; the daemon goes on', { timeout: 300_000 }, async (t) => {
  const d = await daemon(t, 'ws-gone');
  const rt = d.client.runtime;
  await d.client.image.PullImage!({ image: { image } });
  const config = { metadata: { name: 'ws-gone', uid: 'uid-ws-gone', namespace: 'default', attempt: 0 }, log_directory: join(d.dir, 'logs') };
  const { pod_sandbox_id: pod } = await rt.RunPodSandbox!({ config });
  const container = (name: string, command: string[], extra: Record<string, unknown> = {}) => ({ metadata: { name, attempt: 0 }, image: { image }, command, log_path: `${name}/0.log`, ...extra });
  const { container_id: c1 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: container('shell', ['sh', '-c', 'while read l; do echo "got:$l"; done'], { stdin: true }), sandbox_config: config });
  const { container_id: c2 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: container('term', ['sh', '-c', 'while read l; do echo "t:$l"; done'], { stdin: true, tty: true }), sandbox_config: config });
  const web = container('web', ['sh', '-c', 'mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']);
  const { container_id: c3 } = await rt.CreateContainer!({ pod_sandbox_id: pod, config: web, sandbox_config: config });
  for (const c of [c1, c2, c3]) await rt.StartContainer!({ container_id: c });

  // Every kind of session, open, with and without a terminal, in both framings.
  const execTty = await channelClient((await rt.Exec!({ container_id: c1, cmd: ['sh'], stdin: true, stdout: true, tty: true })).url, ['v5.channel.k8s.io']);
  const execPlain = await channelClient((await rt.Exec!({ container_id: c1, cmd: ['cat'], stdin: true, stdout: true, stderr: true })).url, ['v4.base64.channel.k8s.io']);
  const attachPlain = await channelClient((await rt.Attach!({ container_id: c1, stdin: true, stdout: true, stderr: true })).url, ['v5.channel.k8s.io']);
  const attachTty = await channelClient((await rt.Attach!({ container_id: c2, stdin: true, stdout: true, tty: true })).url, ['v4.channel.k8s.io']);
  await waitFor('httpd to listen', async () => Buffer.from((await rt.ExecSync!({ container_id: c3, cmd: ['sh', '-c', 'netstat -tln | grep -c :8080 || true'], timeout: '10' })).stdout).toString().trim() !== '0', 15_000);
  const forward = await channelClient((await rt.PortForward!({ pod_sandbox_id: pod, port: [8080] })).url, ['v4.channel.k8s.io']);
  const all = [execTty, execPlain, attachPlain, attachTty, forward];
  const ended = all.map((c) => closed(c.ws));
  execTty.ws.send(Buffer.from('\x00echo typing\n', 'latin1'));
  execPlain.ws.send('0' + Buffer.from('more\n').toString('base64'));
  await waitFor('the plain exec to echo', async () => onChannel(execPlain.got, 1) === 'more\n', 20_000);

  // The pod goes away under all of them, as kubelet removes a deleted pod.
  await rt.StopPodSandbox!({ pod_sandbox_id: pod });
  await rt.RemovePodSandbox!({ pod_sandbox_id: pod });
  // Input sent after the pod is gone is dropped, not a crash.
  for (const c of [execTty, attachPlain, attachTty]) if (c.ws.readyState === c.ws.OPEN) c.ws.send(Buffer.from('\x00late\n', 'latin1'));
  if (forward.ws.readyState === forward.ws.OPEN) forward.ws.send(Buffer.from('\x00GET / HTTP/1.0\r\n\r\n', 'latin1'));
  await Promise.race([Promise.all(ended), new Promise((_, rej) => setTimeout(() => rej(new Error('sessions did not end within 30 s')), 30_000))]);

  // The daemon is alive and serves the next call.
  assert.equal(d.child.exitCode, null, d.stderr().slice(-2000));
  assert.deepEqual((await rt.ListPodSandbox!({})).items, []);
  assert.doesNotMatch(d.stderr(), /Unhandled 'error' event|uncaughtException|unhandledRejection/);
});
