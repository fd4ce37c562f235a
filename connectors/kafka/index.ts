/**
 * Kafka connectors (kafkajs): a consumer-group source with at-least-once commits, backpressure,
 * dead letters and a per-key state changelog; an idempotent batching sink whose delivery
 * acknowledgements drive the source's commits. See docs/kafka.md.
 *
 * @packageDocumentation
 */
export { fromKafka } from './source.js';
export type { AlignedCheckpoint } from './sourceTypes.js';
export type { DroppedRecord, FromKafkaOptions, KafkaRecord, KafkaSource, KafkaSourceStats, KeyedState, MissingKeyPolicy, NullValuePolicy } from './source.js';
export { toKafka } from './sink.js';
export type { ToKafkaOptions, DeliveryReport } from './sink.js';
export { CHANGELOG_HEADERS, changelogKey } from './changelog.js';
export type { ChangelogOptions, StateCodec, RestoredState } from './changelog.js';
export { ChangelogKeyStore, SHARED_STATE_TOPIC, MAX_CHANGELOG_MESSAGE_BYTES, sharedStateMessages, assembleSharedState } from './changelogStore.js';
export { streamStateCodec } from './streamStateCodec.js';
export { DEAD_LETTER_HEADERS } from './deadLetter.js';
export type { DeadLetterReason } from './deadLetter.js';
export { rawDecoder, utf8Decoder, jsonDecoder } from './decode.js';
export type { ValueDecoder } from './decode.js';
export { kafkaClient, kafkaFailure, ensureTopics, brokerList } from './client.js';
export { SASL_MECHANISMS, resolveSecurity, securityError } from './security.js';
export type { KafkaSasl, KafkaSsl, SaslMechanism } from './security.js';
export { loadKafkaSettings, parseProperties, parseJaas } from './config.js';
export type { KafkaConnectionSettings } from './config.js';
export type { KafkaConnection, TopicRequest } from './client.js';
export { PartitionOffsetTracker } from './offsetTracker.js';
export { transactionalIdOf } from './transactions.js';
export { installReadCommittedFix } from './readCommitted.js';
export type { ExactlyOnceOptions, OutputTransaction } from './transactions.js';
