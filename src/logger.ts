/**
 * A small structured, namespaced logger. The library never writes to `console` directly:
 * everything goes through a {@link Logger}, which users can replace with their own sink
 * (pino, winston, a test collector) via {@link setLogSink}. The level comes from
 * `INFINIFORMER_LOG_LEVEL` (error | warn | info | debug | nothing), default `info`.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** One structured log entry. */
export interface LogEntry {
  level: LogLevel;
  namespace: string;
  message: string;
  /** ISO-8601 time of the entry. */
  timestamp: string;
  /** Extra structured fields. */
  fields: Record<string, unknown>;
}

/** Receives every entry at or above the current level. */
export type LogSink = (entry: LogEntry) => void;

export interface Logger {
  readonly namespace: string;
  error(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose namespace is `parent:name`. */
  child(name: string): Logger;
}

const SEVERITY: Record<LogLevel | 'nothing', number> = { nothing: 0, error: 1, warn: 2, info: 3, debug: 4 };

function levelFromEnv(): LogLevel | 'nothing' {
  const raw = (process.env['INFINIFORMER_LOG_LEVEL'] ?? 'info').toLowerCase();
  return raw in SEVERITY ? (raw as LogLevel | 'nothing') : 'info';
}

/** Default sink: one JSON line per entry on stderr, so stdout stays free for data. */
export const jsonLineSink: LogSink = (entry) => {
  const { fields, ...rest } = entry;
  process.stderr.write(`${JSON.stringify({ ...rest, ...fields })}\n`);
};

let sink: LogSink = jsonLineSink;
let level: LogLevel | 'nothing' = levelFromEnv();

/** Replace where log entries go (returns the previous sink so it can be restored). */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

/** Set the minimum level (overrides `INFINIFORMER_LOG_LEVEL`). */
export function setLogLevel(next: LogLevel | 'nothing'): void {
  level = next;
}

export function getLogLevel(): LogLevel | 'nothing' {
  return level;
}

/** A logger for `namespace` (e.g. `infiniformer:backend`). */
export function createLogger(namespace: string): Logger {
  const emit = (entryLevel: LogLevel, message: string, fields: Record<string, unknown> = {}): void => {
    if (SEVERITY[entryLevel] > SEVERITY[level]) return;
    sink({ level: entryLevel, namespace, message, timestamp: new Date().toISOString(), fields });
  };
  return {
    namespace,
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    child: (name) => createLogger(`${namespace}:${name}`),
  };
}

/** The library's root logger. */
export const rootLogger = createLogger('infiniformer');
