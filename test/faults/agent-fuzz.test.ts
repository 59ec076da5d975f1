// A hostile guest, fuzzed: the fake agent plays back the agent's side of a
// good session (answers to a fixed script of calls, stream bytes, events),
// mutated one way per session — bits flipped, cut short, garbage spliced in,
// header fields changed, lengths at and beyond the bound, answers to ids
// never asked, duplicates, frames for unknown streams, GOAWAY, valid
// protobuf with hostile values (negative and huge numbers, overlong strings,
// invalid UTF-8, wrong wire types, repeated fields filling the frame, deep
// nesting), a broken session marker or HELLO — written in random pieces.
//
// What the host must do, session after session: never throw uncaught or
// leave a rejection unhandled; settle every call (resolve with values that
// pass the checks, or reject with an AgentError of a known code) within its
// timeout, and the untimed wait() once the channel closes; end every stream
// it handed out; cut a peer that broke the protocol off itself with
// AGENT_PROTOCOL; and hold no more memory after thousands of frames than
// before. Every random choice comes from the fault schedule, so a failure
// replays with the seed it prints.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { finished, type Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import protobuf from 'protobufjs';
import { AgentCallError, AgentError, connectAgent, type AgentClient, type ProcessSpec } from '../../src/agent-protocol/index.js';
import { AGENT_MAGIC, FRAME_HEADER_BYTES, FrameType, MAX_FRAME_PAYLOAD_BYTES, PROTOCOL_VERSION } from '../../src/agent-protocol/framing.js';
import { agentProtoPath } from '../../src/agent-protocol/messages.js';
import { pack, startFakePeer, type FakePeer, type PeerConn } from '../helpers/agent-fake-peer.js';
import { faultSchedule, type Schedule } from './schedule.js';

const sched = faultSchedule('agent-fuzz');
/** Sessions of the fuzz run: each plays about 27 frames (more where a mutation adds some). */
const SESSIONS = sched.count(1200, 40_000);
/** Sessions run at once, each against a fake agent of its own. */
const WORKERS = 8;
/** A worker starts a new fake agent after this many sessions (the helper keeps every connection it saw). */
const SESSIONS_PER_PEER = 50;
/** Handshake bound of a session whose handshake may fail, and of one that must succeed (a busy machine must not fail it). */
const SHORT_HANDSHAKE_MS = 300;
const LONG_HANDSHAKE_MS = 5000;
/** Call timeout where the mutation may leave calls unanswered. */
const SHORT_CALL_MS = 250;
/** Call timeout where the host must cut the peer off at once: never reached unless it fails to. */
const LONG_CALL_MS = 5000;
/** How late past its bound a call, stream or close may settle. */
const SETTLE_SLACK_MS = 2000;
/**
 * Growth over the fuzz run that counts as a leak: of the heap and the buffers
 * outside it (what a kept frame would hold), and of the RSS. The allocator
 * keeps pages the run's ~100 MiB of frames used (47-66 MiB seen here under
 * load), so the RSS bound only catches a leak of native memory on that scale.
 */
const MAX_HEAP_GROWTH_BYTES = 16 * 1024 * 1024;
const MAX_RSS_GROWTH_BYTES = 160 * 1024 * 1024;

const root = protobuf.loadSync(agentProtoPath());
root.resolveAll();
const msgType = (name: string) => root.lookupType(`frakti.agent.v1.${name}`);

// --- the process must never see an uncaught error ---------------------------

const uncaught: unknown[] = [];
const recordUncaught = (e: unknown) => void uncaught.push(e);
before(() => {
  process.on('uncaughtException', recordUncaught);
  process.on('unhandledRejection', recordUncaught);
});
after(() => {
  process.off('uncaughtException', recordUncaught);
  process.off('unhandledRejection', recordUncaught);
});

async function assertNothingUncaught(): Promise<void> {
  // An unhandled rejection is reported after the microtasks of its turn.
  await sleep(20);
  assert.deepEqual(uncaught.map(String), [], 'uncaught exceptions or unhandled rejections in the host');
}

// --- the agent's side of a good session -------------------------------------

interface WireFrame {
  type: number;
  streamId: number;
  payload: Buffer;
}

/** A frame as bytes, whatever its fields: the fuzz writes headers encodeFrame() refuses. */
function rawFrame(f: WireFrame, header: Partial<{ length: number; flags: number; reserved: number }> = {}): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32BE(header.length ?? f.payload.length, 0);
  h.writeUInt32BE(f.streamId >>> 0, 4);
  h.writeUInt8(f.type & 0xff, 8);
  h.writeUInt8(header.flags ?? 0, 9);
  h.writeUInt16BE(header.reserved ?? 0, 10);
  return Buffer.concat([h, f.payload]);
}

const response = (streamId: number, result: Record<string, unknown>): WireFrame => ({ type: FrameType.RESPONSE, streamId, payload: pack('Response', result) });
const data = (streamId: number, text: string): WireFrame => ({ type: FrameType.DATA, streamId, payload: Buffer.from(text) });
const closeFrame = (streamId: number): WireFrame => ({ type: FrameType.CLOSE, streamId, payload: Buffer.alloc(0) });
const event = (ev: Record<string, unknown>): WireFrame => ({ type: FrameType.EVENT, streamId: 0, payload: pack('Event', ev) });
function windowFrame(streamId: number, n: number): WireFrame {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(n, 0);
  return { type: FrameType.WINDOW, streamId, payload };
}

const EXITED_AT_NS = '1700000000000000000';
const PING_DATA = Buffer.from('fuzz');
const SPEC: ProcessSpec = { args: ['cat'], env: [], cwd: '', uid: -1, gid: -1, additionalGids: [], terminal: false, stdin: true };

