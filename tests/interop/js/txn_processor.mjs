// A kafkajs consume-transform-produce processor (exactly once), driven by pytest
// (test_transactions_eos.py). Prints one JSON event per line:
//   ready / produced {n} / committed {n, total} / idle {total} / error {msg}
//
// args: { brokers, input, output, groupId, transactionalId, sessionTimeout?, batch? (records per
//         transaction, default 50), pauseInTxnMs? (sleep after writing, before the offsets
//         and the commit), exitWhenIdleMs? (0: never) }
// Each transaction writes up to `batch` records of one partition to the same partition of the
// output topic, value "out-" + input value, then sends the consumer offsets and commits.
import { makeKafka } from './lib.mjs';

function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + '\n');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function run(args) {
  const kafka = makeKafka({ ...args, retries: 10 });
  const producer = kafka.producer({
    transactionalId: args.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 60000,
  });
  // InitProducerId first: it fences a previous instance and aborts its transaction before the
  // consumer reads the group's committed offsets.
  await producer.connect();
  const consumer = kafka.consumer({
    groupId: args.groupId,
    sessionTimeout: args.sessionTimeout ?? 6000,
    heartbeatInterval: 300,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [args.input], fromBeginning: true });
  emit({ ev: 'ready' });
  const size = args.batch ?? 50;
  let total = 0;
  let lastActivity = Date.now();
  let stopping = false;
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      for (let i = 0; i < batch.messages.length; i += size) {
        if (!isRunning() || isStale() || stopping) return;
        const chunk = batch.messages.slice(i, i + size);
        const last = chunk[chunk.length - 1];
        const txn = await producer.transaction();
        try {
          await txn.send({
            topic: args.output,
            messages: chunk.map((m) => ({
              partition: batch.partition,
              key: m.key,
              value: Buffer.concat([Buffer.from('out-'), m.value]),
            })),
          });
          emit({ ev: 'produced', n: chunk.length });
          if (args.pauseInTxnMs) await sleep(args.pauseInTxnMs);
          await txn.sendOffsets({
            consumerGroupId: args.groupId,
            topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }] }],
          });
          await txn.commit();
        } catch (e) {
          await txn.abort().catch(() => {});
          throw e;
        }
        resolveOffset(last.offset);
        total += chunk.length;
        lastActivity = Date.now();
        emit({ ev: 'committed', n: chunk.length, total });
        await heartbeat();
      }
    },
  });
  if (args.exitWhenIdleMs) {
    for (;;) {
      await sleep(200);
      if (Date.now() - lastActivity > args.exitWhenIdleMs) break;
    }
    stopping = true;
    await consumer.disconnect();
    await producer.disconnect();
    emit({ ev: 'idle', total });
    process.exit(0);
  }
}

try {
  await run(JSON.parse(process.argv[2]));
} catch (e) {
  emit({ ev: 'error', msg: String(e && e.stack ? e.stack : e) });
  process.exit(1);
}
