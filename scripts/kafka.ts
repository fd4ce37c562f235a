/**
 * A local single-node Apache Kafka (KRaft) for development, tests and benchmarks.
 *
 *   tsx scripts/kafka.ts up            install (cached) + format + start, wait until ready
 *   tsx scripts/kafka.ts down          stop the broker started by `up` and delete its data
 *   tsx scripts/kafka.ts status        print whether a broker answers on KAFKA_BROKERS
 *   tsx scripts/kafka.ts run -- CMD    start a broker if none answers, run CMD with KAFKA_BROKERS
 *                                      set, stop the broker only if this command started it
 *
 * Environment: KAFKA_PORT (default 9092), KAFKA_CONTROLLER_PORT (default KAFKA_PORT + 1),
 * KAFKA_HEAP (default 512m), INFINIFORMER_KAFKA_HOME (jar cache, default
 * ~/.cache/infiniformer/kafka), KAFKA_DATA_DIR (default <repo>/.kafka/<port>).
 *
 * Jars come from Maven Central through a throwaway pom and `mvn dependency:copy-dependencies`;
 * the broker and controller listen on 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KAFKA_VERSION = '3.9.1';
const SCALA_VERSION = '2.13';
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface BrokerOptions {
  /** PLAINTEXT port on 127.0.0.1. Default: env KAFKA_PORT or 9092. */
  port?: number;
  /** KRaft controller port on 127.0.0.1. Default: env KAFKA_CONTROLLER_PORT or port + 1. */
  controllerPort?: number;
  /** Log directory, properties, pid file. Default: env KAFKA_DATA_DIR or <repo>/.kafka/<port>. */
  dataDir?: string;
  /** JVM max heap. Default: env KAFKA_HEAP or '512m' (the machine is shared). */
  heap?: string;
  /** How long to wait for the broker to answer. Default 90 s. */
  readyTimeoutMs?: number;
  /** Also listen with SASL_SSL (for security tests); the PLAINTEXT listener stays for KRaft and probes. */
  saslSsl?: SaslSslListener;
  /** Also listen with SSL requiring client certificates (mutual TLS, no SASL). */
  mutualTls?: MutualTlsListener;
}

/** An SSL listener on 127.0.0.1 that accepts only clients with a certificate signed by `clientCaPem`. */
export interface MutualTlsListener {
  port: number;
  /** As for {@link SaslSslListener}. */
  keystorePem: string;
  /** PEM file of the CA(s) whose client certificates are accepted. */
  clientCaPem: string;
}

/**
 * An SASL_SSL listener on 127.0.0.1 accepting PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for the
 * same users (PLAIN from the JAAS config, SCRAM credentials written at format time).
 */
export interface SaslSslListener {
  port: number;
  /** A PEM file holding the broker's unencrypted PKCS#8 private key and its certificate chain. */
  keystorePem: string;
  /** User name -> password. */
  users: Record<string, string>;
}

export interface RunningBroker {
  /** `127.0.0.1:<port>` */
  brokers: string;
  port: number;
  controllerPort: number;
  dataDir: string;
  pid: number;
}

type ResolvedOptions = Required<Omit<BrokerOptions, 'saslSsl' | 'mutualTls'>> & Pick<BrokerOptions, 'saslSsl' | 'mutualTls'>;

function resolveOptions(options: BrokerOptions = {}): ResolvedOptions {
  const port = options.port ?? Number(process.env.KAFKA_PORT ?? 9092);
  const controllerPort = options.controllerPort ?? Number(process.env.KAFKA_CONTROLLER_PORT ?? port + 1);
  return {
    port,
    controllerPort,
    dataDir: options.dataDir ?? process.env.KAFKA_DATA_DIR ?? join(REPO_ROOT, '.kafka', String(port)),
    heap: options.heap ?? process.env.KAFKA_HEAP ?? '512m',
    readyTimeoutMs: options.readyTimeoutMs ?? 90_000,
    ...(options.saslSsl ? { saslSsl: options.saslSsl } : {}),
    ...(options.mutualTls ? { mutualTls: options.mutualTls } : {}),
  };
}

/** Where the jars are cached (shared by every clone on the machine). */
export function kafkaHome(): string {
  return process.env.INFINIFORMER_KAFKA_HOME ?? join(homedir(), '.cache', 'infiniformer', 'kafka', KAFKA_VERSION);
}