/** The host's calls, in the order runScript() makes them: a fresh client numbers them 1, 3, 5, ... */
const CALLS = ['version', 'echo', 'exec', 'wait', 'listContainers', 'containerStats', 'guestStats', 'portForward', 'signal', 'attachIo', 'onlineHotplugged', 'startContainer'] as const;
type CallName = (typeof CALLS)[number];
const callId = (name: CallName) => 2 * CALLS.indexOf(name) + 1;
/** Stream ids the good session opens; a fuzz frame for any other even id names an unknown stream. */
const MAX_GOOD_STREAM = 16;

/** What the agent sends after its HELLO in the good session, frame by frame. */
const GOOD_BODY: WireFrame[] = [
  response(callId('version'), { version: { agentVersion: 'fake-1', protocolVersion: PROTOCOL_VERSION, kernelRelease: '6.1.0' } }),
  response(callId('echo'), { ping: { data: PING_DATA } }),
  response(callId('exec'), { started: { pid: 42, io: { stdoutStream: 2, stderrStream: 4, stdinStream: 6 } } }),
  data(2, 'out'),
  data(4, 'err'),
  windowFrame(6, 1000),
  response(callId('wait'), { wait: { exited: false } }),
  closeFrame(2),
  closeFrame(4),
  event({ exit: { containerId: 'c1', execId: 'e1', status: { exitCode: 3, exitedAtNs: EXITED_AT_NS } } }),
  response(callId('listContainers'), {
    listContainers: {
      containers: [
        { id: 'c1', state: 'running', pid: 42, exited: false, runningExecs: ['e1'] },
        { id: 'c2', state: 'exited', pid: 0, exited: true, exit: { exitCode: 137, signal: 'SIGKILL', exitedAtNs: EXITED_AT_NS } },
      ],
    },
  }),
  response(callId('containerStats'), { containerStats: { cpuUsageNs: '5000', memoryUsageBytes: '4096', memoryWorkingSetBytes: '2048', pids: '3', timestampNs: EXITED_AT_NS } }),
  response(callId('guestStats'), { guestStats: { memTotalBytes: '268435456', memAvailableBytes: '134217728', cpus: 1 } }),
  response(callId('portForward'), { portForward: { stream: 8 } }),
  data(8, 'pong'),
  closeFrame(8),
  response(callId('signal'), { error: { errnum: 3, message: 'no such process' } }),
  response(callId('attachIo'), { attachIo: { io: { stdoutStream: 10, stderrStream: 12 } } }),
  data(10, 'again'),
  closeFrame(10),
  closeFrame(12),
  response(callId('onlineHotplugged'), { onlineHotplugged: { cpus: 1, memoryBytes: '134217728' } }),
  response(callId('startContainer'), { started: { pid: 43, io: { stdoutStream: 14, stderrStream: 16 } } }),
  data(14, 'x'),
  closeFrame(14),
  closeFrame(16),
  event({ oom: { containerId: 'c1' } }),
];

const goodHello = (): WireFrame => ({ type: FrameType.HELLO, streamId: 0, payload: pack('Hello', { protocolVersion: PROTOCOL_VERSION, agentVersion: 'fake-1' }) });

// --- hostile protobuf: raw fields appended to a good payload -----------------
// Protobuf merges what comes later: a scalar appended overrides, a repeated
// element adds one, a message merges. So a hostile value reaches any field
// of a good answer by appending the path of messages that leads to it.

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}
const fieldTag = (id: number, wire: number) => varint(BigInt((id << 3) | wire));
const lengthDelimited = (id: number, body: Buffer) => Buffer.concat([fieldTag(id, 2), varint(BigInt(body.length)), body]);

const HOSTILE_NUMBERS = [0n, 1n, 2n, -1n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, -(2n ** 63n)];
const INVALID_UTF8 = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf]);

function hostileString(s: Schedule, room: number): Buffer {
  switch (s.int(9)) {
    case 0: return Buffer.alloc(4097, 'a');
    case 1: return Buffer.alloc(Math.max(0, room), 'b'); // as long as the frame allows
    case 2: return Buffer.from('\0');
    case 3: return Buffer.from('c1\0../x');
    case 4: return Buffer.from('../../../../etc/passwd');
    case 5: return INVALID_UTF8;
    case 6: return Buffer.from('SIG' + 'A'.repeat(14));
    case 7: return Buffer.from('\u202e\ud83d\ude00e1');
    default: return Buffer.alloc(0);
  }
}

/** A value for `field` on the wire: [wire type, bytes after the tag]; sometimes of the wrong wire type. */
function hostileLeaf(s: Schedule, field: protobuf.Field, room: number): [number, Buffer] {
  if (s.random() < 0.15) {
    switch (s.int(5)) {
      case 0: return [0, varint(s.pick(HOSTILE_NUMBERS))];
      case 1: return [2, lengthDelimited(1, INVALID_UTF8).subarray(1)];
      case 2: return [5, Buffer.from([s.int(256), s.int(256), s.int(256), s.int(256)])];
      case 3: return [1, Buffer.alloc(8, 0xff)];
      default: return [3, Buffer.alloc(s.int(200), 0x0b)]; // groups opened and never closed, deeply
    }
  }
  if (field.resolvedType instanceof protobuf.Type) {
    const body = s.pick([
      () => Buffer.alloc(0),
      () => Buffer.from(Array.from({ length: 1 + s.int(64) }, () => s.int(256))),
      () => Buffer.alloc(Math.min(room, 100_000), 0x0b),
      () => lengthDelimited(99, lengthDelimited(99, lengthDelimited(99, Buffer.alloc(3)))),
    ])();
    return [2, Buffer.concat([varint(BigInt(body.length)), body])];
  }
  if (field.type === 'string' || field.type === 'bytes') {
    const body = hostileString(s, room - 16);
    return [2, Buffer.concat([varint(BigInt(body.length)), body])];
  }
  if (s.random() < 0.1) return [0, Buffer.alloc(11, 0xff)]; // a varint longer than ten bytes
  return [0, varint(s.pick(HOSTILE_NUMBERS))];
}

