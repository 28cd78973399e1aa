// kafkajs producer driven by pytest.
//
// args: {
//   brokers: ["127.0.0.1:9092"], topic: "t",
//   acks: -1 | 0 | 1, compression: "none"|"gzip"|"snappy"|"lz4"|"zstd", timeout: 30000,
//   allowAutoTopicCreation: true, retries: 2,
//   sends: [ { messages: [ {key, value, partition, headers: [[name, b64|null], ...], timestamp} ],
//              acks?, compression?, topic? } ]
// }
// key/value are base64 strings or null. Each entry of `sends` is one producer.send() call
// (one request; kafkajs puts all messages of one partition into one record batch).
//
// result: { codecs: {...}, sends: [ {ok:true, records:[RecordMetadata...], offsets:[...]}
//                                   | {ok:false, error} ] }
// `offsets[i]` is the offset of messages[i], computed from the per-partition baseOffset the
// broker returned (null when the broker returns no offsets, i.e. acks=0).
import { COMPRESSION, fromB64, loadCodecs, main, makeKafka, serializeError } from './lib.mjs';

function headersObject(pairs) {
  // kafkajs takes headers as an object; duplicate keys are expressed as arrays.
  // Note: this groups values by key in order of first appearance.
  if (!pairs) return undefined;
  const obj = {};
  for (const [name, b64] of pairs) {
    if (b64 === null) {
      const err = new Error('kafkajs cannot encode null header values');
      err.harnessBug = true;
      throw err;
    }
    const value = fromB64(b64);
    if (Object.prototype.hasOwnProperty.call(obj, name)) {
      obj[name] = Array.isArray(obj[name]) ? [...obj[name], value] : [obj[name], value];
    } else {
      obj[name] = value;
    }
  }
  return obj;
}

function toMessage(m) {
  const out = { key: fromB64(m.key ?? null), value: fromB64(m.value ?? null) };
  if (m.partition !== undefined && m.partition !== null) out.partition = m.partition;
  if (m.timestamp !== undefined && m.timestamp !== null) out.timestamp = String(m.timestamp);
  const headers = headersObject(m.headers);
  if (headers) out.headers = headers;
  return out;
}

await main(async (args) => {
  const codecs = loadCodecs();
  if (!args.sends || args.sends.length === 0) return { codecs, sends: [] };
  const kafka = makeKafka(args);
  const producer = kafka.producer({
    allowAutoTopicCreation: args.allowAutoTopicCreation ?? true,
    idempotent: false,
    maxInFlightRequests: 1,
    retry: { retries: args.retries ?? 2, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  await producer.connect();
  const sends = [];
  try {
    for (const send of args.sends ?? []) {
      const compressionName = send.compression ?? args.compression ?? 'none';
      const compression = COMPRESSION[compressionName];
      if (!compression) {
        const err = new Error(`unknown compression ${compressionName}`);
        err.harnessBug = true;
        throw err;
      }
      const messages = send.messages.map(toMessage);
      try {
        const records = await producer.send({
          topic: send.topic ?? args.topic,
          messages,
          acks: send.acks ?? args.acks ?? -1,
          timeout: args.timeout ?? 30000,
          compression: compression(),
        });
        const base = new Map();
        for (const r of records ?? []) base.set(r.partition, Number(r.baseOffset));
        const seen = new Map();
        const offsets = send.messages.map((m) => {
          const p = m.partition;
          if (p === undefined || p === null || !base.has(p) || base.get(p) < 0) return null;
          const idx = seen.get(p) ?? 0;
          seen.set(p, idx + 1);
          return base.get(p) + idx;
        });
        sends.push({ ok: true, records: records ?? [], offsets });
      } catch (e) {
        if (e && e.harnessBug) throw e;
        sends.push({ ok: false, error: serializeError(e) });
      }
    }
  } finally {
    await producer.disconnect();
  }
  return { codecs, sends };
});
