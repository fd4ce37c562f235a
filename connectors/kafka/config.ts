/**
 * Kafka connection settings from a client properties file (the format of the Java clients and
 * librdkafka, so an existing `client.properties` works) and from environment variables.
 *
 * Properties read (other keys are ignored and listed; an unknown ssl.*, sasl.* or security.* key
 * is an error, so a JKS truststore or Kerberos is not silently dropped):
 *   bootstrap.servers                  brokers, host:port[,host:port...]
 *   client.id
 *   security.protocol                  PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
 *   sasl.mechanism                     PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
 *   sasl.username, sasl.password       (librdkafka) or
 *   sasl.jaas.config                   (Java) `... required username="u" password="p";`
 *   ssl.ca.location                    CA certificate(s), a PEM file (also ssl.truststore.location
 *                                      with ssl.truststore.type=PEM)
 *   ssl.certificate.location, ssl.key.location, ssl.key.password   client certificate (mutual TLS)
 *   enable.ssl.certificate.verification   false: do not verify the broker (tests only)
 *
 * Environment: KAFKA_BROKERS, KAFKA_SSL (true|false), KAFKA_SSL_CA_FILE, KAFKA_SSL_CERT_FILE,
 * KAFKA_SSL_KEY_FILE, KAFKA_SSL_KEY_PASSWORD, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
 * KAFKA_SASL_PASSWORD. A setting in the file wins over the same one in the environment.
 */
import { readFileSync } from 'node:fs';
import { BadConfigError } from '../../src/errors.js';
import { SASL_MECHANISMS, type KafkaSasl, type KafkaSsl, type SaslMechanism } from './security.js';

const PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'] as const;
type Protocol = (typeof PROTOCOLS)[number];

/** One source's settings, before merging. */
export interface KafkaSettings {
  brokers?: string;
  clientId?: string;
  protocol?: Protocol;
  /** KAFKA_SSL: TLS on or off when no protocol is named. */
  ssl?: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  keyPassword?: string;
  verify?: boolean;
  mechanism?: string;
  /** The login module of sasl.jaas.config, checked against the mechanism. */
  jaasModule?: 'plain' | 'scram';
  username?: string;
  password?: string;
}

/** What a Kafka-using command passes to the connectors. */
export interface KafkaConnectionSettings {
  brokers?: string;
  clientId?: string;
  ssl?: boolean | KafkaSsl;
  sasl?: KafkaSasl;
}

/** Parses Java properties text: `key=value`, `key: value` or `key value`, `#`/`!` comments, `\` continuations and escapes. */
export function parseProperties(text: string): Map<string, string> {
  const result = new Map<string, string>();
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    // A line ending in an odd number of backslashes continues on the next one (leading blanks dropped).
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!.replace(/^\s+/, '');
    const sep = /^((?:\\.|[^\\:=\s])*)\s*[:=]?\s*/.exec(line)!;
    result.set(unescape(sep[1]!), unescape(line.slice(sep[0].length)));
  }
  return result;
}

function unescape(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, c: string) =>
    c.length === 5 ? String.fromCharCode(parseInt(c.slice(1), 16)) : c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c === 'f' ? '\f' : c,
  );
}

/** username and password of a JAAS line for Kafka's PLAIN or SCRAM login module. */
export function parseJaas(config: string, option = 'sasl.jaas.config'): { module: 'plain' | 'scram'; username?: string; password?: string } {
  const head = /^\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\b/.exec(config);
  if (head === null) throw new BadConfigError(option, `expected '<LoginModule> required username="..." password="...";', got ${JSON.stringify(config)}`);
  const module = head[1]!.endsWith('PlainLoginModule') ? 'plain' : head[1]!.endsWith('ScramLoginModule') ? 'scram' : undefined;
  if (module === undefined) throw new BadConfigError(option, `login module ${head[1]} is not supported (PlainLoginModule or ScramLoginModule)`);
  const fields: Record<string, string> = {};
  const pair = /(\w+)\s*=\s*(?:"((?:\\.|[^"\\])*)"|([^\s;"]+))/g;
  for (let m = pair.exec(config.slice(head[0].length)); m !== null; m = pair.exec(config.slice(head[0].length))) {
    fields[m[1]!] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return { module, ...(fields['username'] !== undefined ? { username: fields['username'] } : {}), ...(fields['password'] !== undefined ? { password: fields['password'] } : {}) };
}

const bool = (option: string, value: string): boolean => {
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new BadConfigError(option, `must be true or false, got ${JSON.stringify(value)}`);
};

const protocolOf = (option: string, value: string): Protocol => {
  const p = value.trim().toUpperCase();
  if (!(PROTOCOLS as readonly string[]).includes(p)) throw new BadConfigError(option, `must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(value)}`);
  return p as Protocol;
};

/** The settings of a properties map; `ignored` lists the keys not read. */
export function settingsFromProperties(props: Map<string, string>, source = 'kafka config'): { settings: KafkaSettings; ignored: string[] } {
  const s: KafkaSettings = {};
  const ignored: string[] = [];
  const at = (key: string) => `${source}: ${key}`;
  for (const [key, value] of props) {
    switch (key) {
      case 'bootstrap.servers': s.brokers = value; break;
      case 'client.id': s.clientId = value; break;
      case 'security.protocol': s.protocol = protocolOf(at(key), value); break;
      case 'sasl.mechanism': case 'sasl.mechanisms': s.mechanism = value.trim(); break;
      case 'sasl.username': s.username = value; break;
      case 'sasl.password': s.password = value; break;
      case 'sasl.jaas.config': {
        const jaas = parseJaas(value, at(key));
        s.jaasModule = jaas.module;
        s.username ??= jaas.username;
        s.password ??= jaas.password;
        break;
      }
      case 'ssl.ca.location': s.caFile = value; break;
      case 'ssl.truststore.location': s.caFile = value; break;
      case 'ssl.truststore.type':
      case 'ssl.keystore.type':
        if (value.trim().toUpperCase() !== 'PEM') throw new BadConfigError(at(key), `only PEM files are supported, got ${value} (convert with keytool / openssl)`);
        break;
      case 'ssl.certificate.location': s.certFile = value; break;
      case 'ssl.key.location': s.keyFile = value; break;
      case 'ssl.key.password': s.keyPassword = value; break;
      case 'enable.ssl.certificate.verification': s.verify = bool(at(key), value); break;
      default:
        if (/^(ssl|sasl|security)\./.test(key)) throw new BadConfigError(at(key), 'unsupported security setting (see docs/kafka.md for the ones read)');
        ignored.push(key);
    }
  }
  return { settings: s, ignored };
}