/** Appends one hostile value (or, one time in eight, as many as fill the frame) somewhere in the message of `type`. */
function hostilePayload(s: Schedule, type: protobuf.Type, payload: Buffer): { payload: Buffer; note: string } {
  const path: protobuf.Field[] = [];
  let at: protobuf.Type = type;
  for (let depth = 0; depth < 4; depth++) {
    const field = s.pick(at.fieldsArray);
    path.push(field);
    if (!(field.resolvedType instanceof protobuf.Type) || field.resolvedType.fieldsArray.length === 0 || s.random() < 0.25) break;
    at = field.resolvedType;
  }
  const leaf = path[path.length - 1]!;
  const room = MAX_FRAME_PAYLOAD_BYTES - payload.length - 16 * path.length;
  const [wire, value] = hostileLeaf(s, leaf, room);
  let chunk = Buffer.concat([fieldTag(leaf.id, wire), value]);
  for (let i = path.length - 2; i >= 0; i--) chunk = lengthDelimited(path[i]!.id, chunk);
  const fill = s.random() < 0.125;
  const times = fill ? Math.max(1, Math.floor(room / Math.max(1, chunk.length))) : 1 + s.int(3);
  const note = `${times} x ${path.map((f) => f.name).join('.')} = wire ${wire}, ${value.length} bytes`;
  return { payload: Buffer.concat([payload, ...Array<Buffer>(times).fill(chunk)]), note };
}

// --- mutation plans ------------------------------------------------------------

interface Plan {
  index: number;
  kind: string;
  note: string;
  /** Garbage the agent sends before its session marker. */
  before: Buffer;
  /** Flip a byte of the marker (index into magic + nonce): the marker is then never found. */
  markerFlip?: number;
  hello: Buffer;
  /** Everything after the HELLO. */
  body: Buffer;
  /** Where the bytes are cut into separate writes: of the body, and of what comes before it. */
  cuts: number[];
  preambleCuts: number[];
  frames: number;
  handshake: 'ok' | 'fails' | 'either';
  /** The host must close the channel itself with AGENT_PROTOCOL. */
  violation: boolean;
  peerEnds: boolean;
  callTimeoutMs: number;
}

const RESPONSE_OR_EVENT = GOOD_BODY.map((f, i) => [f, i] as const).filter(([f]) => f.type === FrameType.RESPONSE || f.type === FrameType.EVENT);

/** A stream id the good session never opens: even and past its ids, or odd (a call's). */
function unknownStreamId(s: Schedule): number {
  return s.pick([() => MAX_GOOD_STREAM + 2 + 2 * s.int(1 << 30), () => 2 * s.int(1 << 30) + 1, () => 0])();
}

type Mutation = (s: Schedule, frames: Buffer[]) => { frames: Buffer[]; note: string; violation: boolean };

function insertAt(s: Schedule, frames: Buffer[], b: Buffer): Buffer[] {
  const at = s.int(frames.length + 1);
  return [...frames.slice(0, at), b, ...frames.slice(at)];
}

