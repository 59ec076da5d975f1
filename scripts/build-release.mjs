#!/usr/bin/env node
// `make release`: build/release/frakti, one executable holding the Node
// runtime, frakti's JavaScript bundled into one CommonJS script, and the
// files frakti ships (lib/shipped-files.ts lists them) as SEA assets.
//
// 1. esbuild bundles dist/src/cli/main.js (tsc's output) and its
//    dependencies into one CJS script that requires built-ins only.
// 2. manifest.json: each asset's SHA-256 and size, and the set's hash.
// 3. node --experimental-sea-config writes the blob (same Node as the base).
// 4. The base is this `node`, copied and stripped; postject injects the blob.
// Usage: node scripts/build-release.mjs OUT (from the top of the checkout).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isBuiltin } from 'node:module';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import { build } from 'esbuild';
import { MANIFEST_ASSET, SHIPPED_NAMES, buildManifest, checkoutPath } from '../dist/src/lib/shipped-files.js';

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const out = resolve(process.argv[2] ?? 'build/release/frakti');
const work = join(dirname(out), 'work');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// Debian's nodejs is a launcher of a shared libnode, without the SEA fuse.
const base = process.execPath;
if (!readFileSync(base).includes(SEA_FUSE)) {
  console.error(`build-release: ${base} has no SEA fuse (Debian's libnode launcher?): run this with the official Node ${process.version} build`);
  process.exit(1);
}

// tar-stream does not export headers.js; the checkout reaches it by path
// (src/image/tar-stream-headers.ts), the bundle resolves that module to the file.
const tarStreamHeaders = {
  name: 'tar-stream-headers',
  setup(b) {
    b.onResolve({ filter: /\/tar-stream-headers\.js$/ }, () => ({ path: resolve('node_modules/tar-stream/headers.js') }));
  },
};
// ws tries its optional native helpers in a try/catch; in a bundle the
// require would stay, and a SEA's require() warns on anything not built in.
const optionalNative = {
  name: 'optional-native',
  setup(b) {
    b.onResolve({ filter: /^(bufferutil|utf-8-validate)$/ }, (a) => ({ path: a.path, namespace: 'absent' }));
    b.onLoad({ filter: /.*/, namespace: 'absent' }, (a) => ({ contents: `throw new Error('${a.path} is not in the single executable');`, loader: 'js' }));
  },
};
const bundle = join(work, 'frakti.cjs');
const result = await build({
  entryPoints: ['dist/src/cli/main.js'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: bundle,
  // Only lib/shipped-files.ts reads import.meta.url, and only outside the executable.
  define: { 'import.meta.url': '"file:///frakti-single-executable/dist/src/lib/"' },
  plugins: [tarStreamHeaders, optionalNative],
  legalComments: 'none',
  logLevel: 'warning',
});
if (result.warnings.length > 0) process.exit(1);
// A SEA has no dynamic import(), and its require() loads built-in modules only.
const code = readFileSync(bundle, 'utf8').split('\n').filter((l) => !l.trimStart().startsWith('//'));
const dynamic = code.find((l) => /[^\w$.]import\(\s*["'`]/.test(l));
const foreign = code.map((l) => /[^\w$.]require\("([^"]+)"\)/.exec(l)?.[1]).find((m) => m !== undefined && !isBuiltin(m));
if (dynamic || foreign) {
  console.error(`build-release: the bundle keeps ${dynamic ? `a dynamic import (${dynamic.trim()})` : `require("${foreign}")`}: only built-in modules can be loaded at run time`);
  process.exit(1);
}

// Assets that brotli shrinks by a quarter or more are stored compressed
// (the kernel: ~15 MiB to ~2 MiB); the manifest hashes what is extracted.
const manifest = buildManifest((name) => readFileSync(checkoutPath(name)));
const assets = { [MANIFEST_ASSET]: join(work, MANIFEST_ASSET) };
for (const name of SHIPPED_NAMES) {
  const data = readFileSync(checkoutPath(name));
  const packed = brotliCompressSync(data, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_LGWIN]: 24, [zlib.BROTLI_PARAM_SIZE_HINT]: data.length } });
  if (packed.length > data.length * 0.75) {
    assets[name] = checkoutPath(name);
    continue;
  }
  assets[name] = join(work, `${name}.br`);
  writeFileSync(assets[name], packed);
  manifest.files[name].stored = 'br';
}
writeFileSync(join(work, MANIFEST_ASSET), JSON.stringify(manifest, null, 2) + '\n');

const blob = join(work, 'sea.blob');
const seaConfig = join(work, 'sea-config.json');
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, assets }, null, 2));
execFileSync(base, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

const tmp = `${out}.tmp`;
copyFileSync(base, tmp);
chmodSync(tmp, 0o755);
execFileSync('strip', [tmp], { stdio: 'inherit' });
// postject (LIEF) warns once per note section it cannot name in a stripped binary: harmless, dropped.
const injected = spawnSync(process.execPath, [resolve('node_modules/postject/dist/cli.js'), tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { encoding: 'utf8' });
const noise = /^warning: Can't find string offset for section name/;
process.stderr.write(injected.stderr.split('\n').filter((l) => l && !noise.test(l)).map((l) => l + '\n').join(''));
if (injected.status !== 0) process.exit(1);
renameSync(tmp, out);
rmSync(work, { recursive: true, force: true });
console.log(`build-release: ${out} (${(statSync(out).size / 1048576).toFixed(1)} MiB, assets sha256:${manifest.hash})`);
