// The cluster's message seal (src/cluster_wire.h), as a node holding the
// secret computes it: for tests that speak NATS as a node (a raw peer with
// the secret) or as an attacker (without it).
import { createHmac } from 'node:crypto';

export const ENV = { OP: 0x4f, REPLY: 0x52, FANOUT: 0x46, ALIVE: 0x41 };
export const ENV_HEAD = 27;

/** The message key: HMAC-SHA256(secret, label); the secret file's text. */
export function messageKey(secretText) {
  const secret = Buffer.from(secretText.replace(/[\r\n ]+$/, ''));
  return createHmac('sha256', secret).update('wsgate cluster NATS messages v1').digest();
}

let lastSeq = 0n;
/** Nanoseconds since the epoch, strictly increasing in this process. */
export function nextSeq() {
  const now = BigInt(Date.now()) * 1000000n;
  lastSeq = now > lastSeq ? now : lastSeq + 1n;
  return lastSeq;
}

function lp(s) {
  const b = Buffer.from(s ?? '');
  const l = Buffer.alloc(2);
  l.writeUInt16BE(b.length);
  return Buffer.concat([l, b]);
}

/** head + payload, sealed for subject (and reply) as node `node`. */
export function seal(key, { type, node, seq = nextSeq(), subject, reply = '', payload = Buffer.alloc(0) }) {
  const head = Buffer.alloc(ENV_HEAD);
  head[0] = 1;
  head[1] = type;
  head[2] = node;
  head.writeBigUInt64BE(BigInt(seq), 3);
  const tag = createHmac('sha256', key).update(lp(subject)).update(lp(reply))
    .update(head.subarray(0, ENV_HEAD - 16)).update(payload).digest().subarray(0, 16);
  tag.copy(head, ENV_HEAD - 16);
  return Buffer.concat([head, payload]);
}

/** The payload of a sealed message (no check). */
export const unseal = (data) => data.subarray(ENV_HEAD);