/** Downloads the broker's jars once (Maven Central, via mvn); later calls reuse the cache. */
export function installKafka(): string {
  const home = kafkaHome();
  const lib = join(home, 'lib');
  const marker = join(lib, `kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar`);
  if (existsSync(marker)) return lib;
  mkdirSync(home, { recursive: true });
  const dependency = (g: string, a: string, v: string) =>
    `<dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
  writeFileSync(
    join(home, 'pom.xml'),
    `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>local.infiniformer</groupId><artifactId>kafka-runtime</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>
${dependency('org.apache.kafka', `kafka_${SCALA_VERSION}`, KAFKA_VERSION)}
${dependency('org.slf4j', 'slf4j-reload4j', '1.7.36')}
${dependency('ch.qos.reload4j', 'reload4j', '1.2.25')}
</dependencies></project>
`,
  );
  console.error(`[kafka] installing Apache Kafka ${KAFKA_VERSION} jars into ${lib} (mvn)`);
  const result = spawnSync('mvn', ['-B', '-q', 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${lib}`], {
    cwd: home,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0 || !existsSync(marker)) {
    throw new Error(`[kafka] mvn failed to fetch the Kafka jars (exit ${String(result.status)}; is Maven installed?)`);
  }
  return lib;
}

/** Resolves true when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ port, host });
    const finish = (open: boolean) => {
      socket.destroy();
      done(open);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** A broker is ready when it answers a metadata request, not merely when its port is open. */
export async function brokerAnswers(brokers: string, timeoutMs = 5000): Promise<boolean> {
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({
    clientId: 'infiniformer-probe',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: Math.min(timeoutMs, 3000),
    retry: { retries: 0 },
  }).admin();
  const timer = new Promise<boolean>((done) => setTimeout(() => done(false), timeoutMs));
  const probe = (async () => {
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return cluster.brokers.length > 0 && cluster.controller !== null;
    } catch {
      return false;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  })();
  return Promise.race([probe, timer]);
}

