/**
 * TLS and SASL for every Kafka client the connectors build: typed options, their validation
 * (PEM text or file paths read once), and errors that say what to fix.
 *
 * kafkajs retries every connection error, a certificate the client does not trust included:
 * with the default retry policy a wrong CA would look like a hang of about two minutes. Loading
 * this module marks certificate failures non-retriable, so they fail at once.
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import { BadConfigError, ConnectionSecurityError } from '../../src/errors.js';

/** SASL mechanisms the connectors support. */
export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

/** SASL credentials. PLAIN sends the password as is: use it over TLS only. */
export interface KafkaSasl {
  mechanism: SaslMechanism;
  username: string;
  password: string;
}

/** TLS settings. Each certificate or key is PEM text or the path of a PEM file. */
export interface KafkaSsl {
  /** Certificate authorities to trust (default: Node's built-in roots). */
  ca?: string | string[];
  /** Client certificate chain, for brokers that ask for one (mutual TLS); needs `key`. */
  cert?: string;
  /** The client certificate's private key; needs `cert`. */
  key?: string;
  /** Passphrase of an encrypted `key`. */
  passphrase?: string;
  /** Verify the broker's certificate and host name. Default true; false only for tests. */
  rejectUnauthorized?: boolean;
}

/** What kafkajs takes. */
export interface ResolvedSecurity {
  ssl?: ConnectionOptions | boolean;
  sasl?: SASLOptions;
}

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;

/** PEM text as given, or the contents of the PEM file at that path. */
export function pemOf(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new BadConfigError(option, `must be PEM text or the path of a PEM file, got ${JSON.stringify(value)}`);
  if (PEM.test(value)) return value;
  let text: string;
  try {
    if (!statSync(value).isFile()) throw new Error('not a regular file');
    text = readFileSync(value, 'utf8');
  } catch (error) {
    throw new BadConfigError(option, `cannot read PEM file '${value}': ${(error as Error).message}`, { cause: error });
  }
  if (!PEM.test(text)) throw new BadConfigError(option, `'${value}' holds no PEM block (-----BEGIN ...-----)`);
  return text;
}

function resolveSsl(ssl: boolean | KafkaSsl | undefined): ConnectionOptions | boolean | undefined {
  if (ssl === undefined || typeof ssl === 'boolean') return ssl;
  if (typeof ssl !== 'object' || ssl === null) throw new BadConfigError('ssl', `must be true, false or an object, got ${JSON.stringify(ssl)}`);
  const known = new Set(['ca', 'cert', 'key', 'passphrase', 'rejectUnauthorized']);
  for (const name of Object.keys(ssl)) if (!known.has(name)) throw new BadConfigError(`ssl.${name}`, `unknown option (known: ${[...known].join(', ')})`);
  if ((ssl.cert === undefined) !== (ssl.key === undefined)) throw new BadConfigError(ssl.cert === undefined ? 'ssl.cert' : 'ssl.key', 'a client certificate needs both ssl.cert and ssl.key');
  if (ssl.rejectUnauthorized !== undefined && typeof ssl.rejectUnauthorized !== 'boolean') throw new BadConfigError('ssl.rejectUnauthorized', `must be a boolean, got ${JSON.stringify(ssl.rejectUnauthorized)}`);
  if (ssl.passphrase !== undefined && typeof ssl.passphrase !== 'string') throw new BadConfigError('ssl.passphrase', 'must be a string');
  const options: ConnectionOptions = { rejectUnauthorized: ssl.rejectUnauthorized ?? true };
  if (ssl.ca !== undefined) {
    const list = Array.isArray(ssl.ca) ? ssl.ca : [ssl.ca];
    if (list.length === 0) throw new BadConfigError('ssl.ca', 'is empty');
    options.ca = list.map((ca, i) => pemOf(Array.isArray(ssl.ca) ? `ssl.ca[${i}]` : 'ssl.ca', ca));
  }
  if (ssl.cert !== undefined) options.cert = pemOf('ssl.cert', ssl.cert);
  if (ssl.key !== undefined) options.key = pemOf('ssl.key', ssl.key);
  if (ssl.passphrase !== undefined) options.passphrase = ssl.passphrase;
  return options;
}

