// @kubernetes/client-node (a client nobody here wrote) against a CRI
// streaming URL. Its Exec, Attach and PortForward build API-server paths
// (/api/v1/namespaces/NS/pods/POD/exec?...) against the cluster's server and
// take a WebSocketInterface to open them; the API server would carry the
// session on to the URL the CRI call answered, so the interface here opens
// that URL instead, with client-node's own WebSocketHandler (its protocols,
// its framing), and notes the path the class asked for.
import { Attach, Exec, KubeConfig, PortForward } from '@kubernetes/client-node';
// Not in the package's index, but its Exec, Attach and PortForward use it.
import { WebSocketHandler, type WebSocketInterface } from '@kubernetes/client-node/dist/web-socket-handler.js';
import { PassThrough } from 'node:stream';
import { WebSocket } from 'ws';

export function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'frakti', server, skipTLSVerify: true }],
    users: [{ name: 'test' }],
    contexts: [{ name: 'frakti', cluster: 'frakti', user: 'test' }],
    currentContext: 'frakti',
  });
  return kc;
}

/** A WebSocketInterface that opens the CRI streaming URL; `asked` keeps the paths the client built. */
export function toStreamingUrl(url: string): WebSocketInterface & { asked: string[] } {
  const u = new URL(url);
  const handler = new WebSocketHandler(kubeConfigFor(u.origin));
  const asked: string[] = [];
  return {
    asked,
    connect: (path, text, binary) => {
      asked.push(path);
      return handler.connect(u.pathname, text, binary);
    },
  };
}

export interface Status {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

/** The exit code client-go and client-node users read from a v4+ status: 0 for Success. */
export function exitCodeOf(s: Status): number | undefined {
  if (s.status === 'Success') return 0;
  const c = s.details?.causes?.find((x) => x.reason === 'ExitCode');
  return c?.message === undefined ? undefined : Number(c.message);
}

/** A stdout that client-node treats as a terminal: it sends its size, and again on 'resize'. */
export function terminalOutput(columns: number, rows: number): PassThrough & { columns: number; rows: number } {
  return Object.assign(new PassThrough(), { columns, rows });
}

export function collect(s: NodeJS.ReadableStream): () => string {
  const parts: Buffer[] = [];
  s.on('data', (b: Buffer | string) => parts.push(Buffer.from(b)));
  return () => Buffer.concat(parts).toString('utf8');
}

export function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve(1006);
    ws.once('close', (code: number) => resolve(code));
  });
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  status: Status;
}

/** kubectl exec's path through client-node: Exec over WebSocket until the status arrives and the socket closes. */
export async function k8sExec(
  url: string,
  cmd: string[],
  opts: { stdin?: string | PassThrough; tty?: boolean; stdout?: PassThrough; stderr?: boolean } = {},
): Promise<ExecResult & { asked: string[] }> {
  const wsi = toStreamingUrl(url);
  const stdout = opts.stdout ?? new PassThrough();
  const stderr = opts.stderr === false || opts.tty ? null : new PassThrough();
  const out = collect(stdout);
  const err = stderr ? collect(stderr) : () => '';
  let stdin: PassThrough | null = null;
  if (typeof opts.stdin === 'string') stdin = new PassThrough();
  else if (opts.stdin) stdin = opts.stdin;
  let status: Status | undefined;
  const ws = (await new Exec(kubeConfigFor('http://apiserver.invalid'), wsi).exec('default', 'pod', 'ctr', cmd, stdout, stderr, stdin, opts.tty ?? false, (s) => (status = s as Status))) as unknown as WebSocket;
  const done = closed(ws);
  if (typeof opts.stdin === 'string') stdin!.end(opts.stdin);
  await done;
  if (!status) throw new Error(`exec closed without a status; stdout so far: ${out().slice(0, 200)}`);
  return { stdout: out(), stderr: err(), status, asked: wsi.asked };
}

export { Attach, Exec, PortForward };

export interface Message {
  channel: number;
  data: Buffer;
}

/** A bare WebSocket client of the channel protocols: what it got, message by message, decoded per the protocol's framing. */
export async function channelClient(url: string, protocols: string[]): Promise<{ ws: WebSocket; got: Message[]; raw: Buffer[]; protocol: string }> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
  const got: Message[] = [];
  const raw: Buffer[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    raw.push(data);
    if (isBinary) got.push({ channel: data[0]!, data: data.subarray(1) });
    else got.push({ channel: data[0]! - 0x30, data: Buffer.from(data.subarray(1).toString(), 'base64') });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
  });
  ws.on('error', () => {});
  return { ws, got, raw, protocol: ws.protocol };
}

/** Everything that came on one channel, as text. */
export const onChannel = (got: Message[], n: number): string => Buffer.concat(got.filter((m) => m.channel === n).map((m) => m.data)).toString();
