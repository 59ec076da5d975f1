// Test helpers of the image room, for every room that needs images:
//   const reg = await startRegistry();                  // docker-registry on 127.0.0.1:<free port>
//   const img = await buildBusyboxImage(tmpDir);        // OCI layout from /bin/busybox (busybox-static)
//   await pushImage(img.layout, `${reg.host}/busybox:latest`);
//   ...; await reg.stop();
// Images are OCI layouts written here (no umoci needed) and pushed with skopeo.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import bcrypt from 'bcryptjs';

const run = promisify(execFile);
export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const BUSYBOX_BIN = '/bin/busybox';
const START_TIMEOUT_MS = 15_000;
const PUSH_TIMEOUT_MS = 180_000;

export interface Registry {
  /** "127.0.0.1:PORT": prefix image names with it. */
  host: string;
  /** The registry's storage and config, removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Protects the registry with basic auth (htpasswd, bcrypt). */
  htpasswd?: { username: string; password: string };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
    srv.on('error', reject);
  });
}

async function waitReady(host: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${log()}`);
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200 || res.status === 401) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on ${host} within ${START_TIMEOUT_MS} ms: ${log()}`);
}

/** Starts Debian's docker-registry on 127.0.0.1 at a free port, storage in a temp dir. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'frakti-registry-'));
  try {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    let auth = '';
    if (opts.htpasswd) {
      const hash = bcrypt.hashSync(opts.htpasswd.password, 5);
      await writeFile(join(dir, 'htpasswd'), `${opts.htpasswd.username}:${hash}\n`);
      auth = `auth:\n  htpasswd:\n    realm: frakti-test\n    path: ${join(dir, 'htpasswd')}\n`;
    }
    const config = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${host}`,
      '  secret: frakti-test-secret',
      auth,
    ].join('\n');
    await writeFile(join(dir, 'config.yml'), config);
    const child = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString();
    });
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    };
    try {
      await waitReady(host, child, () => stderr);
    } catch (err) {
      await stop();
      throw err;
    }
    return { host, dir, stop };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// --- building images -------------------------------------------------------

export interface LayerEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: Buffer | string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

export const FIXED_MTIME = new Date('2024-01-02T03:04:05Z');

/** An uncompressed tar of the entries, in order (hostile names are written as given). */
export async function makeLayerTar(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const content = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? FIXED_MTIME,
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
      ...(e.pax ? { pax: e.pax } : {}),
      ...(type === 'file' ? { size: content?.length ?? 0 } : {}),
    } as tar.Header;
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, content ?? Buffer.alloc(0), cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export interface ImageSpecForTest {
  layers: LayerEntry[][];
  /** Config fields (Cmd, Env, User, ...). */
  config?: Record<string, unknown>;
  architecture?: string;
  /** Gzip level of the layers; 0 stores them uncompressed (media type ...tar). */
  gzipLevel?: number;
}

interface Blob {
  digest: string;
  size: number;
  mediaType: string;
}

async function putBlob(layout: string, data: Buffer, mediaType: string): Promise<Blob> {
  const digest = sha256(data);
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), data);
  return { digest, size: data.length, mediaType };
}

/** Writes one image (config, layers, manifest) into an OCI layout; returns its manifest descriptor. */
export async function writeImage(layout: string, spec: ImageSpecForTest): Promise<Blob & { platform: { os: string; architecture: string }; configDigest: string; diffIds: string[] }> {
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const entries of spec.layers) {
    const raw = await makeLayerTar(entries);
    diffIds.push(sha256(raw));
    const level = spec.gzipLevel ?? 6;
    layers.push(level === 0 ? await putBlob(layout, raw, 'application/vnd.oci.image.layer.v1.tar') : await putBlob(layout, gzipSync(raw, { level }), 'application/vnd.oci.image.layer.v1.tar+gzip'));
  }
  const architecture = spec.architecture ?? 'amd64';
  const config = {
    created: FIXED_MTIME.toISOString(),
    architecture,
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...(spec.config ?? {}) },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map(() => ({ created: FIXED_MTIME.toISOString(), created_by: 'frakti test' })),
  };
  const cfg = await putBlob(layout, Buffer.from(JSON.stringify(config)), 'application/vnd.oci.image.config.v1+json');
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers };
  const m = await putBlob(layout, Buffer.from(JSON.stringify(manifest)), 'application/vnd.oci.image.manifest.v1+json');
  return { ...m, platform: { os: 'linux', architecture }, configDigest: cfg.digest, diffIds };
}

/** Writes index.json naming `top` as `tag`. */
export async function writeLayoutIndex(layout: string, top: Blob, tag: string): Promise<void> {
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
}

