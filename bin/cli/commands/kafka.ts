/**
 * `infiniformer kafka up|down|status`: the local single-node Apache Kafka of `scripts/kafka.ts`
 * (the same as `npm run kafka:up` / `kafka:down`).
 */
import { kafkaClient, kafkaFailure } from '../../../connectors/kafka/client.js';
import type { KafkaConnectionSettings } from '../../../connectors/kafka/config.js';
import { CliError, HELP, UsageError, parse } from '../command.js';
import { KAFKA_CONNECTION_OPTIONS, kafkaConnection } from '../kafkaOptions.js';
import type { Command } from '../command.js';

const usage = `Usage: infiniformer kafka <up|down|status> [--brokers <host:port,...>] [--kafka-config <file>]

  up       install (cached, with Maven) and start a local single-node Kafka 3.9 (KRaft) on
           127.0.0.1:$KAFKA_PORT (default 9092), unless a broker already answers there
  down     stop the broker started by 'up' and delete its data
  status   exit 0 if a broker answers on --brokers, 1 if none does

Options:
  --brokers <list>       brokers to probe for 'status' and 'up' (default bootstrap.servers
                         of --kafka-config, $KAFKA_BROKERS or 127.0.0.1:$KAFKA_PORT)
  --kafka-config <file>  TLS / SASL settings for 'status' (a Kafka client properties file,
                         as for 'infiniformer stream'; also the KAFKA_SSL*/KAFKA_SASL_* variables):
                         a rejected password or certificate is reported as such
  -h, --help             this text

Needs Java 17+ and Maven for 'up'. Environment: KAFKA_PORT, KAFKA_HEAP, KAFKA_DATA_DIR,
INFINIFORMER_KAFKA_HOME (jar cache).
Exit codes: 0 ok, 1 failure (no broker answers, Java or Maven missing), 2 bad arguments.
`;

const command: Command = {
  name: 'kafka',
  summary: 'start, stop or probe the local Kafka broker (up | down | status)',
  usage,
  async run(argv) {
    const { values, positionals } = parse({ args: argv, allowPositionals: true, options: { ...HELP, ...KAFKA_CONNECTION_OPTIONS } });
    if (values.help === true) {
      process.stdout.write(usage);
      return 0;
    }
    const [action, ...extra] = positionals;
    if (action === undefined) throw new UsageError('missing action: up, down or status');
    if (!['up', 'down', 'status'].includes(action)) throw new UsageError(`unknown action '${action}': use up, down or status`);
    if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
    const port = Number(process.env['KAFKA_PORT'] ?? 9092);
    const connection = kafkaConnection(values);
    const brokers = connection.brokers ?? `127.0.0.1:${port}`;
    const kafka = await import('../../../scripts/kafka.js');
    if (action === 'status') {
      if (connection.ssl !== undefined || connection.sasl !== undefined) {
        await probeSecure({ ...connection, brokers });
      } else if (!(await kafka.brokerAnswers(brokers))) {
        throw new CliError(`no broker answers on ${brokers}`);
      }
      process.stdout.write(`a broker answers on ${brokers}\n`);
      return 0;
    }
    if (action === 'up') {
      if (await kafka.brokerAnswers(brokers)) {
        process.stdout.write(`a broker already answers on ${brokers}\n`);
        return 0;
      }
      try {
        const b = await kafka.startBroker();
        process.stdout.write(`broker pid ${b.pid} ready on ${b.brokers} (data ${b.dataDir})\n`);
        return 0;
      } catch (error) {
        throw new CliError((error as Error).message.replace(/^\[kafka\] /, ''), { cause: error });
      }
    }
    const stopped = await kafka.stopBroker();
    process.stdout.write(stopped ? 'broker stopped\n' : "no broker started by 'kafka up' was running\n");
    return 0;
  },
};

/** Connects with TLS / SASL and asks for the cluster; the error says why not (credentials, certificate, unreachable). */
async function probeSecure(connection: KafkaConnectionSettings): Promise<void> {
  const admin = kafkaClient({ ...connection, clientId: 'infiniformer-probe', retry: { retries: 1, maxRetryTime: 1000 } }).admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (error) {
    throw new CliError(kafkaFailure(`no broker answers on ${connection.brokers ?? ''}`, error, connection).message, { cause: error });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

export default command;