const MUTATIONS: Record<string, Mutation> = {
  flip(s, frames) {
    const bytes = Buffer.concat(frames);
    const n = 1 + s.int(8);
    for (let i = 0; i < n; i++) bytes[s.int(bytes.length)]! ^= 1 << s.int(8);
    return { frames: [bytes], note: `${n} bits flipped`, violation: false };
  },
  truncate(s, frames) {
    const bytes = Buffer.concat(frames);
    const at = s.int(bytes.length);
    return { frames: [bytes.subarray(0, at)], note: `cut at byte ${at} of ${bytes.length}`, violation: false };
  },
  splice(s, frames) {
    const bytes = Buffer.concat(frames);
    const at = s.int(bytes.length + 1);
    const junk = Buffer.from(Array.from({ length: 1 + s.int(64) }, () => s.int(256)));
    return { frames: [bytes.subarray(0, at), junk, bytes.subarray(at)], note: `${junk.length} random bytes at ${at}`, violation: false };
  },
  header(s, frames) {
    const i = s.int(GOOD_BODY.length);
    const f = GOOD_BODY[i]!;
    const out = [...frames];
    const which = s.pick(['type', 'flags', 'reserved', 'stream', 'length'] as const);
    if (which === 'type') out[i] = rawFrame({ ...f, type: s.pick([0, 9 + s.int(247)]) });
    else if (which === 'flags') out[i] = rawFrame(f, { flags: 1 + s.int(255) });
    else if (which === 'reserved') out[i] = rawFrame(f, { reserved: 1 + s.int(0xffff) });
    else if (which === 'stream') out[i] = rawFrame({ ...f, streamId: s.int(2 ** 32) });
    else out[i] = rawFrame(f, { length: s.int(MAX_FRAME_PAYLOAD_BYTES + 1) });
    return { frames: out, note: `${which} of frame ${i} changed`, violation: which === 'type' || which === 'flags' || which === 'reserved' };
  },
  beyond(s, frames) {
    const length = s.pick([MAX_FRAME_PAYLOAD_BYTES + 1, 0xffffffff, MAX_FRAME_PAYLOAD_BYTES + 1 + s.int(0xffffffff - MAX_FRAME_PAYLOAD_BYTES)]);
    const f = s.pick(GOOD_BODY);
    return { frames: insertAt(s, frames, rawFrame(f, { length })), note: `a header declaring ${length} bytes`, violation: true };
  },
  atBound(s, frames) {
    const variant = s.int(4);
    let f: WireFrame;
    if (variant === 0) {
      // The largest answer there is: a ping of a full frame, to whichever call.
      const probe = MAX_FRAME_PAYLOAD_BYTES - 100;
      const overhead = pack('Response', { ping: { data: Buffer.alloc(probe) } }).length - probe;
      f = response(callId(s.pick(CALLS)), { ping: { data: Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES - overhead, 'p') } });
    } else if (variant === 1) f = { type: FrameType.DATA, streamId: 2, payload: Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES, 'd') };
    else if (variant === 2) f = { type: FrameType.EVENT, streamId: 0, payload: lengthDelimited(15, Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES - 4, 'e')) };
    else f = { type: FrameType.RESPONSE, streamId: callId(s.pick(CALLS)), payload: Buffer.from(Array.from({ length: MAX_FRAME_PAYLOAD_BYTES }, () => s.int(256))) };
    // DATA beyond a DATA frame's size, and an event of no known kind, are violations wherever they come.
    return { frames: insertAt(s, frames, rawFrame(f)), note: `a ${f.payload.length}-byte frame (variant ${variant})`, violation: variant === 1 || variant === 2 };
  },
  unasked(s, frames) {
    const id = unknownStreamId(s);
    const [good] = s.pick(RESPONSE_OR_EVENT);
    return { frames: insertAt(s, frames, rawFrame({ type: FrameType.RESPONSE, streamId: id, payload: good.payload })), note: `a response on stream ${id}, never asked`, violation: true };
  },
  duplicate(s, frames) {
    const i = s.int(GOOD_BODY.length);
    const at = i + 1 + s.int(frames.length - i);
    const f = GOOD_BODY[i]!;
    const out = [...frames.slice(0, at), frames[i]!, ...frames.slice(at)];
    // A second answer to one call, or a second CLOSE, names what is gone; DATA, WINDOW and events may come twice.
    return { frames: out, note: `frame ${i} again at ${at}`, violation: f.type === FrameType.RESPONSE || f.type === FrameType.CLOSE };
  },
  drop(s, frames) {
    const i = s.int(frames.length);
    return { frames: frames.filter((_, j) => j !== i), note: `frame ${i} left out`, violation: false };
  },
  swap(s, frames) {
    const i = s.int(frames.length);
    const j = s.int(frames.length);
    const out = [...frames];
    [out[i], out[j]] = [out[j]!, out[i]!];
    return { frames: out, note: `frames ${i} and ${j} swapped`, violation: false };
  },
  unknownStream(s, frames) {
    const id = unknownStreamId(s);
    const f = s.pick([data(id, 'x'), windowFrame(id, 1 + s.int(1000)), closeFrame(id)]);
    return { frames: insertAt(s, frames, rawFrame(f)), note: `frame type ${f.type} on stream ${id}`, violation: true };
  },
  hostile(s, frames) {
    const [f, i] = s.pick(RESPONSE_OR_EVENT);
    const h = hostilePayload(s, msgType(f.type === FrameType.RESPONSE ? 'Response' : 'Event'), f.payload);
    const out = [...frames];
    out[i] = rawFrame({ ...f, payload: h.payload });
    return { frames: out, note: `frame ${i}: ${h.note}`, violation: false };
  },
  goaway(s, frames) {
    const good = pack('Error', { errnum: 5, message: 'bad frame' });
    const payload = s.random() < 0.5 ? good : hostilePayload(s, msgType('Error'), good).payload;
    return { frames: insertAt(s, frames, rawFrame({ type: FrameType.GOAWAY, streamId: 0, payload })), note: 'GOAWAY', violation: true };
  },
};

function cutsFor(s: Schedule, length: number): number[] {
  const n = s.int(8);
  return Array.from({ length: n }, () => s.int(length + 1)).sort((a, b) => a - b);
}

function makePlan(s: Schedule, index: number): Plan {
  const plan = makeBodyOrSyncPlan(s, index);
  plan.preambleCuts = cutsFor(s, plan.before.length + AGENT_MAGIC.length + 16 + plan.hello.length);
  return plan;
}

function makeBodyOrSyncPlan(s: Schedule, index: number): Plan {
  const good = GOOD_BODY.map((f) => rawFrame(f));
  const base = { index, preambleCuts: [] as number[], before: Buffer.alloc(0), hello: rawFrame(goodHello()), frames: GOOD_BODY.length, handshake: 'ok' as Plan['handshake'], peerEnds: s.random() < 0.5 };
  // One session in eight breaks the handshake rather than the body.
  if (s.random() < 0.125) {
    const body = Buffer.concat(good);
    const plan: Plan = { ...base, kind: 'sync', note: '', body, cuts: cutsFor(s, body.length), violation: false, callTimeoutMs: SHORT_CALL_MS };
    const variant = s.int(5);
    if (variant === 0) {
      // Stale bytes of an earlier session, perhaps with a marker of another nonce: skipped.
      plan.before = Buffer.concat([Buffer.from(Array.from({ length: s.int(65536) }, () => s.int(256))), s.random() < 0.5 ? AGENT_MAGIC : Buffer.alloc(0)]);
      plan.note = `${plan.before.length} bytes before the marker`;
    } else if (variant === 1) {
      plan.markerFlip = s.int(AGENT_MAGIC.length + 16);
      plan.handshake = 'fails';
      plan.note = `marker byte ${plan.markerFlip} flipped`;
    } else if (variant === 2) {
      plan.hello = rawFrame({ ...goodHello(), payload: pack('Hello', { protocolVersion: s.pick([0, 2, 0xffffffff]), agentVersion: 'fake-1' }) });
      plan.handshake = 'fails';
      plan.note = 'HELLO of another protocol version';
    } else if (variant === 3) {
      const h = hostilePayload(s, msgType('Hello'), goodHello().payload);
      plan.hello = rawFrame({ ...goodHello(), payload: h.payload });
      plan.handshake = 'either';
      plan.note = `HELLO: ${h.note}`;
    } else {
      const m = MUTATIONS[s.pick(['flip', 'truncate', 'splice'])]!(s, [plan.hello]);
      plan.hello = Buffer.concat(m.frames);
      plan.handshake = 'either';
      plan.note = `HELLO: ${m.note}`;
    }
    return plan;
  }
  const kind = s.pick(Object.keys(MUTATIONS));
  const m = MUTATIONS[kind]!(s, good);
  const body = Buffer.concat(m.frames);
  return {
    ...base,
    kind,
    note: m.note,
    body,
    cuts: cutsFor(s, body.length),
    frames: Math.max(GOOD_BODY.length, m.frames.length),
    violation: m.violation,
    callTimeoutMs: m.violation ? LONG_CALL_MS : SHORT_CALL_MS,
  };
}

