// Structured logging (winston) and per-module debug tracing.
// FRAKTI_TRACE=qmp,agent (or `all`) switches on trace lines for those modules.
import winston from 'winston';

export type Level = 'error' | 'warn' | 'info' | 'debug';

const traced = new Set((process.env.FRAKTI_TRACE ?? '').split(',').map((s) => s.trim()).filter(Boolean));

let root: winston.Logger = winston.createLogger({
  level: process.env.FRAKTI_LOG_LEVEL ?? 'warn',
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Stream({ stream: process.stderr })],
});

/** Replace the process-wide logger level (the daemon's --log-level). */
export function setLogLevel(level: Level): void {
  root.level = level;
}

export function setLogger(logger: winston.Logger): void {
  root = logger;
}

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Only printed when FRAKTI_TRACE names this module. */
  trace(msg: string, fields?: Record<string, unknown>): void;
}

export function logger(module: string): Logger {
  const on = traced.has(module) || traced.has('all');
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => root.log(level, msg, { module, ...fields });
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    trace: (m, f) => {
      if (on) process.stderr.write(`trace ${module}: ${m}${f ? ' ' + JSON.stringify(f) : ''}\n`);
    },
  };
}
