/**
 * TLS and SASL against a real broker: a second single-node Kafka (scripts/kafka.ts) with an
 * SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) whose certificates this test makes.
 * It runs on free ports and never touches the shared broker on 9092.
 */
import anyTest from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, of, toArray, type Subscription } from 'rxjs';
import { ensureTopics, fromKafka, kafkaClient, toKafka, utf8Decoder, type KafkaConnection } from '../../../connectors/kafka/index.js';
import { ConnectionSecurityError } from '../../../src/errors.js';
import { startBroker, stopBroker, type RunningBroker } from '../../../scripts/kafka.js';
import { makeCa, makeCert, type Cert, type TestCa } from '../../helpers/tls.js';
import { uniqueName, waitFor } from '../../helpers/kafka.js';
import { InfiniFormer, saveModel } from '../../../src/index.js';
import { backendReady } from '../../helpers/backend.js';
import { cli, TINY_CONFIG } from '../../cli/helpers.js';

const test = anyTest.serial; // one small broker; the machine is shared
const USER = 'alice';
const PASSWORD = 'alice-secret';

let dir = '';
let ca: TestCa;
let otherCa: TestCa;
let broker: RunningBroker | undefined;
let secureBrokers = '';
let mutualTlsBrokers = '';
let client: Cert;
let modelDir = '';

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

anyTest.before(async (t) => {
  dir = mkdtempSync(join(tmpdir(), 'infiniformer-security-'));
  ca = makeCa(dir, 'test-ca');
  otherCa = makeCa(dir, 'other-ca');
  const server = makeCert(dir, ca, 'broker');
  client = makeCert(dir, ca, 'client');
  const [port, controllerPort, securePort, mutualPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const started = Date.now();
  broker = await startBroker({
    port: port!, controllerPort: controllerPort!, dataDir: join(dir, 'kafka'), heap: '256m',
    saslSsl: { port: securePort!, keystorePem: server.keystoreFile, users: { [USER]: PASSWORD } },
    mutualTls: { port: mutualPort!, keystorePem: server.keystoreFile, clientCaPem: ca.certFile },
  });
  secureBrokers = `127.0.0.1:${securePort}`;
  mutualTlsBrokers = `127.0.0.1:${mutualPort}`;
  t.log(`SASL_SSL broker ready on ${secureBrokers} in ${Date.now() - started} ms`);
  await backendReady;
  modelDir = join(dir, 'model');
  const model = InfiniFormer.create(TINY_CONFIG, { seed: 13 });
  await saveModel(model, modelDir);
  model.dispose();
});

anyTest.after.always(async () => {
  if (broker !== undefined) await stopBroker({ dataDir: broker.dataDir });
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const secure = (sasl: KafkaConnection['sasl'], caFile = ca.certFile): KafkaConnection => ({
  brokers: secureBrokers, ssl: { ca: caFile }, sasl, retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 1000 },
});

/** Produces `values` through `connection`, then reads them back through a consumer group of the same connection. */
async function roundTrip(connection: KafkaConnection, values: string[]): Promise<string[]> {
  const topic = uniqueName('secure');
  await ensureTopics(kafkaClient(connection), [{ topic, compacted: false, partitionsLike: [], numPartitions: 1 }]);
  await lastValueFrom(of(...values.map((value) => ({ key: 'k', value }))).pipe(toKafka({ ...connection, topic }), toArray()));
  const source = fromKafka({ ...connection, groupId: `${topic}-g`, topics: [topic], decode: utf8Decoder, handleSigterm: false, commitIntervalMs: 200 });
  const read: string[] = [];
  let failure: unknown;
  const subscription = source.subscribe({
    next: (r) => {
      read.push(r.value);
      r.ack();
    },
    error: (e: unknown) => (failure = e),
  });
  try {
    await waitFor(() => read.length >= values.length || failure !== undefined, 60_000, 'records read back');
    if (failure !== undefined) throw failure;
    await source.drain();
  } finally {
    subscription.unsubscribe();
  }
  return read;
}

for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
  test(`SASL ${mechanism} over TLS: records produced and consumed through the library come back exactly`, async (t) => {
    const values = Array.from({ length: 20 }, (_, i) => `${mechanism} record ${i} ✓`);
    const started = Date.now();
    t.deepEqual(await roundTrip(secure({ mechanism, username: USER, password: PASSWORD }), values), values);
    t.log(`${mechanism}: 20 records round trip in ${Date.now() - started} ms`);
  });
}

test('CA given as PEM text instead of a file path works the same', async (t) => {
  const values = ['pem text'];
  const connection = { ...secure({ mechanism: 'scram-sha-512', username: USER, password: PASSWORD }), ssl: { ca: readFileSync(ca.certFile, 'utf8') } };
  t.deepEqual(await roundTrip(connection, values), values);
});

/**
 * Subscribes and resolves with the error the stream ends with. The callers pass 30 retries of up
 * to 5 s: a failure that kafkajs retried would not end within the 30 s guard, so an error here
 * shows it was not retried (the time is logged, not asserted).
 */
async function startError(connection: KafkaConnection): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  const source = fromKafka({ ...connection, groupId: uniqueName('denied'), topics: [uniqueName('denied')], decode: utf8Decoder, handleSigterm: false });
  let subscription: Subscription | undefined;
  const error = await new Promise<unknown>((done) => {
    const timer = setTimeout(() => done(new Error('no error within 30 s')), 30_000);
    subscription = source.subscribe({ next: () => undefined, error: (e: unknown) => (clearTimeout(timer), done(e)), complete: () => (clearTimeout(timer), done(new Error('completed'))) });
  });
  subscription?.unsubscribe(); // a client still retrying stops here
  return { error, ms: Date.now() - started };
}