// --- one session ---------------------------------------------------------------

const CALL_CODES = new Set(['AGENT_TIMEOUT', 'AGENT_PROTOCOL', 'AGENT_CLOSED', 'AGENT_CALL']);
const HANDSHAKE_CODES = new Set(['AGENT_TIMEOUT', 'AGENT_PROTOCOL', 'AGENT_CLOSED']);

function assertAgentError(err: unknown, codes: ReadonlySet<string>, what: string): asserts err is AgentError {
  assert.ok(err instanceof AgentError, `${what} rejected with ${String(err)}, not an AgentError`);
  assert.ok(codes.has(err.code), `${what} rejected with code ${err.code}: ${err.message}`);
  assert.ok(err.message.length > 0, `${what} rejected without a message`);
}

/** How `p` settled, as a value. */
function settle<T>(p: Promise<T>): Promise<PromiseSettledResult<T>> {
  return p.then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason }));
}

/** `p`'s value, or a failure naming `what` if it has not settled by `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const EXEC_ID = /^[A-Za-z0-9_-]{1,64}$/;
const isCount = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isDate = (d: unknown) => d instanceof Date && !Number.isNaN(d.getTime());

function checkExit(e: { exitCode: number; signal?: string; exitedAt: Date }, what: string): void {
  assert.ok(Number.isInteger(e.exitCode) && e.exitCode >= 0 && e.exitCode <= 255 + 128, `${what}: exit code ${e.exitCode}`);
  assert.ok(e.signal === undefined || /^SIG[A-Z0-9+]{2,12}$/.test(e.signal), `${what}: signal ${e.signal}`);
  assert.ok(isDate(e.exitedAt), `${what}: exitedAt`);
}

/** What a resolved call may hold, however hostile the peer: the host checked it before handing it on. */
const VALUE_CHECKS: Record<CallName, (v: any) => void> = {
  version: (v) => {
    for (const k of ['agentVersion', 'kernelRelease']) assert.ok(typeof v[k] === 'string' && Buffer.byteLength(v[k]) <= 4096, `version ${k}: ${JSON.stringify(v)}`);
    assert.ok(isCount(v.protocolVersion) && v.protocolVersion <= 0xffffffff, 'version protocolVersion');
  },
  echo: (v) => assert.ok(PING_DATA.equals(v), 'echo came back other than sent'),
  exec: (v) => assert.ok(Number.isInteger(v.pid) && v.pid > 0 && v.pid <= 4194304 && v.stdout && v.stderr, 'exec answer'),
  wait: (v) => checkExit(v, 'wait'),
  listContainers: (v) => {
    assert.ok(Array.isArray(v) && v.length <= 4096, 'listContainers length');
    for (const c of v) {
      assert.ok(CONTAINER_ID.test(c.id) && ['created', 'running', 'exited'].includes(c.state) && isCount(c.pid), `container ${JSON.stringify(c.id)}`);
      assert.ok(c.runningExecs.length <= 1024 && c.runningExecs.every((e: string) => EXEC_ID.test(e)), 'running execs');
      if (c.exit) checkExit(c.exit, 'container exit');
    }
  },
  containerStats: (v) => {
    assert.ok(typeof v.cpuUsageNs === 'bigint' && v.cpuUsageNs >= 0n && v.cpuUsageNs < 2n ** 64n, 'cpuUsageNs');
    for (const k of ['memoryUsageBytes', 'memoryWorkingSetBytes', 'pids']) assert.ok(isCount(v[k]), `containerStats ${k}`);
    assert.ok(isDate(v.timestamp), 'containerStats timestamp');
  },
  guestStats: (v) => {
    for (const k of ['memTotalBytes', 'memAvailableBytes', 'cpus']) assert.ok(isCount(v[k]), `guestStats ${k}`);
  },
  portForward: (v) => assert.ok(v && typeof v.on === 'function', 'portForward stream'),
  signal: (v) => assert.equal(v, undefined),
  attachIo: (v) => assert.ok(v.stdout && v.stderr, 'attachIo streams'),
  onlineHotplugged: (v) => assert.ok(isCount(v.cpus) && isCount(v.memoryBytes), 'onlineHotplugged'),
  startContainer: (v) => assert.ok(Number.isInteger(v.pid) && v.pid > 0 && v.pid <= 4194304, 'startContainer pid'),
};

