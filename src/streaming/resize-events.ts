// Terminal resize events as clients send them: JSON objects one after the
// other, {"Width":80,"Height":24} from client-go (with a newline after each),
// {"width":80,"height":24} from JavaScript clients (Go decodes field names
// without regard to case, so both are the same event). Over SPDY they come
// as a byte stream, over WebSocket one or more per message; either way an
// object may be split anywhere, so this decoder finds where each ends.

/** An object longer than this is not a resize event: resizing stops. */
export const MAX_RESIZE_EVENT_BYTES = 4096;
const MAX_TERMINAL_DIMENSION = 65535;

export interface TerminalSize {
  cols: number;
  rows: number;
}

export class ResizeEventError extends Error {}

function dimension(o: Record<string, unknown>, name: string): number | undefined {
  const key = Object.keys(o).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : o[key];
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TERMINAL_DIMENSION ? v : undefined;
}

/** One event from the text of one JSON object; a message naming what is wrong otherwise. */
export function parseResizeEvent(text: string): TerminalSize | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return `not JSON: ${text.slice(0, 80)}`;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const cols = dimension(o as Record<string, unknown>, 'width');
  const rows = dimension(o as Record<string, unknown>, 'height');
  if (cols === undefined || rows === undefined) return `width and height must be integers in 0..${MAX_TERMINAL_DIMENSION}`;
  return { cols, rows };
}

export class ResizeDecoder {
  private pending = '';
  /** Where the scan stopped in `pending`, and its state there. */
  private at = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  /** The complete objects' texts so far; throws ResizeEventError on an over-long one. */
  push(text: string): string[] {
    this.pending += text;
    const out: string[] = [];
    let start = 0;
    for (; this.at < this.pending.length; this.at++) {
      const c = this.pending[this.at];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"' && this.depth > 0) this.inString = true;
      else if (c === '{') {
        if (this.depth === 0) start = this.at;
        this.depth++;
      } else if (c === '}' && this.depth > 0) {
        this.depth--;
        if (this.depth === 0) {
          if (this.at + 1 - start > MAX_RESIZE_EVENT_BYTES) throw new ResizeEventError(`a resize event longer than ${MAX_RESIZE_EVENT_BYTES} bytes`);
          out.push(this.pending.slice(start, this.at + 1));
        }
      } else if (this.depth === 0) start = this.at + 1; // whitespace or stray text between objects
    }
    // Keep only the unfinished object.
    const keep = this.depth > 0 ? start : this.pending.length;
    this.pending = this.pending.slice(keep);
    this.at -= keep;
    if (this.pending.length > MAX_RESIZE_EVENT_BYTES) throw new ResizeEventError(`a resize event longer than ${MAX_RESIZE_EVENT_BYTES} bytes`);
    return out;
  }
}
