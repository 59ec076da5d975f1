// The OS-container runtime (containerd's CRI plugin) as a CRI client: the
// same api.proto and value shapes as our own server, so a request kubelet
// sent us goes on unchanged and the answer comes back unchanged.
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { CriError, loadCriServices, osRuntimeSocketPath, type CallContext, type CriErrorCode } from '../cri/index.js';

/** A call to the OS runtime without a deadline of its own gets this one. */
export const OS_CALL_TIMEOUT_MS = 120_000;
/** PullImage downloads: as long as a pull through frakti may take. */
export const OS_PULL_TIMEOUT_MS = 30 * 60_000;
/** Largest message either way, as our own server's default. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const RECONNECT_BACKOFF_MS = 500;

const CODES: Partial<Record<grpc.status, CriErrorCode>> = {
  [grpc.status.NOT_FOUND]: 'NOT_FOUND',
  [grpc.status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [grpc.status.ALREADY_EXISTS]: 'ALREADY_EXISTS',
  [grpc.status.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [grpc.status.DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
  [grpc.status.UNIMPLEMENTED]: 'UNIMPLEMENTED',
  [grpc.status.UNAVAILABLE]: 'UNAVAILABLE',
  [grpc.status.CANCELLED]: 'CANCELLED',
  [grpc.status.RESOURCE_EXHAUSTED]: 'RESOURCE_EXHAUSTED',
};

type Service = 'runtime' | 'image';
/* eslint-disable @typescript-eslint/no-explicit-any */
type Unary = (req: any, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => grpc.ClientUnaryCall;

export class OsRuntime {
  readonly socketPath: string;
  private clients?: { runtime: grpc.Client; image: grpc.Client };

  constructor(readonly endpoint: string) {
    this.socketPath = osRuntimeSocketPath(endpoint);
  }

  /** Its socket exists: a node without containerd has none, and then frakti answers alone. */
  present(): boolean {
    return existsSync(this.socketPath);
  }

  private client(service: Service): grpc.Client {
    if (!this.clients) {
      const { RuntimeService, ImageService } = loadCriServices();
      const target = `unix://${this.socketPath}`;
      // A restarted containerd is spoken to again within a second, not after
      // grpc's default backoff of up to two minutes.
      const opts = {
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_MS,
        'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MS,
      };
      this.clients = {
        runtime: new RuntimeService(target, grpc.credentials.createInsecure(), opts),
        image: new ImageService(target, grpc.credentials.createInsecure(), opts),
      };
    }
    return this.clients[service];
  }

  /**
   * One unary call, bounded by the caller's deadline (or `timeoutMs`) and
   * cancelled with the caller's call. A failure is a CriError with the OS
   * runtime's status code, its message naming the OS runtime.
   */
  call<Res = any>(service: Service, method: string, req: unknown, ctx?: Pick<CallContext, 'signal' | 'deadline'>, timeoutMs = OS_CALL_TIMEOUT_MS): Promise<Res> {
    const client = this.client(service) as unknown as Record<string, Unary>;
    const fn = client[method];
    if (typeof fn !== 'function') return Promise.reject(new CriError('UNIMPLEMENTED', `${method} is not a CRI method`));
    const own = Date.now() + timeoutMs;
    const deadline = ctx?.deadline && ctx.deadline.getTime() < own ? ctx.deadline : new Date(own);
    return new Promise<Res>((resolve, reject) => {
      const call = fn.call(client, req, new grpc.Metadata(), { deadline }, (err, res) => {
        ctx?.signal.removeEventListener('abort', cancel);
        if (err) reject(this.error(method, err));
        else resolve(res as Res);
      });
      const cancel = () => call.cancel();
      ctx?.signal.addEventListener('abort', cancel, { once: true });
    });
  }

  /**
   * A server-streaming call until it ends, fails or `signal` aborts (then it
   * resolves). Each message is handed to `onMessage` before the next is
   * read, so a slow consumer holds the OS runtime back, not our memory.
   */
  follow(method: string, req: unknown, signal: AbortSignal, onMessage: (msg: any) => Promise<void>): Promise<void> {
    const client = this.client('runtime') as unknown as Record<string, (req: unknown, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>>;
    const fn = client[method];
    if (typeof fn !== 'function') return Promise.reject(new CriError('UNIMPLEMENTED', `${method} is not a CRI method`));
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const stream = fn.call(client, req, {});
      const cancel = () => stream.cancel();
      signal.addEventListener('abort', cancel, { once: true });
      stream.on('data', (msg: unknown) => {
        stream.pause();
        onMessage(msg).then(
          () => stream.resume(),
          (err: unknown) => {
            stream.cancel();
            reject(err);
          },
        );
      });
      stream.on('error', (err: grpc.ServiceError) => {
        signal.removeEventListener('abort', cancel);
        if (err.code === grpc.status.CANCELLED && signal.aborted) resolve();
        else reject(this.error(method, err));
      });
      stream.on('end', () => {
        signal.removeEventListener('abort', cancel);
        resolve();
      });
    });
  }

  private error(method: string, err: grpc.ServiceError): CriError {
    const code = CODES[err.code] ?? 'INTERNAL';
    if (err.code === grpc.status.UNAVAILABLE) {
      return new CriError('UNAVAILABLE', `the OS-container runtime at ${this.endpoint} is unreachable (${method}): ${err.details}`, { endpoint: this.endpoint });
    }
    return new CriError(code, `OS-container runtime: ${err.details}`, { endpoint: this.endpoint, method });
  }

  close(): void {
    this.clients?.runtime.close();
    this.clients?.image.close();
    this.clients = undefined;
  }
}