for (const mechanism of ['plain', 'scram-sha-256'] as const) {
  test(`wrong ${mechanism} password: a ConnectionSecurityError at once, not retries`, async (t) => {
    const { error, ms } = await startError({ ...secure({ mechanism, username: USER, password: 'not-the-password' }), retry: { retries: 30, initialRetryTime: 300, maxRetryTime: 5000 } });
    t.log(`failed after ${ms} ms: ${(error as Error).message}`);
    t.true(error instanceof ConnectionSecurityError, String(error));
    const e = error as ConnectionSecurityError;
    t.is(e.code, 'ERR_CONNECTION_SECURITY');
    t.false(e.retriable);
    t.regex(e.message, new RegExp(`SASL authentication failed \\(mechanism ${mechanism}, user 'alice'\\)`));
  });
}

test('a broker certificate from an untrusted CA: a ConnectionSecurityError naming the certificate, at once', async (t) => {
  const { error, ms } = await startError({ ...secure({ mechanism: 'plain', username: USER, password: PASSWORD }, otherCa.certFile), retry: { retries: 30, initialRetryTime: 300, maxRetryTime: 5000 } });
  t.log(`failed after ${ms} ms: ${(error as Error).message}`);
  t.true(error instanceof ConnectionSecurityError, String(error));
  t.regex((error as Error).message, /TLS: the Kafka broker's certificate was rejected \(SELF_SIGNED_CERT_IN_CHAIN/);
  t.regex((error as Error).message, /ssl\.ca/);
  // The same connection without verification goes through: the failure above was the certificate check.
  const unverified = secure({ mechanism: 'plain', username: USER, password: PASSWORD });
  t.deepEqual(await roundTrip({ ...unverified, ssl: { ca: otherCa.certFile, rejectUnauthorized: false } }, ['unverified']), ['unverified']);
});

test('mutual TLS: a client certificate (PEM files) is accepted; without one the broker refuses', async (t) => {
  const connection: KafkaConnection = { brokers: mutualTlsBrokers, ssl: { ca: ca.certFile, cert: client.certFile, key: client.keyFile }, retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 1000 } };
  const values = ['mutual 1', 'mutual 2'];
  t.deepEqual(await roundTrip(connection, values), values);
  const { error, ms } = await startError({ ...connection, ssl: { ca: ca.certFile }, retry: { retries: 30, initialRetryTime: 300, maxRetryTime: 5000 } });
  t.log(`without a client certificate: failed after ${ms} ms: ${(error as Error).message}`);
  t.true(error instanceof ConnectionSecurityError, String(error));
  t.regex((error as Error).message, /TLS: the Kafka broker refused the client certificate \(ERR_SSL_\w+\): give one it trusts \(ssl\.cert and ssl\.key\)/);
});

