/**
 * Typed errors. Every error the library throws is an {@link InfiniformerError} with a stable
 * `code`, a `retriable` flag (true when trying the same thing again may succeed, as in kafkajs)
 * and an optional `cause`. Subclasses name the kind of failure.
 */

/** Options shared by every error constructor. */
export interface InfiniformerErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** Whether retrying the same operation may succeed. Defaults per subclass. */
  retriable?: boolean;
}

/** Base class: a stable machine-readable `code`, a `retriable` flag and a `cause`. */
export class InfiniformerError extends Error {
  /** Stable identifier, e.g. `ERR_BAD_INPUT`. */
  readonly code: string;
  /** True when retrying may succeed (network hiccup), false for deterministic failures. */
  readonly retriable: boolean;

  constructor(message: string, code = 'ERR_INFINIFORMER', options: InfiniformerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** An argument has the wrong shape, rank, size, type, or holds NaN/Infinity, or is empty. */
export class BadInputError extends InfiniformerError {
  /** The name of the offending argument. */
  readonly argument: string;

  constructor(argument: string, message: string, options: InfiniformerErrorOptions = {}) {
    super(`${argument}: ${message}`, 'ERR_BAD_INPUT', options);
    this.argument = argument;
  }
}

/** A configuration or options object holds an invalid value. */
export class BadConfigError extends InfiniformerError {
  /** The name of the offending option. */
  readonly option: string;

  constructor(option: string, message: string, options: InfiniformerErrorOptions = {}) {
    super(`${option}: ${message}`, 'ERR_BAD_CONFIG', options);
    this.option = option;
  }
}

/** A saved model or state file is missing, truncated, corrupt or of another format version. */
export class ModelFileError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, 'ERR_MODEL_FILE', options);
  }
}

/** A TensorFlow.js backend could not be loaded or lacks something needed. */
export class BackendError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, 'ERR_BACKEND', options);
  }
}

/** An I/O connector (Kafka, file, stdin) failed. Retriable by default: brokers come back. */
export class ConnectorError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}, code = 'ERR_CONNECTOR') {
    super(message, code, { retriable: true, ...options });
  }
}

/**
 * A connection was refused for its security settings: wrong credentials (SASL), or a server
 * certificate not trusted or not matching the host (TLS). Not retriable: trying again with the
 * same settings fails the same way.
 */
export class ConnectionSecurityError extends ConnectorError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, { ...options, retriable: false }, 'ERR_CONNECTION_SECURITY');
  }
}

/**
 * A bounded buffer is full (e.g. an operator's per-key queue): the record was rejected or an
 * older one dropped, by the documented overflow strategy. Retriable: the same record may fit
 * once the backlog drains.
 */
export class OverflowError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, 'ERR_OVERFLOW', { retriable: true, ...options });
  }
}

/** A key state store was used after `close()`. */
export class StoreClosedError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, 'ERR_STORE_CLOSED', options);
  }
}

/** Bytes read back from a state store fail their checksum or framing (disk corruption, a foreign file). */
export class CorruptStateError extends InfiniformerError {
  /** The key whose bytes are corrupt. */
  readonly key: string;

  constructor(key: string, message: string, options: InfiniformerErrorOptions = {}) {
    super(`state of key ${JSON.stringify(key)}: ${message}`, 'ERR_CORRUPT_STATE', options);
    this.key = key;
  }
}

/** The storage under a state store failed (disk full, permissions, the database could not open). */
export class StateStoreError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, 'ERR_STATE_STORE', options);
  }
}

/**
 * A computation could not be compiled into one native TensorFlow graph (a host read inside the
 * traced region, an input of unknown origin, a graph TensorFlow refuses). Callers fall back to
 * eager execution.
 */
export class GraphCompileError extends InfiniformerError {
  constructor(message: string, options: InfiniformerErrorOptions = {}) {
    super(message, 'ERR_GRAPH_COMPILE', options);
  }
}
