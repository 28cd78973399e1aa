// kafkajs idempotent and transactional producers driven by pytest (test_transactions_*.py).
//
// args: {
//   brokers: ["127.0.0.1:9092"], requestTimeout?, retries?,
//   producers: { <name>: { transactionalId?: "id", idempotent?: true, transactionTimeout? } },
//   steps: [
//     { p: <name>, op: "send", topic, messages: [ {partition, value (b64), key? (b64)} ] },
//     { p: <name>, op: "begin" },                      // producer.transaction()
//     { p: <name>, op: "commit" } | { p, op: "abort" },
//     { p: <name>, op: "sendOffsets", groupId, topics: [ {topic, partitions: [{partition, offset}]} ] },
//     { p: <name>, op: "disconnect" },
//   ]
// }
// A "send" inside a transaction (after "begin") goes through it; otherwise through the producer.
// A producer connects (InitProducerId) at its first step.
// Every step runs even after a failed one; each answers {ok:true, offsets?} or {ok:false, error}.
// offsets[i] is the offset of messages[i] (from the per-partition base offsets returned).
//
// result: { steps: [...] }
import { fromB64, main, makeKafka, serializeError } from './lib.mjs';

await main(async (args) => {
  const kafka = makeKafka({ ...args, requestTimeout: args.requestTimeout ?? 15000 });
  const producers = {};
  for (const [name, spec] of Object.entries(args.producers ?? {})) {
    const producer = kafka.producer({
      idempotent: spec.idempotent ?? true,
      transactionalId: spec.transactionalId,
      transactionTimeout: spec.transactionTimeout ?? 60000,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: { retries: args.retries ?? 5, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    // Connected (InitProducerId) at its first step, so a test orders the fencing.
    producers[name] = { producer, txn: null, connected: false };
  }
  const steps = [];
  for (const step of args.steps ?? []) {
    const entry = producers[step.p];
    if (!entry) {
      const err = new Error(`unknown producer ${step.p}`);
      err.harnessBug = true;
      throw err;
    }
    try {
      if (!entry.connected) {
        entry.connected = true;
        await entry.producer.connect();
      }
      switch (step.op) {
        case 'send': {
          const target = entry.txn ?? entry.producer;
          const messages = step.messages.map((m) => ({
            partition: m.partition,
            key: fromB64(m.key ?? null),
            value: fromB64(m.value),
          }));
          const records = await target.send({ topic: step.topic, messages, acks: -1, timeout: args.sendTimeout ?? 30000 });
          const base = new Map();
          for (const r of records ?? []) base.set(r.partition, Number(r.baseOffset));
          const seen = new Map();
          const offsets = step.messages.map((m) => {
            const i = seen.get(m.partition) ?? 0;
            seen.set(m.partition, i + 1);
            return base.has(m.partition) ? base.get(m.partition) + i : null;
          });
          steps.push({ ok: true, offsets });
          break;
        }
        case 'begin':
          entry.txn = await entry.producer.transaction();
          steps.push({ ok: true });
          break;
        case 'commit':
        case 'abort': {
          const txn = entry.txn;
          entry.txn = null;
          if (!txn) throw new Error('no transaction open');
          await (step.op === 'commit' ? txn.commit() : txn.abort());
          steps.push({ ok: true });
          break;
        }
        case 'sendOffsets':
          if (!entry.txn) throw new Error('no transaction open');
          await entry.txn.sendOffsets({ consumerGroupId: step.groupId, topics: step.topics });
          steps.push({ ok: true });
          break;
        case 'disconnect':
          await entry.producer.disconnect();
          steps.push({ ok: true });
          break;
        default: {
          const err = new Error(`unknown op ${step.op}`);
          err.harnessBug = true;
          throw err;
        }
      }
    } catch (e) {
      if (e && e.harnessBug) throw e;
      steps.push({ ok: false, error: serializeError(e) });
    }
  }
  for (const { producer } of Object.values(producers)) {
    try {
      await producer.disconnect();
    } catch (e) {
      // already disconnected
    }
  }
  return { steps };
});
