// Shared helpers for the kafkajs scripts driven by tests/interop (pytest).
//
// Protocol with the Python side:
//   node <script>.mjs '<json args>'      (or JSON on stdin when no argument / '-')
//   -> exactly one JSON document on stdout; logs go to stderr.
// Binary data crosses the boundary as base64 strings (null stays null).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const kafkajs = require('kafkajs');
export const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = kafkajs;

let codecsLoaded = null;

// Registers the optional compression codecs with kafkajs and reports which are usable.
// gzip is built into kafkajs. zstd would need `@kafkajs/zstd`, whose native dependency
// (`cppzst`) does not compile against Node 20's headers, so it is not installed.
export function loadCodecs() {
  if (codecsLoaded) return codecsLoaded;
  const status = { gzip: true, snappy: false, lz4: false, zstd: false };
  try {
    const SnappyCodec = require('kafkajs-snappy');
    CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
    status.snappy = true;
  } catch (e) {
    status.snappyError = String(e && e.message ? e.message : e);
  }
  try {
    const LZ4Codec = require('kafkajs-lz4');
    CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec;
    status.lz4 = true;
  } catch (e) {
    status.lz4Error = String(e && e.message ? e.message : e);
  }
  status.zstdError = '@kafkajs/zstd not installed: its native dependency cppzst fails to build on Node 20';
  codecsLoaded = status;
  return status;
}

export const COMPRESSION = {
  none: () => CompressionTypes.None,
  gzip: () => CompressionTypes.GZIP,
  snappy: () => CompressionTypes.Snappy,
  lz4: () => CompressionTypes.LZ4,
  zstd: () => CompressionTypes.ZSTD,
};

export function readArgs() {
  const raw = process.argv[2];
  const text = raw === undefined || raw === '-' ? readFileSync(0, 'utf8') : raw;
  return text.trim() === '' ? {} : JSON.parse(text);
}

const stderrLogCreator = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log;
  process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`);
};

export function makeKafka(args) {
  if (!Array.isArray(args.brokers) || args.brokers.length === 0) {
    throw new Error('args.brokers (array of host:port) is required');
  }
  return new Kafka({
    clientId: args.clientId ?? 'rivulet-interop-kafkajs',
    brokers: args.brokers,
    logLevel: logLevel[(args.logLevel ?? 'WARN').toUpperCase()],
    logCreator: stderrLogCreator,
    connectionTimeout: args.connectionTimeout ?? 5000,
    requestTimeout: args.requestTimeout ?? 15000,
    retry: {
      retries: args.retries ?? 2,
      initialRetryTime: 100,
      maxRetryTime: 1000,
    },
  });
}

export function fromB64(v) {
  return v === null || v === undefined ? null : Buffer.from(v, 'base64');
}

export function toB64(v) {
  if (v === null || v === undefined) return null;
  return Buffer.isBuffer(v) ? v.toString('base64') : Buffer.from(String(v)).toString('base64');
}

// Serializes any kafkajs error (including aggregate / retry-wrapper errors) to plain JSON.
export function serializeError(e, depth = 0) {
  if (e === null || e === undefined || depth > 6) return null;
  if (typeof e !== 'object') return { message: String(e) };
  const out = {
    name: e.name ?? null,
    message: e.message ?? String(e),
    type: e.type ?? null,
    code: e.code ?? null,
    retriable: e.retriable ?? null,
  };
  if (e.topic !== undefined) out.topic = e.topic;
  if (Array.isArray(e.errors)) out.errors = e.errors.map((x) => serializeError(x, depth + 1));
  const cause = e.cause ?? e.originalError;
  if (cause) out.cause = serializeError(cause, depth + 1);
  return out;
}

export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// Runs `fn(args)` and prints {ok:true,result} / {ok:false,error}. Exit code 0 either way:
// Kafka errors are data for the test to assert on. Exit 2 only for harness bugs.
export async function main(fn) {
  let args;
  try {
    args = readArgs();
  } catch (e) {
    process.stderr.write(`bad arguments: ${e}\n`);
    process.exit(2);
  }
  try {
    const result = await fn(args);
    emit({ ok: true, result });
  } catch (e) {
    if (e && e.harnessBug) {
      process.stderr.write(`harness error: ${e.stack ?? e}\n`);
      process.exit(2);
    }
    emit({ ok: false, error: serializeError(e) });
  }
}