/** A value inside a JAAS config's double quotes. */
const jaasQuote = (value: string): string => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** server.properties lines of the SASL_SSL listener (none without one). */
function saslSslConfig(listener: SaslSslListener | undefined): string[] {
  if (listener === undefined) return [];
  const plainUsers = Object.entries(listener.users).map(([user, password]) => ` user_${user}=${jaasQuote(password)}`).join('');
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  return [
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required${plainUsers};`,
    `listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=${scram}`,
    `listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${scram}`,
    // Kafka 3.x reads PEM keystores directly (KIP-651): no JKS/PKCS12 conversion.
    'listener.name.sasl_ssl.ssl.keystore.type=PEM',
    `listener.name.sasl_ssl.ssl.keystore.location=${listener.keystorePem}`,
  ];
}

/** server.properties lines of the mutual-TLS listener (none without one). */
function mutualTlsConfig(listener: MutualTlsListener | undefined): string[] {
  if (listener === undefined) return [];
  return [
    'listener.name.ssl.ssl.keystore.type=PEM',
    `listener.name.ssl.ssl.keystore.location=${listener.keystorePem}`,
    'listener.name.ssl.ssl.truststore.type=PEM',
    `listener.name.ssl.ssl.truststore.location=${listener.clientCaPem}`,
    'listener.name.ssl.ssl.client.auth=required',
  ];
}

/** `--add-scram` arguments of the storage tool: every user, for both SCRAM mechanisms. */
function scramCredentials(listener: SaslSslListener | undefined): string[] {
  if (listener === undefined) return [];
  return Object.entries(listener.users).flatMap(([user, password]) =>
    ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((mechanism) => ['--add-scram', `${mechanism}=[name=${user},password=${password}]`]),
  );
}

function writeConfig(o: ResolvedOptions): string {
  mkdirSync(join(o.dataDir, 'logs'), { recursive: true });
  const properties = join(o.dataDir, 'server.properties');
  const extra = [
    ...(o.saslSsl === undefined ? [] : [{ name: 'SASL_SSL', port: o.saslSsl.port }]),
    ...(o.mutualTls === undefined ? [] : [{ name: 'SSL', port: o.mutualTls.port }]),
  ];
  const secure = extra.map((l) => `,${l.name}://127.0.0.1:${l.port}`).join('');
  writeFileSync(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${o.controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${o.port},CONTROLLER://127.0.0.1:${o.controllerPort}${secure}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${o.port}${secure}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      `listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${extra.map((l) => `,${l.name}:${l.name}`).join('')}`,
      ...saslSslConfig(o.saslSsl),
      ...mutualTlsConfig(o.mutualTls),
      `log.dirs=${join(o.dataDir, 'logs')}`,
      'num.partitions=1',
      'auto.create.topics.enable=false',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=1',
      'group.initial.rebalance.delay.ms=0',
      'num.network.threads=2',
      'num.io.threads=2',
      'log.cleaner.dedupe.buffer.size=16777216',
      'log.cleaner.threads=1',
      'message.max.bytes=4194304',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(o.dataDir, 'log4j.properties'),
    [
      'log4j.rootLogger=WARN, file',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${join(o.dataDir, 'broker.log')}`,
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
      'log4j.logger.kafka.server.KafkaServer=INFO',
      'log4j.logger.kafka.server.BrokerServer=INFO',
      '',
    ].join('\n'),
  );
  return properties;
}

function pidFile(dataDir: string): string {
  return join(dataDir, 'broker.pid');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Formats (first time only) and starts a broker in the background, resolving once it answers.
 * With `keepData` the log directory of an earlier start is reused (a restart keeps the topics).
 */
export async function startBroker(options: BrokerOptions = {}, keepData = false): Promise<RunningBroker> {
  const o = resolveOptions(options);
  const brokers = `127.0.0.1:${o.port}`;
  if (await portOpen(o.port)) throw new Error(`[kafka] port ${o.port} is already in use`);
  const lib = installKafka();
  const classpath = `${lib}/*`;
  if (!keepData) rmSync(o.dataDir, { recursive: true, force: true });
  const properties = writeConfig(o);
  const java = ['-Xms128m', `-Xmx${o.heap}`, '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', `-Dlog4j.configuration=file:${join(o.dataDir, 'log4j.properties')}`, '-cp', classpath];
  if (!existsSync(join(o.dataDir, 'logs', 'meta.properties'))) {
    // A Kafka cluster id is 16 bytes in base64url; one starting with '-' (1 in 64) would be read
    // as an option by the storage tool and the broker would never start. Clear the top bit of the
    // first byte: the first character is then in A..f, never '-' or '_'.
    const id = randomBytes(16);
    id[0] = id[0]! & 0x7f;
    const clusterId = id.toString('base64url');
    const format = spawnSync('java', [...java, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', properties, '--ignore-formatted', ...scramCredentials(o.saslSsl)], {
      encoding: 'utf8',
    });
    if (format.status !== 0) throw new Error(`[kafka] storage format failed: ${format.stderr || format.stdout}`);
  }
  const out = openSync(join(o.dataDir, 'stdout.log'), 'a');
  const child: ChildProcess = spawn('java', [...java, 'kafka.Kafka', properties], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('[kafka] could not spawn java');
  writeFileSync(pidFile(o.dataDir), String(pid));
  const deadline = Date.now() + o.readyTimeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) {
      throw new Error(`[kafka] broker exited during start; see ${join(o.dataDir, 'stdout.log')} and broker.log`);
    }
    if ((await portOpen(o.port)) && (await brokerAnswers(brokers))) {
      return { brokers, port: o.port, controllerPort: o.controllerPort, dataDir: o.dataDir, pid };
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  process.kill(pid, 'SIGKILL');
  throw new Error(`[kafka] broker did not answer on ${brokers} within ${o.readyTimeoutMs} ms`);
}

/** Stops the broker whose pid file lives in `dataDir`; SIGKILL after `graceMs`. Deletes data unless `keepData`. */
export async function stopBroker(options: BrokerOptions = {}, keepData = false, graceMs = 20_000): Promise<boolean> {
  const o = resolveOptions(options);
  const file = pidFile(o.dataDir);
  let stopped = false;
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
      stopped = true;
    }
    rmSync(file, { force: true });
  }
  if (!keepData) rmSync(o.dataDir, { recursive: true, force: true });
  return stopped;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const o = resolveOptions();
  const brokers = process.env.KAFKA_BROKERS ?? `127.0.0.1:${o.port}`;
  switch (command) {
    case 'install':
      console.log(installKafka());
      return 0;
    case 'up': {
      if (await brokerAnswers(brokers)) {
        console.log(`[kafka] a broker already answers on ${brokers}`);
        return 0;
      }
      const broker = await startBroker(o);
      console.log(`[kafka] broker pid ${broker.pid} ready on ${broker.brokers} (data ${broker.dataDir})`);
      return 0;
    }
    case 'down': {
      const stopped = await stopBroker(o);
      console.log(stopped ? '[kafka] broker stopped' : '[kafka] no broker started by kafka:up was running');
      return 0;
    }
    case 'status': {
      const up = await brokerAnswers(brokers);
      console.log(up ? `[kafka] broker answers on ${brokers}` : `[kafka] no broker on ${brokers}`);
      return up ? 0 : 1;
    }
    case 'run': {
      const cmd = rest[0] === '--' ? rest.slice(1) : rest;
      if (cmd.length === 0) throw new Error('usage: kafka.ts run -- <command> [args...]');
      let started = false;
      if (!(await brokerAnswers(brokers))) {
        console.error(`[kafka] no broker on ${brokers}; starting one for this run`);
        await startBroker(o);
        started = true;
      }
      const stop = async () => {
        if (started) {
          started = false;
          await stopBroker(o);
          console.error('[kafka] stopped the broker this run started');
        }
      };
      const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: 'inherit', env: { ...process.env, KAFKA_BROKERS: brokers }, shell: false });
      const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
      process.on('SIGINT', forward('SIGINT'));
      process.on('SIGTERM', forward('SIGTERM'));
      const code = await new Promise<number>((done) => {
        child.once('exit', (c, signal) => done(c ?? (signal ? 1 : 0)));
        child.once('error', (error) => {
          console.error(`[kafka] ${String(error)}`);
          done(127);
        });
      });
      await stop();
      return code;
    }
    default:
      console.error('usage: tsx scripts/kafka.ts up|down|status|install|run -- <command>');
      return 2;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
