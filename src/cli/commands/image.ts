// `frakti image pull|ls|rm|import`: the image store from the command line,
// on the same root the daemon uses (stop the daemon first or accept that
// both write the store; every write is atomic either way).
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ImageStore, type ImageRecord, type PullProgress, type RegistryAuth } from '../../image/index.js';
import { UsageError } from '../cli-error.js';
import { DEFAULT_ROOT_DIR } from '../defaults.js';

export const summary = 'pull, list, remove and import images (pull|ls|rm|import)';

const HELP = `usage: frakti image COMMAND [options]

commands:
  pull REF             pull an image (busybox = docker.io/library/busybox:latest)
  ls                   list images
  rm REF...            remove images (by id, id prefix, tag or digest)
  import FILE          load a docker-save or OCI-layout tarball (.tar or .tar.gz)

options:
  --root DIR                frakti's persistent directory (default ${DEFAULT_ROOT_DIR}); images live in DIR/image
  --insecure-registry HOST  speak plain HTTP to HOST[:PORT] (repeatable; loopback always is)
  --creds USER:PASSWORD     registry credentials for pull (or USER, password from FRAKTI_REGISTRY_PASSWORD)
  --platform OS/ARCH        platform to pick from multi-platform images (default the host's)
  --tag REF                 import: name for an image the archive leaves unnamed
  -q, --quiet               ls: image ids only; pull: no progress
  -h, --help`;

const OPTIONS = {
  root: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  creds: { type: 'string' },
  platform: { type: 'string' },
  tag: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function humanSize(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)}kB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)}MB`;
  return `${(n / 1024 ** 3).toFixed(2)}GB`;
}

function authOf(creds: string | undefined): RegistryAuth | undefined {
  if (creds === undefined) return undefined;
  const i = creds.indexOf(':');
  if (i === 0 || creds === '') throw new UsageError('--creds wants USER:PASSWORD');
  if (i > 0) return { username: creds.slice(0, i), password: creds.slice(i + 1) };
  const password = process.env.FRAKTI_REGISTRY_PASSWORD;
  if (password === undefined) throw new UsageError('--creds USER without a password: add :PASSWORD or set FRAKTI_REGISTRY_PASSWORD');
  return { username: creds, password };
}

function progressPrinter(): { onProgress: (p: PullProgress) => void; done: () => void } {
  let shown = false;
  return {
    onProgress: (p) => {
      shown = true;
      const bytes = p.bytesTotal ? ` ${mib(p.bytesDone)} / ${mib(p.bytesTotal)}` : '';
      process.stdout.write(`\r\x1b[Kpulling ${p.ref}: ${p.layersDone}/${p.layersTotal} layers${bytes}`);
    },
    done: () => {
      if (shown) process.stdout.write('\r\x1b[K');
      shown = false;
    },
  };
}

/** REPOSITORY  TAG  IMAGE ID  SIZE, one row per tag (an untagged image shows <none>). */
function table(images: ImageRecord[]): string {
  const rows: string[][] = [['IMAGE', 'TAG', 'IMAGE ID', 'SIZE']];
  for (const img of images) {
    const id = img.id.slice(7, 20);
    const names = img.repoTags.length ? img.repoTags : img.repoDigests.map((d) => d.slice(0, d.lastIndexOf('@')) + ':<none>');
    if (names.length === 0) names.push('<none>:<none>');
    for (const n of names) {
      const i = n.lastIndexOf(':');
      rows.push([n.slice(0, i), n.slice(i + 1), id, humanSize(img.size)]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 3))).join('').trimEnd()).join('\n');
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message} (see frakti image --help)`);
  }
  const { values, positionals } = parsed;
  const [cmd, ...args] = positionals;
  if (values.help || cmd === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (!cmd) throw new UsageError('missing command: pull, ls, rm or import (see frakti image --help)');
  const root = values.root ?? DEFAULT_ROOT_DIR;
  if (!root.startsWith('/')) throw new UsageError(`--root must be an absolute path, got '${root}'`);
  const want = (n: number, what: string) => {
    if (args.length !== n) throw new UsageError(`frakti image ${cmd} takes ${what}`);
  };
  const openStore = () =>
    ImageStore.open({
      root: join(root, 'image'),
      insecureRegistries: values['insecure-registry'] ?? [],
      ...(values.platform ? { platform: values.platform } : {}),
    });

  switch (cmd) {
    case 'pull': {
      want(1, 'one image reference');
      const auth = authOf(values.creds);
      const store = await openStore();
      // Progress only for a person watching: not when the id is captured by a script.
      const tty = process.stdout.isTTY && !values.quiet;
      const progress = tty ? progressPrinter() : undefined;
      try {
        const img = await store.pull(args[0]!, { ...(auth ? { auth } : {}), ...(progress ? { onProgress: progress.onProgress } : {}) });
        progress?.done();
        process.stdout.write(`${img.id}\n`);
      } finally {
        progress?.done();
        await store.close();
      }
      return 0;
    }
    case 'ls': {
      want(0, 'no arguments');
      const store = await openStore();
      const images = await store.list();
      await store.close();
      process.stdout.write(values.quiet ? images.map((i) => i.id + '\n').join('') : table(images) + '\n');
      return 0;
    }
    case 'rm': {
      if (args.length === 0) throw new UsageError('frakti image rm takes one or more image references');
      const store = await openStore();
      let missing = 0;
      try {
        for (const ref of args) {
          const img = await store.status(ref);
          if (!img) {
            process.stderr.write(`frakti: no such image: ${ref}\n`);
            missing++;
            continue;
          }
          await store.remove(img.id);
          process.stdout.write(`Deleted: ${img.id}\n`);
        }
      } finally {
        await store.close();
      }
      return missing ? 1 : 0;
    }
    case 'import': {
      want(1, 'one archive file');
      const st = await stat(args[0]!).catch(() => undefined);
      if (!st?.isFile()) throw new UsageError(`no such archive file: ${args[0]}`);
      const store = await openStore();
      try {
        const images = await store.importArchive(args[0]!, values.tag ? { tag: values.tag } : {});
        for (const img of images) process.stdout.write(`Loaded: ${img.repoTags.at(-1) ?? img.id} (${img.id})\n`); // the newest tag is the one just given
      } finally {
        await store.close();
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command 'image ${cmd}' (see frakti image --help)`);
  }
}