test('the sink reports a wrong password as a ConnectionSecurityError too', async (t) => {
  const connection = secure({ mechanism: 'scram-sha-512', username: USER, password: 'nope' });
  const error = await lastValueFrom(of({ key: 'k', value: 'v' }).pipe(toKafka({ ...connection, topic: 'anything' }))).then(
    () => new Error('no error'),
    (e: unknown) => e,
  );
  t.true(error instanceof ConnectionSecurityError, String(error));
});

function writeProperties(name: string, lines: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

test('CLI: stream --kafka-config (SASL_SSL, SCRAM-SHA-512 from sasl.jaas.config) reads the topic; a wrong password exits 1 saying so', async (t) => {
  const connection = secure({ mechanism: 'scram-sha-512', username: USER, password: PASSWORD });
  const topic = uniqueName('secure-cli');
  await ensureTopics(kafkaClient(connection), [{ topic, compacted: false, partitionsLike: [], numPartitions: 1 }]);
  const lines = ['PASS: gcc.dg/a.c', 'FAIL: gcc.dg/b.c', 'PASS: gcc.dg/c.c', 'PASS: gcc.dg/d.c', 'PASS: gcc.dg/e.c'];
  await lastValueFrom(of(...lines.map((value) => ({ key: 'k', value }))).pipe(toKafka({ ...connection, topic }), toArray()));
  const config = writeProperties('client.properties', [
    '# a Java client file',
    'security.protocol=SASL_SSL',
    'sasl.mechanism=SCRAM-SHA-512',
    `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\`,
    `    username="${USER}" password="${PASSWORD}";`,
    `ssl.ca.location=${ca.certFile}`,
    'acks=all',
  ]);
  const started = Date.now();
  const r = await cli(['stream', '--model', modelDir, '--no-learn', '--kafka-topic', topic, '--group', `${topic}-g`, '--brokers', secureBrokers, '--kafka-config', config, '--max-lines', String(lines.length)]);
  t.log(`CLI run ${Date.now() - started} ms`);
  t.is(r.code, 0, r.stderr);
  const out = r.stdout.split('\n').filter((l) => l.startsWith('{"key"')).map((l) => JSON.parse(l) as { text: string; source: { topic: string } });
  t.deepEqual(out.map((o) => o.text), lines);
  t.true(out.every((o) => o.source.topic === topic));
  t.regex(r.stderr, /keys not used by infiniformer: acks/);

  const wrong = writeProperties('wrong.properties', ['security.protocol=SASL_SSL', 'sasl.mechanism=SCRAM-SHA-512', `sasl.username=${USER}`, 'sasl.password=wrong', `ssl.ca.location=${ca.certFile}`]);
  const denied = await cli(['stream', '--model', modelDir, '--no-learn', '--kafka-topic', topic, '--group', `${topic}-g2`, '--brokers', secureBrokers, '--kafka-config', wrong, '--max-lines', '1']);
  t.is(denied.code, 1, denied.stderr);
  // The first client to connect is the one reading the job's state topic (restored before any input).
  t.regex(denied.stderr, /infiniformer stream: error: reading the stream state topic '[^']+\.state': Kafka SASL authentication failed \(mechanism scram-sha-512, user 'alice'\): check the user name, password and mechanism/);
});

test('CLI: kafka status over SASL_SSL from environment variables; a wrong password says so (exit 1), a bad mechanism or a missing CA file is a usage error (exit 2)', async (t) => {
  const env = { KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: ca.certFile, KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', KAFKA_SASL_USERNAME: USER, KAFKA_SASL_PASSWORD: PASSWORD, KAFKA_BROKERS: secureBrokers };
  const ok = await cli(['kafka', 'status'], { env });
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, new RegExp(`a broker answers on ${secureBrokers}`));
  const denied = await cli(['kafka', 'status'], { env: { ...env, KAFKA_SASL_PASSWORD: 'wrong' } });
  t.is(denied.code, 1);
  t.regex(denied.stderr, /SASL authentication failed \(mechanism scram-sha-256, user 'alice'\)/);
  const bad = await cli(['kafka', 'status'], { env: { ...env, KAFKA_SASL_MECHANISM: 'GSSAPI' } });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /sasl\.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "GSSAPI"/);
  const missing = await cli(['kafka', 'status'], { env: { ...env, KAFKA_SSL_CA_FILE: join(dir, 'no-such-ca.pem') } });
  t.is(missing.code, 2);
  t.regex(missing.stderr, /ssl\.ca: cannot read PEM file '.*no-such-ca\.pem'/);
});
