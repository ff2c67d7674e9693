// What a credential check costs (SECURITY.md, Identity): the server's check of a challenge
// proof, a device's proof with the pure-JS simplevpn/hmac, and the server's check of a
// bearer secret (one scrypt). `node dist/js/bench/auth-proof.js`; prints one line each and
// the machine's load average, which these figures depend on.

import { loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { authMessage } from '../protocol/index.js';
import { scramProof } from '../client-sdk/src/hmac.js';
import { newDeviceKey, parseVerifier, verifyProof, verifySecret } from '../server/src/control/auth-scram.js';

function perOp(n: number, f: () => unknown): number {
  for (let i = 0; i < Math.min(n, 1000); i++) f(); // warm up
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - t) / 1e6 / n;
}

const dev = newDeviceKey();
const v = parseVerifier(dev.secret)!;
const key = Buffer.from(dev.key, 'base64url');
const message = authMessage('sensor-1', randomBytes(32), 0);
const proof = scramProof(key, message);
if (!verifyProof(v.hash, message, proof)) throw new Error('the proof does not verify');

const rows: Array<[string, number]> = [
  ['server: check a challenge proof (node:crypto)', perOp(20_000, () => verifyProof(v.hash, message, proof))],
  ['device: make a proof (pure-JS simplevpn/hmac)', perOp(5_000, () => scramProof(key, message))],
];
const t = Date.now();
const n = 20;
for (let i = 0; i < n; i++) await verifySecret(v, Buffer.from('not the secret'));
rows.push([`server: check a bearer secret (scrypt N=${v.N} r=${v.r} p=${v.p})`, (Date.now() - t) / n]);
for (const [what, ms] of rows) console.log(`${what.padEnd(56)} ${ms < 1 ? ms.toFixed(3) : ms.toFixed(1)} ms`);
console.log(`load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
