// Mutual TLS bound to identity: a client certificate names the auth id it was issued for in
// its subject's common name (CN), so that a certificate issued for one device cannot claim
// another's id, and a certificate alone can authenticate a device (admission.ts).
//
// The CN rather than a subject alternative name: ids may hold '@' and '_', which DNS names
// may not, and `openssl req -subj /CN=sensor-1` is the one thing every CA tool can do. A
// certificate with no CN, or more than one, names no id.

import type net from 'node:net';
import type { TLSSocket } from 'node:tls';

/** The id the peer certificate of `sock` names, '' when it names none; null when `sock` is not TLS or has no peer certificate. */
export function certificateId(sock: net.Socket): string | null {
  const tls = sock as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== 'function') return null;
  const cert = tls.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  const cn = cert.subject?.CN as string | string[] | undefined;
  return typeof cn === 'string' ? cn : '';
}