/** Reads a properties file; BadConfigError if it cannot be read or holds a bad value. */
export function settingsFromFile(path: string): { settings: KafkaSettings; ignored: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new BadConfigError('kafka config', `cannot read '${path}': ${(error as Error).message}`, { cause: error });
  }
  return settingsFromProperties(parseProperties(text), path);
}

/** Settings from KAFKA_* environment variables (empty ones count as unset). */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): KafkaSettings {
  const v = (name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const s: KafkaSettings = {};
  const set = <K extends keyof KafkaSettings>(key: K, value: KafkaSettings[K] | undefined) => {
    if (value !== undefined) s[key] = value;
  };
  set('brokers', v('KAFKA_BROKERS'));
  const ssl = v('KAFKA_SSL');
  set('ssl', ssl === undefined ? undefined : bool('KAFKA_SSL', ssl));
  set('caFile', v('KAFKA_SSL_CA_FILE'));
  set('certFile', v('KAFKA_SSL_CERT_FILE'));
  set('keyFile', v('KAFKA_SSL_KEY_FILE'));
  set('keyPassword', v('KAFKA_SSL_KEY_PASSWORD'));
  set('mechanism', v('KAFKA_SASL_MECHANISM'));
  set('username', v('KAFKA_SASL_USERNAME'));
  set('password', v('KAFKA_SASL_PASSWORD'));
  return s;
}

/** Turns merged settings into connector options; BadConfigError for contradictions. */
export function connectionFromSettings(s: KafkaSettings): KafkaConnectionSettings {
  const tlsFiles = s.caFile !== undefined || s.certFile !== undefined || s.keyFile !== undefined || s.verify !== undefined;
  const saslGiven = s.mechanism !== undefined || s.username !== undefined || s.password !== undefined;
  const protocol = s.protocol;
  const useTls = protocol !== undefined ? protocol === 'SSL' || protocol === 'SASL_SSL' : (s.ssl ?? tlsFiles);
  const useSasl = protocol !== undefined ? protocol.startsWith('SASL_') : saslGiven;
  if (!useTls && tlsFiles) throw new BadConfigError('ssl', `TLS files are set but the connection is ${protocol ?? 'plaintext (KAFKA_SSL=false)'}`);
  if (!useSasl && saslGiven) throw new BadConfigError('sasl', `SASL settings are set but security.protocol is ${protocol ?? 'PLAINTEXT'}`);
  const out: KafkaConnectionSettings = {};
  if (s.brokers !== undefined) out.brokers = s.brokers;
  if (s.clientId !== undefined) out.clientId = s.clientId;
  if (useTls) {
    const ssl: KafkaSsl = {};
    if (s.caFile !== undefined) ssl.ca = s.caFile;
    if (s.certFile !== undefined) ssl.cert = s.certFile;
    if (s.keyFile !== undefined) ssl.key = s.keyFile;
    if (s.keyPassword !== undefined) ssl.passphrase = s.keyPassword;
    if (s.verify !== undefined) ssl.rejectUnauthorized = s.verify;
    out.ssl = Object.keys(ssl).length === 0 ? true : ssl;
  }
  if (useSasl) {
    if (s.mechanism === undefined) throw new BadConfigError('sasl.mechanism', `is required with SASL (one of ${SASL_MECHANISMS.map((m) => m.toUpperCase()).join(', ')})`);
    const mechanism = s.mechanism.toLowerCase();
    if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) throw new BadConfigError('sasl.mechanism', `must be one of ${SASL_MECHANISMS.map((m) => m.toUpperCase()).join(', ')}, got ${JSON.stringify(s.mechanism)}`);
    if (s.jaasModule !== undefined && (s.jaasModule === 'plain') !== (mechanism === 'plain')) {
      throw new BadConfigError('sasl.jaas.config', `its ${s.jaasModule === 'plain' ? 'PlainLoginModule' : 'ScramLoginModule'} does not match sasl.mechanism ${s.mechanism}`);
    }
    if (s.username === undefined || s.password === undefined) throw new BadConfigError(s.username === undefined ? 'sasl.username' : 'sasl.password', 'is required with SASL (sasl.username/sasl.password, sasl.jaas.config, or KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD)');
    out.sasl = { mechanism: mechanism as SaslMechanism, username: s.username, password: s.password };
  }
  return out;
}

/**
 * The connection settings of a command: the properties file (if any) over the environment.
 * `ignored`: keys of the file that were not read.
 */
export function loadKafkaSettings(file?: string, env: NodeJS.ProcessEnv = process.env): { connection: KafkaConnectionSettings; ignored: string[] } {
  const fromEnv = settingsFromEnv(env);
  const fromFile = file === undefined ? { settings: {}, ignored: [] } : settingsFromFile(file);
  return { connection: connectionFromSettings({ ...fromEnv, ...fromFile.settings }), ignored: fromFile.ignored };
}
