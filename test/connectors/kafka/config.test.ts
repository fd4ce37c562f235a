/** Kafka connection settings: properties files, JAAS lines, environment variables, validation (no broker needed). */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kafkaClient, loadKafkaSettings, parseJaas, parseProperties, resolveSecurity, type KafkaSasl } from '../../../connectors/kafka/index.js';
import { BadConfigError } from '../../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'infiniformer-kafka-config-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, CA_PEM);

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('properties: separators, comments, continuation lines, escapes', (t) => {
  const props = parseProperties(['# comment', '! also a comment', 'a=1', 'b : two words ', 'c three', '  d=x\\', '    y', 'e=back\\\\slash', 'f\\=g=h', 'u=\\u00e9', 'empty='].join('\n'));
  t.deepEqual(Object.fromEntries(props), { a: '1', b: 'two words ', c: 'three', d: 'xy', e: 'back\\slash', 'f=g': 'h', u: 'é', empty: '' });
});

test('JAAS: user name and password of PLAIN and SCRAM modules, quotes escaped', (t) => {
  t.deepEqual(parseJaas('org.apache.kafka.common.security.plain.PlainLoginModule required username="bob" password="p\\"w;d";'), { module: 'plain', username: 'bob', password: 'p"w;d' });
  t.deepEqual(parseJaas('org.apache.kafka.common.security.scram.ScramLoginModule required username=bob password="x";'), { module: 'scram', username: 'bob', password: 'x' });
  const error = t.throws(() => parseJaas('com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;'), { instanceOf: BadConfigError });
  t.regex(error.message, /Krb5LoginModule is not supported/);
});

test('a client properties file becomes brokers, TLS and SASL; unread keys are listed', (t) => {
  const path = file('client.properties', [
    'bootstrap.servers=h1:9093,h2:9093',
    'security.protocol=SASL_SSL',
    'sasl.mechanism=SCRAM-SHA-256',
    'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\',
    '  username="alice" password="secret";',
    `ssl.ca.location=${caFile}`,
    'acks=all',
    'group.id=x',
  ].join('\n'));
  const { connection, ignored } = loadKafkaSettings(path, {});
  t.deepEqual(connection, { brokers: 'h1:9093,h2:9093', ssl: { ca: caFile }, sasl: { mechanism: 'scram-sha-256', username: 'alice', password: 'secret' } });
  t.deepEqual(ignored, ['acks', 'group.id']);
});

test('environment variables alone; the file wins where both set a value, the environment fills in the rest', (t) => {
  const env = { KAFKA_BROKERS: 'e:1', KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: caFile, KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'env-user', KAFKA_SASL_PASSWORD: 'env-pw' };
  t.deepEqual(loadKafkaSettings(undefined, env).connection, { brokers: 'e:1', ssl: { ca: caFile }, sasl: { mechanism: 'plain', username: 'env-user', password: 'env-pw' } });
  const path = file('user-only.properties', 'sasl.username=file-user\nbootstrap.servers=f:2\n');
  t.deepEqual(loadKafkaSettings(path, env).connection, { brokers: 'f:2', ssl: { ca: caFile }, sasl: { mechanism: 'plain', username: 'file-user', password: 'env-pw' } });
  t.deepEqual(loadKafkaSettings(undefined, { KAFKA_SSL: 'true' }).connection, { ssl: true });
  t.deepEqual(loadKafkaSettings(undefined, {}).connection, {});
});

const rejected: [string, string, Record<string, string>, RegExp][] = [
  ['SASL_SSL without a mechanism', 'security.protocol=SASL_SSL\nsasl.username=a\nsasl.password=b\n', {}, /sasl\.mechanism: is required with SASL/],
  ['an unsupported mechanism', 'security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\nsasl.username=a\nsasl.password=b\n', {}, /sasl\.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "GSSAPI"/],
  ['a password missing', 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=a\n', {}, /sasl\.password: is required/],
  ['TLS files over PLAINTEXT', `security.protocol=PLAINTEXT\nssl.ca.location=${caFile}\n`, {}, /TLS files are set but the connection is PLAINTEXT/],
  ['SASL settings over SSL', 'security.protocol=SSL\nsasl.mechanism=PLAIN\n', {}, /SASL settings are set but security.protocol is SSL/],
  ['a JAAS module of another mechanism', 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="a" password="b";\n', {}, /sasl\.jaas\.config: its PlainLoginModule does not match sasl\.mechanism SCRAM-SHA-512/],
  ['a JKS truststore', 'ssl.truststore.type=JKS\n', {}, /only PEM files are supported, got JKS/],
  ['an unknown security key', 'ssl.endpoint.identification.algorithm=\n', {}, /ssl\.endpoint\.identification\.algorithm: unsupported security setting/],
  ['a bad protocol', 'security.protocol=TLS\n', {}, /security\.protocol: must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got "TLS"/],
  ['KAFKA_SSL not a boolean', '', { KAFKA_SSL: 'maybe' }, /KAFKA_SSL: must be true or false/],
];
for (const [name, text, env, message] of rejected) {
  test(`rejected with BadConfigError: ${name}`, (t) => {
    const error = t.throws(() => loadKafkaSettings(file(`${name.replace(/\W+/g, '-')}.properties`, text), env), { instanceOf: BadConfigError });
    t.regex(error.message, message);
  });
}

test('a missing properties file is a BadConfigError naming it', (t) => {
  const error = t.throws(() => loadKafkaSettings(join(dir, 'nope.properties'), {}), { instanceOf: BadConfigError });
  t.regex(error.message, /cannot read '.*nope\.properties'/);
});

test('library options: PEM text or files are read; bad values are BadConfigErrors naming the option', (t) => {
  const resolved = resolveSecurity({ ssl: { ca: [caFile, CA_PEM] }, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } });
  t.deepEqual(resolved, { ssl: { rejectUnauthorized: true, ca: [CA_PEM, CA_PEM] }, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } });
  const cases: [() => unknown, string, RegExp][] = [
    [() => kafkaClient({ sasl: { mechanism: 'gssapi', username: 'u', password: 'p' } as unknown as KafkaSasl }), 'sasl.mechanism', /must be one of plain, scram-sha-256, scram-sha-512, got "gssapi"/],
    [() => kafkaClient({ sasl: { mechanism: 'plain', username: '', password: 'p' } }), 'sasl.username', /is required/],
    [() => kafkaClient({ ssl: { ca: join(dir, 'missing.pem') } }), 'ssl.ca', /cannot read PEM file '.*missing\.pem'/],
    [() => kafkaClient({ ssl: { ca: file('not-pem.txt', 'hello') } }), 'ssl.ca', /holds no PEM block/],
    [() => kafkaClient({ ssl: { cert: caFile } }), 'ssl.key', /needs both ssl\.cert and ssl\.key/],
    [() => kafkaClient({ ssl: { ca: [caFile, 'x'] } }), 'ssl.ca[1]', /cannot read PEM file 'x'/],
    [() => kafkaClient({ ssl: { cafile: caFile } as never }), 'ssl.cafile', /unknown option/],
  ];
  for (const [make, option, message] of cases) {
    const error = t.throws(make, { instanceOf: BadConfigError });
    t.is(error.option, option);
    t.regex(error.message, message);
  }
});
