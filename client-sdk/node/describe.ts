// One line for people about a 'down' state. The SDK core reports a code and only what the
// code cannot say (its bundle for small devices carries no sentences); on Node, where bytes
// are cheap, this puts them back together, as simplevpn-client logs them.

import type { DownInfo } from '../src/client.js';

/** `timeout`: the client's `timeout` option, in seconds (10), which the timeouts name. */
export function describeDown(s: DownInfo, timeout = 10): string {
  const d = s.detail;
  const within = ` within ${timeout} s`;
  switch (s.reason) {
    case 'refused':
      // A simplevpn server's refusal always has a detail (its text, or the code).
      return d ? `refused by server: ${d}` : 'connection closed during the address request (a seed server refuses so)';
    case 'closed':
      return 'connection closed' + (d ? ': ' + d : '');
    case 'protocol_error':
      return 'protocol error from server: ' + d;
    case 'connect_timeout':
      return 'could not connect' + within;
    case 'request_timeout':
      return 'no reply to the address request' + within;
    case 'keepalive_timeout':
      return 'no answer to keepalive' + within;
    case 'expects_tls':
      return 'the server expects TLS on this port';
    default:
      // connect_failed, resolve_failed, certificate, certificate_name, not_tls: the transport's words.
      return d || s.reason;
  }
}
