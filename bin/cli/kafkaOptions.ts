/**
 * The connection options every Kafka-using command shares: --brokers, --kafka-config (a client
 * properties file) and the KAFKA_* environment variables (connectors/kafka/config.ts).
 */
import { loadKafkaSettings, type KafkaConnectionSettings } from '../../connectors/kafka/config.js';
import { resolveSecurity } from '../../connectors/kafka/security.js';
import { BadConfigError } from '../../src/errors.js';
import { UsageError } from './command.js';

/** Help text of the options, for a command's usage. */
export const KAFKA_CONNECTION_HELP = `  --brokers <list>        Kafka brokers, comma-separated (default: bootstrap.servers of
                          --kafka-config, else $KAFKA_BROKERS, else 127.0.0.1:9092)
  --kafka-config <file>   TLS and SASL settings, a Kafka client properties file:
                            security.protocol=SASL_SSL   (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)
                            sasl.mechanism=SCRAM-SHA-512 (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
                            sasl.username=...  sasl.password=...  (or sasl.jaas.config=...)
                            ssl.ca.location=/path/ca.pem (PEM; also ssl.certificate.location,
                            ssl.key.location, ssl.key.password for mutual TLS)
                          other keys are ignored with a note; see docs/kafka.md. The same
                          settings from the environment (the file wins where both set one):
                          KAFKA_SSL=true, KAFKA_SSL_CA_FILE, KAFKA_SSL_CERT_FILE,
                          KAFKA_SSL_KEY_FILE, KAFKA_SSL_KEY_PASSWORD, KAFKA_SASL_MECHANISM,
                          KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD
`;

/** parseArgs options of the shared flags. */
export const KAFKA_CONNECTION_OPTIONS = {
  brokers: { type: 'string' },
  'kafka-config': { type: 'string' },
} as const;

const BROKER_LIST = /^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$/;

/**
 * The connection of a command from --brokers, --kafka-config and the environment. Bad settings
 * are usage errors (exit 2); keys of the file that were not read are noted on stderr.
 */
export function kafkaConnection(values: { brokers?: string | undefined; 'kafka-config'?: string | undefined }, env: NodeJS.ProcessEnv = process.env): KafkaConnectionSettings {
  let loaded: ReturnType<typeof loadKafkaSettings>;
  try {
    loaded = loadKafkaSettings(values['kafka-config'], env);
    resolveSecurity(loaded.connection); // unreadable or non-PEM files: a usage error now, not a failure later
  } catch (error) {
    if (error instanceof BadConfigError) throw new UsageError(`${values['kafka-config'] === undefined ? 'Kafka environment' : '--kafka-config'}: ${error.message}`);
    throw error;
  }
  if (loaded.ignored.length > 0) process.stderr.write(`${JSON.stringify({ note: `--kafka-config: keys not used by infiniformer: ${loaded.ignored.join(', ')}` })}\n`);
  const connection = { ...loaded.connection, ...(values.brokers !== undefined ? { brokers: values.brokers } : {}) };
  if (connection.brokers !== undefined && !BROKER_LIST.test(connection.brokers.replace(/\s+/g, ''))) {
    const from = values.brokers !== undefined ? '--brokers' : values['kafka-config'] !== undefined ? 'bootstrap.servers (or $KAFKA_BROKERS)' : '$KAFKA_BROKERS';
    throw new UsageError(`${from} must look like host:port[,host:port...], got '${connection.brokers}'`);
  }
  return connection;
}
