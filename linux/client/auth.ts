// The Linux client's credentials: from the flags to what the SDK's Client presents. With a
// secret or a device key it answers the server's challenge (nothing replayable crosses the
// network); --bearer presents the secret itself, for servers from before challenge-response;
// a client certificate alone (--cert, no --id) needs none of this: the server takes the id
// from the certificate.

import { challengeCredentials } from '../../client-sdk/node/auth.js';
import type { ClientOptions } from '../../client-sdk/src/client.js';
import { readFlagFile, type Usage } from '../../common/args.js';

/** The credentials the flags give: an id and a secret or a device key, or an id alone (a client certificate proves it). */
export interface CredentialSettings {
  id: string;
  secret?: string;
  key?: Uint8Array;
  /** Present the secret itself (--bearer) instead of answering a challenge. */
  bearer: boolean;
}

/** Reads --id, --secret-file (or SIMPLEVPN_SECRET), --device-key-file and --bearer. */
export function parseCredentials(usage: Usage, args: Record<string, any>, env: NodeJS.ProcessEnv, withCert: boolean): CredentialSettings | undefined {
  const given = ['id', 'secret-file', 'device-key-file'].some((k) => args[k] !== undefined) || args.bearer;
  if (!given) return undefined;
  if (args.seed) usage('--seed cannot carry credentials: the seed protocol has no room for them');
  if (!args.id) usage(`--${args['device-key-file'] !== undefined ? 'device-key-file' : args.bearer ? 'bearer' : 'secret-file'} needs --id`);
  const id = String(args.id);
  const bearer = Boolean(args.bearer);
  if (args['device-key-file'] !== undefined) {
    if (args['secret-file'] !== undefined || bearer) usage('--device-key-file goes without --secret-file and --bearer: the key answers challenges, and is not the secret');
    const text = readFlagFile(usage, 'device-key-file', args['device-key-file']).toString().trim();
    const key = /^[A-Za-z0-9_-]{43}$/.test(text) ? Buffer.from(text, 'base64url') : null;
    if (key === null || key.length !== 32) usage('--device-key-file must hold the "key" that simplevpn-server --new-device-key printed (43 base64url characters)');
    return { id, key: key!, bearer };
  }
  const secret = args['secret-file'] !== undefined ? readFlagFile(usage, 'secret-file', args['secret-file']).toString().replace(/\r?\n$/, '') : env.SIMPLEVPN_SECRET;
  if (!secret) {
    // A client certificate proves the id by itself.
    if (withCert && !bearer) return { id, bearer };
    usage('--id needs a secret: --secret-file FILE or the SIMPLEVPN_SECRET environment variable (or a device key: --device-key-file; or a client certificate: --cert)');
  }
  if (!/^[\x20-\x7e]{1,255}$/.test(secret!)) usage('the secret must be 1 to 255 printable ASCII characters');
  return { id, secret, bearer };
}

/** What the SDK's Client presents for `c`. */
export function sdkCredentials(c: CredentialSettings | undefined): ClientOptions['credentials'] {
  if (c === undefined) return undefined;
  if (c.bearer) return { id: c.id, secret: c.secret };
  if (c.key) return challengeCredentials(c.id, { key: c.key });
  if (c.secret !== undefined) return challengeCredentials(c.id, { secret: c.secret });
  return { id: c.id };
}
