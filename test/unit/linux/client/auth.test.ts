// linux/client/auth.ts: what the Linux client presents for its flags. Challenge-response
// whenever it has a secret or a device key; the secret itself only with --bearer; the id
// alone beside a client certificate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { sdkCredentials } from '../../../../linux/client/auth.js';
import { authMessage, challengeMessage, credentials, extMessage, KIND_REQUEST, ANY } from '../../../../protocol/index.js';
import { Authenticator, hashSecret, newDeviceKey, parseAuthFile } from '../../../../server/src/control/auth.js';

test('a secret answers challenges by default (the server verifies the proof), and is sent as is only with --bearer', async () => {
  const secret = 'correct horse battery staple';
  const dev = newDeviceKey();
  const auth = new Authenticator(parseAuthFile(JSON.stringify({ clients: [{ id: 's', secret: await hashSecret(secret) }, { id: 'd', secret: dev.secret }] }), () => null));
  for (const [id, c] of [
    ['s', sdkCredentials({ id: 's', secret, bearer: false })!],
    ['d', sdkCredentials({ id: 'd', key: Buffer.from(dev.key, 'base64url'), bearer: false })!],
  ] as const) {
    assert.is(c.secret, undefined, 'no secret presented');
    const nonce = randomBytes(32);
    const req = extMessage(0, ANY, KIND_REQUEST, credentials(id));
    const proof = await c.prove!(challengeMessage(0, nonce, auth.kdf(id)), req);
    const r = await auth.respond(id, authMessage(id, nonce, 0), proof, 'test');
    assert.is(typeof r === 'object' && r.id, id);
  }
  assert.equal(sdkCredentials({ id: 's', secret, bearer: true }), { id: 's', secret });
  assert.equal(sdkCredentials({ id: 'c', bearer: false }), { id: 'c' }, 'beside a certificate: the id alone');
  assert.is(sdkCredentials(undefined), undefined);
  auth.close();
});

test.run();
