// Keeps registry secrets out of logs: a copy of a request in which every
// secret field (AuthConfig password, auth, identity_token, registry_token,
// at any depth) is replaced by a marker. The request itself is untouched.

const SECRET_FIELDS = new Set(['password', 'auth', 'identity_token', 'registry_token']);
export const REDACTED = '<redacted>';

// Logged requests are bounded too: a list of 10k images or a huge env does
// not belong in a debug line.
const MAX_DEPTH = 8;
const MAX_ARRAY_ITEMS = 32;
const MAX_STRING_CHARS = 512;

export function scrubForLog(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > MAX_STRING_CHARS ? `${value.slice(0, MAX_STRING_CHARS)}...(${value.length} chars)` : value;
  if (value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (depth >= MAX_DEPTH) return '<...>';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ARRAY_ITEMS).map((v) => scrubForLog(v, depth + 1));
    if (value.length > MAX_ARRAY_ITEMS) items.push(`...(${value.length - MAX_ARRAY_ITEMS} more)`);
    return items;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    // An AuthConfig's `auth` is a string; the PullImageRequest's `auth` is the
    // AuthConfig object itself, which is walked rather than hidden whole.
    if (SECRET_FIELDS.has(key) && typeof v === 'string') out[key] = v === '' ? '' : REDACTED;
    else out[key] = scrubForLog(v, depth + 1);
  }
  return out;
}