/** The two layers of the busybox test image; the second exercises whiteouts, opaque dir, hardlink, symlink. */
export async function busyboxLayers(): Promise<LayerEntry[][]> {
  const busybox = await readFile(BUSYBOX_BIN);
  const base: LayerEntry[] = [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', content: busybox, mode: 0o755 },
    ...['sh', 'ls', 'cat', 'echo', 'id', 'sleep', 'true', 'false', 'env', 'mount', 'ps', 'wget', 'nc', 'hostname', 'stat', 'touch', 'mkdir', 'rm', 'test'].map(
      (n): LayerEntry => ({ name: `bin/${n}`, type: 'symlink', linkname: 'busybox' }),
    ),
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
    { name: 'etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
    { name: 'etc/old/', type: 'directory' },
    { name: 'etc/old/a', content: 'old a\n' },
    { name: 'etc/old/b', content: 'old b\n' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'root/', type: 'directory', mode: 0o700 },
    { name: 'removed-file', content: 'will be whited out\n' },
    { name: 'removed-dir/', type: 'directory' },
    { name: 'removed-dir/x', content: 'x\n' },
    { name: 'dev/', type: 'directory' },
    { name: 'proc/', type: 'directory' },
    { name: 'sys/', type: 'directory' },
  ];
  const top: LayerEntry[] = [
    { name: '.wh.removed-file' },
    { name: '.wh.removed-dir' },
    { name: 'etc/' , type: 'directory' },
    { name: 'etc/old/', type: 'directory' },
    { name: 'etc/old/.wh..wh..opq' },
    { name: 'etc/old/new', content: 'new in opaque dir\n' },
    { name: 'etc/hello', content: 'hello from layer 2\n', mode: 0o640, uid: 1000, gid: 1000 },
    { name: 'etc/hello-hardlink', type: 'link', linkname: 'etc/hello' },
    { name: 'etc/hello-symlink', type: 'symlink', linkname: 'hello' },
    { name: 'etc/setuid-file', content: '#!/bin/sh\n', mode: 0o4755 },
  ];
  return [base, top];
}

export interface BuiltImage {
  /** The OCI layout directory (index.json names the image `tag`). */
  layout: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  diffIds: string[];
}

/** The busybox test image as an OCI layout under dir/busybox-layout. */
export async function buildBusyboxImage(dir: string, config: Record<string, unknown> = {}): Promise<BuiltImage> {
  const layout = join(dir, 'busybox-layout');
  const m = await writeImage(layout, { layers: await busyboxLayers(), config: { Cmd: ['sh'], User: '', WorkingDir: '/', ...config } });
  await writeLayoutIndex(layout, m, 'latest');
  return { layout, tag: 'latest', manifestDigest: m.digest, configDigest: m.configDigest, diffIds: m.diffIds };
}

/** A multi-platform image: an index with linux/amd64 (busybox) and linux/arm64 (a marker file). */
export async function buildMultiPlatformImage(dir: string): Promise<BuiltImage & { indexDigest: string; arm64ConfigDigest: string }> {
  const layout = join(dir, 'multi-layout');
  const amd = await writeImage(layout, { layers: await busyboxLayers(), architecture: 'amd64' });
  const arm = await writeImage(layout, { layers: [[{ name: 'arch', content: 'arm64\n' }]], architecture: 'arm64' });
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: arm.mediaType, digest: arm.digest, size: arm.size, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: amd.mediaType, digest: amd.digest, size: amd.size, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  const idx = await putBlob(layout, Buffer.from(JSON.stringify(index)), 'application/vnd.oci.image.index.v1+json');
  await writeLayoutIndex(layout, idx, 'latest');
  return { layout, tag: 'latest', manifestDigest: amd.digest, configDigest: amd.configDigest, diffIds: amd.diffIds, indexDigest: idx.digest, arm64ConfigDigest: arm.configDigest };
}

/** An image of `layers` layers holding `totalBytes` of random (incompressible) data. */
export async function buildRandomImage(dir: string, totalBytes: number, layers: number, filesPerLayer = 8): Promise<BuiltImage> {
  const layout = join(dir, 'random-layout');
  const per = Math.floor(totalBytes / layers / filesPerLayer);
  const specLayers: LayerEntry[][] = [];
  for (let l = 0; l < layers; l++) {
    const entries: LayerEntry[] = [{ name: `data${l}/`, type: 'directory' }];
    for (let f = 0; f < filesPerLayer; f++) entries.push({ name: `data${l}/file${f}`, content: randomBytes(per) });
    specLayers.push(entries);
  }
  const m = await writeImage(layout, { layers: specLayers, gzipLevel: 1 });
  await writeLayoutIndex(layout, m, 'latest');
  return { layout, tag: 'latest', manifestDigest: m.digest, configDigest: m.configDigest, diffIds: m.diffIds };
}

/** Pushes the layout's image (all platforms) to docker://dest with skopeo. */
export async function pushImage(layout: string, dest: string, opts: { tag?: string; creds?: { username: string; password: string } } = {}): Promise<void> {
  const args = ['copy', '--all', '--quiet', '--dest-tls-verify=false', '--preserve-digests'];
  if (opts.creds) args.push('--dest-creds', `${opts.creds.username}:${opts.creds.password}`);
  args.push(`oci:${layout}:${opts.tag ?? 'latest'}`, `docker://${dest}`);
  await run('skopeo', args, { timeout: PUSH_TIMEOUT_MS });
}

/** A registry on loopback serving the busybox test image as REGISTRY/busybox:latest: what the e2e tests pull. */
export async function servedBusybox(dir: string): Promise<{ reg: Registry; image: string }> {
  const reg = await startRegistry();
  try {
    const built = await buildBusyboxImage(dir);
    const image = `${reg.host}/busybox:latest`;
    await pushImage(built.layout, image);
    return { reg, image };
  } catch (err) {
    await reg.stop();
    throw err;
  }
}
