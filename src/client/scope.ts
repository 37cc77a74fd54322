import { parse } from 'tldts';
import { TokenBindingError } from '../errors.js';

/**
 * The key scope of a server: the scope under which a client keeps one Token Binding key pair
 * (RFC 8473 §2.1: "no wider than the effective top-level domain (public suffix) plus one
 * label", eTLD+1). `a.example.co.uk` and `b.example.co.uk` share `example.co.uk`;
 * `example.com` and `example.org` do not. Private public-suffix entries count
 * (`alice.github.io` and `bob.github.io` are distinct), which keeps the scope as narrow as a
 * browser's cookie scope. An IP address is its own scope (IPv6 without brackets), and so is a
 * host that is itself a public suffix or has no registrable domain (`localhost`).
 *
 * Accepts a URL, an absolute URL string, or a host name (an optional `:port` is ignored).
 *
 * @throws TokenBindingError `ERR_TB_CLIENT` when no host name can be read from the input.
 * @example
 * ```ts
 * tokenBindingScope('https://login.example.co.uk/authorize') // 'example.co.uk'
 * tokenBindingScope('127.0.0.1:8443')                        // '127.0.0.1'
 * ```
 */
export function tokenBindingScope(urlOrHost: string | URL): string {
  let hostname: string;
  if (urlOrHost instanceof URL) {
    hostname = urlOrHost.hostname;
  } else if (typeof urlOrHost === 'string') {
    hostname = hostnameOf(urlOrHost);
  } else {
    throw new TypeError('urlOrHost must be a string or a URL');
  }
  if (hostname.startsWith('[') && hostname.endsWith(']')) hostname = hostname.slice(1, -1);
  // `example.com.` and `example.com` are one server.
  if (hostname.endsWith('.')) hostname = hostname.slice(0, -1);
  if (hostname === '') {
    throw new TokenBindingError('ERR_TB_CLIENT', 'no host name to scope a Token Binding key to', {
      field: 'host',
      actual: String(urlOrHost),
    });
  }
  const info = parse(hostname, { allowPrivateDomains: true });
  if (info.isIp === true) return hostname;
  return info.domain ?? hostname;
}

function hostnameOf(input: string): string {
  // Go through WHATWG URL parsing either way: it lowercases, turns IDNs into punycode and
  // validates, so one server never ends up under two spellings.
  const candidate = /^[a-z][a-z0-9+.-]*:\/\//i.test(input) ? input : `https://${input}`;
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    throw new TokenBindingError('ERR_TB_CLIENT', 'not a URL or host name', { field: 'host', actual: input });
  }
  return url.hostname;
}
