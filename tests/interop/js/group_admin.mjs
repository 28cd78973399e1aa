// kafkajs admin client for consumer groups, driven by tests/interop/test_groups_*.py.
//
// args: { brokers: ["127.0.0.1:9092"], retries: 2, ops: [ {op: "...", ...}, ... ] }
// ops (run in order on one connected admin client):
//   {op:"listGroups"}
//   {op:"describeGroups", groupIds:[..]}       (member metadata/assignments decoded by kafkajs)
//   {op:"fetchOffsets", groupId, topics:[..]}   (omit topics for every committed topic)
//   {op:"resetOffsets", groupId, topic, earliest}
//   {op:"setOffsets", groupId, topic, partitions:[{partition, offset}]}
//   {op:"deleteGroups", groupIds:[..]}
// result: [ {ok:true, result} | {ok:false, error} ]  (one entry per op)
import { createRequire } from 'node:module';
import { main, makeKafka, serializeError } from './lib.mjs';

const require = createRequire(import.meta.url);
const { AssignerProtocol } = require('kafkajs');

function describe(result) {
  // Buffers do not survive JSON: decode the consumer-protocol metadata and assignment.
  return {
    groups: result.groups.map((g) => ({
      ...g,
      members: g.members.map((m) => {
        let assignment = null;
        let subscription = null;
        try {
          const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
          assignment = a ? a.assignment : null;
        } catch (e) {
          assignment = { undecodable: String(e) };
        }
        try {
          const s = AssignerProtocol.MemberMetadata.decode(m.memberMetadata);
          subscription = s ? s.topics : null;
        } catch (e) {
          subscription = { undecodable: String(e) };
        }
        return {
          memberId: m.memberId, clientId: m.clientId, clientHost: m.clientHost,
          groupInstanceId: m.groupInstanceId ?? null, assignment, subscription,
        };
      }),
    })),
  };
}

const OPS = {
  listGroups: (admin) => admin.listGroups(),
  describeGroups: async (admin, o) => describe(await admin.describeGroups(o.groupIds)),
  fetchOffsets: (admin, o) => admin.fetchOffsets({ groupId: o.groupId, topics: o.topics }),
  resetOffsets: (admin, o) => admin.resetOffsets({ groupId: o.groupId, topic: o.topic, earliest: o.earliest ?? true }),
  setOffsets: (admin, o) => admin.setOffsets({
    groupId: o.groupId, topic: o.topic,
    partitions: o.partitions.map((p) => ({ partition: p.partition, offset: String(p.offset) })),
  }),
  deleteGroups: (admin, o) => admin.deleteGroups(o.groupIds),
};

await main(async (args) => {
  const kafka = makeKafka(args);
  const admin = kafka.admin({ retry: { retries: args.retries ?? 2, initialRetryTime: 100, maxRetryTime: 1000 } });
  await admin.connect();
  const results = [];
  try {
    for (const o of args.ops ?? []) {
      const fn = OPS[o.op];
      if (!fn) {
        const err = new Error(`unknown op ${o.op}`);
        err.harnessBug = true;
        throw err;
      }
      try {
        results.push({ ok: true, result: (await fn(admin, o)) ?? null });
      } catch (e) {
        results.push({ ok: false, error: serializeError(e) });
      }
    }
  } finally {
    await admin.disconnect();
  }
  return results;
});