interface Consumed {
  /** Settles once the stream ended, closed or failed. */
  done: Promise<void>;
  text(): string;
}

/** Reads a stream the host handed out to its end (at most 2 MiB kept). */
function consume(stream: NodeJS.ReadableStream | NodeJS.WritableStream): Consumed {
  const chunks: Buffer[] = [];
  let kept = 0;
  const s = stream as Readable;
  // finished() also sees a stream that ended or closed before we got it (the channel may close first).
  const done = new Promise<void>((resolve) => finished(s, () => resolve()));
  if (typeof s.read === 'function') {
    s.on('data', (c: Buffer) => {
      if (kept < 2 * 1024 * 1024) chunks.push(c);
      kept += c.length;
    });
  }
  return { done, text: () => Buffer.concat(chunks).toString() };
}

interface ScriptRun {
  settled: Map<CallName, Promise<PromiseSettledResult<unknown>>>;
  streams: Map<string, Consumed>;
  ooms: string[];
}

/** Makes the script's calls, in CALLS order; streams of answers are read as they come. */
function runScript(client: AgentClient, timeoutMs: number): ScriptRun {
  const run: ScriptRun = { settled: new Map(), streams: new Map(), ooms: [] };
  client.on('oom', (id: string) => run.ooms.push(id));
  const o = { timeoutMs };
  const io = (name: string) => (v: { stdout: NodeJS.ReadableStream; stderr: NodeJS.ReadableStream; stdin?: NodeJS.WritableStream }) => {
    run.streams.set(`${name}.stdout`, consume(v.stdout));
    run.streams.set(`${name}.stderr`, consume(v.stderr));
    if (v.stdin) run.streams.set(`${name}.stdin`, consume(v.stdin));
    return v;
  };
  const calls: Record<CallName, () => Promise<unknown>> = {
    version: () => client.version(o),
    echo: () => client.echo(PING_DATA, o),
    exec: () => client.exec('c1', 'e1', SPEC, o).then(io('exec')),
    wait: () => client.wait('c1', 'e1'),
    listContainers: () => client.listContainers(o),
    containerStats: () => client.containerStats('c1', o),
    guestStats: () => client.guestStats(o),
    portForward: () =>
      client.portForward(8080, o).then((s) => {
        run.streams.set('portForward', consume(s));
        return s;
      }),
    signal: () => client.signal('c1', '', 'SIGTERM', o),
    attachIo: () => client.attachIo('c1', 'e1', o).then(io('attachIo')),
    onlineHotplugged: () => client.onlineHotplugged(o),
    startContainer: () => client.startContainer('c1', o).then(io('startContainer')),
  };
  for (const name of CALLS) {
    const p = calls[name]();
    run.settled.set(name, settle(p));
  }
  return run;
}

function writeInPieces(conn: PeerConn, bytes: Buffer, cuts: number[]): void {
  let from = 0;
  for (const at of [...cuts, bytes.length]) {
    if (at > from) conn.write(bytes.subarray(from, at));
    from = Math.max(from, at);
  }
}

interface Outcome {
  handshake: boolean;
  closedByHost: string | undefined;
  fulfilled: number;
  rejected: Record<string, number>;
}

/** One session of `plan` against `peer`; throws what the host did wrong. */
async function runSession(peer: FakePeer, plan: Plan): Promise<Outcome> {
  const outcome: Outcome = { handshake: false, closedByHost: undefined, fulfilled: 0, rejected: {} };
  const handshakeMs = plan.handshake === 'ok' ? LONG_HANDSHAKE_MS : SHORT_HANDSHAKE_MS;
  const connecting = connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: handshakeMs });
  connecting.catch(() => {});
  const conn = await peer.next();
  let client: AgentClient | undefined;
  try {
    const nonce = await conn.readHello().catch(() => undefined);
    if (!nonce) {
      // The host's bound ran out while it was still connecting (a busy machine): it hung up before its HELLO.
      const hs = await within(settle(connecting), handshakeMs + SETTLE_SLACK_MS, 'the handshake');
      assert.equal(hs.status, 'rejected', 'the host hung up, yet its handshake succeeded');
      assertAgentError((hs as PromiseRejectedResult).reason, HANDSHAKE_CODES, 'the handshake');
      assert.notEqual(plan.handshake, 'ok', `the handshake failed: ${(hs as PromiseRejectedResult).reason.message}`);
      return outcome;
    }
    const marker = Buffer.concat([AGENT_MAGIC, nonce]);
    if (plan.markerFlip !== undefined) marker[plan.markerFlip]! ^= 0x20;
    writeInPieces(conn, Buffer.concat([plan.before, marker, plan.hello]), plan.preambleCuts);
    const hs = await within(settle(connecting), handshakeMs + SETTLE_SLACK_MS, 'the handshake');
    if (hs.status === 'rejected') {
      assertAgentError(hs.reason, HANDSHAKE_CODES, 'the handshake');
      assert.notEqual(plan.handshake, 'ok', `the handshake failed: ${hs.reason.message}`);
      return outcome;
    }
    client = hs.value;
    outcome.handshake = true;
    assert.notEqual(plan.handshake, 'fails', 'the handshake succeeded with a broken marker or HELLO');
    const closed = once(client, 'close').then(([e]) => e as Error | undefined);
    const run = runScript(client, plan.callTimeoutMs);
    writeInPieces(conn, plan.body, plan.cuts);
    if (plan.peerEnds) conn.sock.end();

    // Every call with a timeout settles by it; wait() has none and settles when the channel closes.
    for (const name of CALLS) {
      if (name !== 'wait') await within(run.settled.get(name)!, plan.callTimeoutMs + SETTLE_SLACK_MS, `call ${name}`);
    }
    if (plan.violation) {
      const closeErr = await within(closed, SETTLE_SLACK_MS, 'the host cutting off a peer that broke the protocol');
      assertAgentError(closeErr, new Set(['AGENT_PROTOCOL']), 'the channel');
      outcome.closedByHost = closeErr.message;
      if (!plan.peerEnds) {
        // The peer sees the host hang up.
        const deadline = Date.now() + SETTLE_SLACK_MS;
        while (!conn.closed && Date.now() < deadline) await sleep(5);
        assert.ok(conn.closed, 'the host kept the connection of a peer that broke the protocol');
      }
    }
    client.close();
    for (const name of CALLS) {
      const r = await within(run.settled.get(name)!, SETTLE_SLACK_MS, `call ${name} after close`);
      if (r.status === 'fulfilled') {
        VALUE_CHECKS[name](r.value);
        outcome.fulfilled++;
      } else {
        assertAgentError(r.reason, CALL_CODES, `call ${name}`);
        outcome.rejected[r.reason.code] = (outcome.rejected[r.reason.code] ?? 0) + 1;
      }
    }
    for (const [name, c] of run.streams) await within(c.done, SETTLE_SLACK_MS, `stream ${name} ending after close`);
    return outcome;
  } finally {
    client?.close();
    conn.sock.destroy();
  }
}

