// Image references: parsing and normalisation as Docker does it.
//   busybox              -> docker.io/library/busybox:latest
//   me/app:v1            -> docker.io/me/app:v1
//   127.0.0.1:5000/x@sha256:... (digest; a tag beside a digest is kept but the digest wins)
import { InvalidReferenceError } from './errors.js';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
/** Docker's bound on a whole name. */
const MAX_NAME_LENGTH = 255;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;
export const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface ImageReference {
  /** "docker.io", "127.0.0.1:5000". */
  registry: string;
  /** "library/busybox". */
  repository: string;
  tag?: string;
  digest?: string;
}

/** "registry/repository". */
export function repoName(r: ImageReference): string {
  return `${r.registry}/${r.repository}`;
}

/** The canonical string: name:tag, name@digest or name:tag@digest. */
export function formatReference(r: ImageReference): string {
  return `${repoName(r)}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** Parses and normalises a reference; a reference with neither tag nor digest gets ":latest". */
export function parseReference(input: string): ImageReference {
  const fail = (why: string): never => {
    throw new InvalidReferenceError(input, why);
  };
  if (typeof input !== 'string' || input === '') return fail('empty');
  if (input.length > MAX_NAME_LENGTH + 128 + 80) return fail('too long');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`digest '${digest}' is not sha256:<64 lowercase hex>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`tag '${tag}' is not valid`);
  }
  let registry = DEFAULT_REGISTRY;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!DOMAIN.test(first)) fail(`registry '${first}' is not a host[:port]`);
      registry = first === 'index.docker.io' || first === 'registry-1.docker.io' ? DEFAULT_REGISTRY : first;
      path = rest.slice(slash + 1);
    }
  }
  if (path === '') fail('no repository name');
  if (/^[a-f0-9]{64}$/.test(path) && registry === DEFAULT_REGISTRY && !tag && !digest) fail('a 64-hex name is an image id, not a repository');
  for (const c of path.split('/')) {
    if (!COMPONENT.test(c)) fail(`repository component '${c}' must be lowercase letters, digits and separators`);
  }
  if (registry === DEFAULT_REGISTRY && !path.includes('/')) path = `library/${path}`;
  if (registry.length + 1 + path.length > MAX_NAME_LENGTH) fail(`name longer than ${MAX_NAME_LENGTH} characters`);
  if (!tag && !digest) tag = DEFAULT_TAG;
  const ref: ImageReference = { registry, repository: path };
  if (tag) ref.tag = tag;
  if (digest) ref.digest = digest;
  return ref;
}

/** True when the string might be a reference rather than an id (prefix); used by lookups. */
export function tryParseReference(input: string): ImageReference | undefined {
  try {
    return parseReference(input);
  } catch {
    return undefined;
  }
}