function resolveSasl(sasl: KafkaSasl | undefined): SASLOptions | undefined {
  if (sasl === undefined) return undefined;
  if (typeof sasl !== 'object' || sasl === null) throw new BadConfigError('sasl', 'must be an object { mechanism, username, password }');
  const mechanism = typeof sasl.mechanism === 'string' ? sasl.mechanism.toLowerCase() : sasl.mechanism;
  if (!(SASL_MECHANISMS as readonly unknown[]).includes(mechanism)) throw new BadConfigError('sasl.mechanism', `must be one of ${SASL_MECHANISMS.join(', ')}, got ${JSON.stringify(sasl.mechanism)}`);
  for (const field of ['username', 'password'] as const) {
    if (typeof sasl[field] !== 'string' || sasl[field] === '') throw new BadConfigError(`sasl.${field}`, `is required with sasl.mechanism ${mechanism as string} (a non-empty string)`);
  }
  return { mechanism: mechanism as SaslMechanism, username: sasl.username, password: sasl.password };
}

/** Validates `ssl` and `sasl` and reads the PEM files; throws {@link BadConfigError}. */
export function resolveSecurity(connection: { ssl?: boolean | KafkaSsl; sasl?: KafkaSasl }): ResolvedSecurity {
  const ssl = resolveSsl(connection.ssl);
  const sasl = resolveSasl(connection.sasl);
  return { ...(ssl !== undefined ? { ssl } : {}), ...(sasl !== undefined ? { sasl } : {}) };
}

/** Node's codes for a broker certificate that cannot be verified (tls.TLSSocket 'error'). */
const CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE', 'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** OpenSSL alerts by which a broker refuses the client's certificate (none given, unknown CA, ...). */
const CLIENT_CERTIFICATE_ALERT = /^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|ACCESS_DENIED)$/;

/** A certificate failure on either side: retrying cannot help. */
const isCertificateFailure = (code: string | undefined): code is string => code !== undefined && (CERTIFICATE_CODES.has(code) || CLIENT_CERTIFICATE_ALERT.test(code));

interface KafkaJsErrorLike {
  name?: string;
  message?: string;
  code?: string;
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
}

/** The error and its causes (kafkajs wraps the last attempt's error in `originalError`). */
function* causes(error: unknown): Generator<KafkaJsErrorLike> {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 8; depth++) {
    const like = e as KafkaJsErrorLike;
    yield like;
    e = like.originalError ?? like.cause;
  }
}

// kafkajs 2.2 wraps every socket error in a retriable KafkaJSConnectionError; a certificate
// failure is marked non-retriable on its way out, so the client's retrier bails at once. Both
// methods: a broker refusing the client's certificate answers after the client's side of the
// handshake is done (TLS 1.3), so the alert fails the first request, not the connect.
{
  const require = createRequire(import.meta.url);
  type Method = (...args: unknown[]) => Promise<unknown>;
  const Connection = require('kafkajs/src/network/connection.js') as { prototype: Record<'connect' | 'send', Method> };
  for (const name of ['connect', 'send'] as const) {
    const original = Connection.prototype[name];
    Connection.prototype[name] = async function failingFastOnCertificates(this: unknown, ...args: unknown[]) {
      try {
        return await original.apply(this, args);
      } catch (error) {
        const e = error as KafkaJsErrorLike;
        if (e?.name === 'KafkaJSConnectionError' && isCertificateFailure(e.code)) e.retriable = false;
        throw error;
      }
    };
  }
}

/**
 * A {@link ConnectionSecurityError} that says what to fix when `error` (or a cause) is an
 * authentication or certificate failure; undefined otherwise.
 */
export function securityError(error: unknown, connection: { sasl?: KafkaSasl; brokers?: string | string[] } = {}): ConnectionSecurityError | undefined {
  for (const e of causes(error)) {
    if (e instanceof ConnectionSecurityError) return e;
    if (e.name === 'KafkaJSSASLAuthenticationError') {
      const who = connection.sasl ? ` (mechanism ${connection.sasl.mechanism}, user '${connection.sasl.username}')` : '';
      return new ConnectionSecurityError(`Kafka SASL authentication failed${who}: check the user name, password and mechanism; the broker said: ${e.message ?? ''}`, { cause: error });
    }
    if (e.name === 'KafkaJSConnectionError' && e.code !== undefined && CLIENT_CERTIFICATE_ALERT.test(e.code)) {
      return new ConnectionSecurityError(`TLS: the Kafka broker refused the client certificate (${e.code}): give one it trusts (ssl.cert and ssl.key)`, { cause: error });
    }
    if (e.name === 'KafkaJSConnectionError' && isCertificateFailure(e.code)) {
      const fix = e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'connect by a host name or IP address the certificate names' : 'pass the certificate authority that signed it (ssl.ca)';
      return new ConnectionSecurityError(`TLS: the Kafka broker's certificate was rejected (${e.code}: ${e.message ?? ''}); ${fix}`, { cause: error });
    }
  }
  return undefined;
}