// --- memory ------------------------------------------------------------------------

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memory(): { heap: number; buffers: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers, rss: m.rss };
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

// --- the tests -----------------------------------------------------------------------

/** A client after a good handshake with the fake agent `peer` (a new one when none is given); both go when the test ends. */
async function handshaken(t: { after: (fn: () => unknown) => void }, given?: FakePeer): Promise<{ client: AgentClient; conn: PeerConn; peer: FakePeer }> {
  const peer = given ?? (await startFakePeer());
  if (!given) t.after(() => peer.close());
  const answer = async (c: PeerConn) => (c.sendSync(await c.readHello()), c);
  const [client, conn] = await Promise.all([connectAgent({ kind: 'unix', path: peer.path }, { timeoutMs: 2000 }), peer.next().then(answer)]);
  t.after(() => client.close());
  return { client, conn, peer };
}

test('the good session, played back unchanged, gives every call its answer', async (t) => {
  const { client, conn } = await handshaken(t);
  const run = runScript(client, 2000);
  conn.write(Buffer.concat(GOOD_BODY.map((f) => rawFrame(f))));
  const results: Partial<Record<CallName, PromiseSettledResult<unknown>>> = {};
  for (const name of CALLS) results[name] = await run.settled.get(name)!;
  const value = (name: CallName): any => {
    const r = results[name]!;
    assert.equal(r.status, 'fulfilled', `${name}: ${r.status === 'rejected' ? String(r.reason) : ''}`);
    return (r as PromiseFulfilledResult<unknown>).value;
  };
  assert.deepEqual(value('version'), { agentVersion: 'fake-1', protocolVersion: PROTOCOL_VERSION, kernelRelease: '6.1.0' });
  assert.equal(value('exec').pid, 42);
  assert.equal(value('wait').exitCode, 3);
  assert.deepEqual(value('listContainers').map((c: { id: string; state: string }) => `${c.id} ${c.state}`), ['c1 running', 'c2 exited']);
  assert.equal(value('containerStats').cpuUsageNs, 5000n);
  assert.equal(value('guestStats').memTotalBytes, 268435456);
  assert.deepEqual(value('onlineHotplugged'), { cpus: 1, memoryBytes: 134217728 });
  assert.equal(value('startContainer').pid, 43);
  for (const name of CALLS.filter((n) => n !== 'signal')) VALUE_CHECKS[name](value(name));
  const sig = results.signal!;
  assert.ok(sig.status === 'rejected' && sig.reason instanceof AgentCallError && sig.reason.errnum === 3);
  for (const [name, text] of [['exec.stdout', 'out'], ['exec.stderr', 'err'], ['portForward', 'pong'], ['attachIo.stdout', 'again'], ['startContainer.stdout', 'x']]) {
    const s = run.streams.get(name!)!;
    if (name !== 'portForward') await s.done;
    else await sleep(20);
    assert.equal(s.text(), text, name);
  }
  await sleep(20);
  assert.deepEqual(run.ooms, ['c1']);
  assert.equal(client.closed, false, 'a good session keeps the channel open');
  await assertNothingUncaught();
});

test('the channel closing while wait() is pending rejects the wait, and nothing goes unhandled', async (t) => {
  // Found by this fuzzer: the exit promise wait() keeps for the exit event
  // was rejected by the close with nobody listening, which ends a Node
  // process (the daemon) with an unhandled rejection.
  let peer: FakePeer | undefined;
  for (const answered of [false, true]) {
    const h = await handshaken(t, peer);
    peer = h.peer;
    const { client, conn } = h;
    const w = client.wait('c1', 'e1');
    const req = await conn.readFrame();
    if (answered) conn.sendResponse(req.streamId, { wait: { exited: false } });
    await sleep(20);
    conn.sock.destroy();
    await assert.rejects(w, (e: unknown) => e instanceof AgentError && e.code === 'AGENT_CLOSED');
  }
  await assertNothingUncaught();
});

test('an answer of half a million empty entries is refused without decoding them', async (t) => {
  // Found by this fuzzer: five bytes an entry, a 1 MiB listContainers
  // answer made the host build 200 000 objects (over 100 MB of heap and
  // half a second of its event loop) before its bound of 4096 said no.
  const { client, conn } = await handshaken(t);
  const listed = client.listContainers({ timeoutMs: 5000 });
  const req = await conn.readFrame();
  const entry = lengthDelimited(19, lengthDelimited(1, Buffer.alloc(0)));
  const payload = Buffer.concat(Array<Buffer>(Math.floor(MAX_FRAME_PAYLOAD_BYTES / entry.length)).fill(entry));
  const cpu = process.cpuUsage();
  conn.write(rawFrame({ type: FrameType.RESPONSE, streamId: req.streamId, payload }));
  await assert.rejects(listed, (e: unknown) => e instanceof AgentError && /more than/.test(e.message));
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000;
  // Decoding it all took 300 ms and more; counting up to the bound takes a few.
  assert.ok(cpuMs < 150, `refusing it took ${cpuMs.toFixed(0)} ms of CPU`);
  assert.equal(client.closed, true);
  await assertNothingUncaught();
});

test('a port forward answered in the same breath as a protocol violation still closes, its last bytes kept', async (t) => {
  // Found by this fuzzer: the channel closed before the caller had the
  // stream, so nobody listened for its error; the Duplex got only the end
  // of its readable side, and its writable side waited for an end() that
  // a port-forward copier never sends: the forwarded connection hung.
  const { client, conn } = await handshaken(t);
  const forwarding = client.portForward(8080, { timeoutMs: 2000 });
  const req = await conn.readFrame();
  conn.write(Buffer.concat([response(req.streamId, { portForward: { stream: 8 } }), data(8, 'last words'), data(MAX_GOOD_STREAM + 2, 'x')].map((f) => rawFrame(f))));
  const stream = await forwarding;
  assert.equal(client.closed, true, 'the frame for an unknown stream closed the channel');
  const read = consume(stream);
  await within(read.done, SETTLE_SLACK_MS, 'the port-forward stream closing');
  assert.equal(read.text(), 'last words');
  await assertNothingUncaught();
});

test(`fuzz: ${SESSIONS} sessions of mutated frames from a hostile guest`, { timeout: sched.long ? 60 * 60_000 : 180_000 }, async () => {
  const started = Date.now();
  const tally = { sessions: 0, frames: 0, bytes: 0, handshakeFailed: 0, cutOff: 0, fulfilled: 0, rejected: {} as Record<string, number>, kinds: {} as Record<string, number> };
  let made = 0;
  let failure: Error | undefined;

  /** Runs sessions until `until` plans were made; plans are made in index order (one draw sequence per seed), whichever worker takes them. */
  async function worker(until: number): Promise<void> {
    let peer: FakePeer | undefined;
    let served = 0;
    try {
      while (!failure && made < until) {
        const plan = makePlan(sched, made++);
        if (!peer || served++ >= SESSIONS_PER_PEER) {
          await peer?.close();
          peer = await startFakePeer();
          served = 1;
        }
        try {
          const o = await runSession(peer, plan);
          tally.sessions++;
          // A session whose handshake failed sent its HELLO only.
          tally.frames += o.handshake ? plan.frames + 1 : 1;
          tally.bytes += plan.before.length + plan.hello.length + (o.handshake ? plan.body.length : 0);
          tally.kinds[plan.kind] = (tally.kinds[plan.kind] ?? 0) + 1;
          if (!o.handshake) tally.handshakeFailed++;
          if (o.closedByHost) tally.cutOff++;
          tally.fulfilled += o.fulfilled;
          for (const [c, n] of Object.entries(o.rejected)) tally.rejected[c] = (tally.rejected[c] ?? 0) + n;
        } catch (err) {
          failure ??= new Error(`session ${plan.index} (${plan.kind}: ${plan.note}; peer ${plan.peerEnds ? 'ends' : 'stays'}): ${(err as Error).message}\nreplay with FRAKTI_FAULT_SEED=${sched.seed}`, { cause: err });
        }
      }
    } finally {
      await peer?.close();
    }
  }
  const pool = (until: number) => Promise.all(Array.from({ length: WORKERS }, () => worker(until)));

  // The baseline is taken after a warm-up: the first sessions load code and fill caches.
  await pool(Math.floor(SESSIONS / 10));
  const base = memory();
  await pool(SESSIONS);
  if (failure) throw failure;
  await assertNothingUncaught();
  const end = memory();
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(
    `agent fuzz: ${tally.sessions} sessions, ${tally.frames} frames, ${mib(tally.bytes)} in ${seconds.toFixed(1)} s; ` +
      `heap ${mib(base.heap)} -> ${mib(end.heap)}, buffers ${mib(base.buffers)} -> ${mib(end.buffers)}, rss ${mib(base.rss)} -> ${mib(end.rss)}; ` +
      `handshakes refused ${tally.handshakeFailed}, peers cut off ${tally.cutOff}, calls answered ${tally.fulfilled}, refused ${JSON.stringify(tally.rejected)}; ` +
      `mutations ${JSON.stringify(tally.kinds)}\n`,
  );
  assert.ok(end.heap - base.heap < MAX_HEAP_GROWTH_BYTES, `heap grew by ${mib(end.heap - base.heap)} over the fuzz run`);
  assert.ok(end.buffers - base.buffers < MAX_HEAP_GROWTH_BYTES, `buffers grew by ${mib(end.buffers - base.buffers)} over the fuzz run`);
  assert.ok(end.rss - base.rss < MAX_RSS_GROWTH_BYTES, `RSS grew by ${mib(end.rss - base.rss)} over the fuzz run`);
  // The fuzz reached the host's defences, not only its happy path.
  assert.ok(tally.cutOff > 0 && tally.fulfilled > 0 && (tally.rejected.AGENT_PROTOCOL ?? 0) + (tally.rejected.AGENT_CLOSED ?? 0) > 0, JSON.stringify(tally));
});
