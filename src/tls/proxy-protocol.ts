/**
 * The PROXY protocol (HAProxy's, v1 text and v2 binary) in front of TLS: an L4 balancer that
 * passes TCP through (so each tokbind node terminates TLS and has the connection's EKM) prefixes
 * every connection with a header naming the real client. tokbind reads that header before the
 * TLS handshake, with a bounded wait and a bounded size, and reports the client as the socket's
 * peer (`req.socket.remoteAddress`, logs, trust decisions). A connection without a valid header
 * is closed: behind a balancer, a header-less connection is either a misconfiguration or someone
 * who reached the node directly.
 *
 * The header is framed here (how many bytes belong to it: small and security-critical) and
 * parsed by `proxy-protocol-js`; its results are then checked again (addresses, ports), since a
 * regular expression that accepts any token as an address is not a validator.
 *
 * Spec: https://www.haproxy.org/download/2.0/doc/proxy-protocol.txt
 */
import { isIP, Server as NetServer, type Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import {
  AddressFamilyType,
  Command,
  IPv4ProxyAddress,
  IPv6ProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { TokenBindingError } from '../errors.js';
import { socketSlot } from './socket-slot.js';

/** The 12-byte v2 signature (`\r\n\r\n\0\r\nQUIT\n`). */
const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** v1: "PROXY " … CRLF, at most 107 bytes including the CRLF (spec §2.1). */
export const PROXY_PROTOCOL_V1_MAX_BYTES = 107;
/**
 * v2: 16 fixed bytes plus the address block and TLVs. The length field allows 65,535; tokbind
 * accepts at most this many bytes in all (addresses take 12–216; the rest is TLVs, which
 * HAProxy adds only when asked, e.g. `send-proxy-v2-ssl`).
 */
export const PROXY_PROTOCOL_V2_MAX_BYTES = 16 + 1024;
/** Default wait for the whole header, from the moment the connection is accepted. */
export const PROXY_PROTOCOL_DEFAULT_TIMEOUT_MS = 5_000;

export interface ProxyProtocolOptions {
  /** How long a connection may take to send its whole header before it is closed. Default 5 s. */
  readonly timeoutMs?: number;
  /** Accepted versions. Default both (HAProxy's `send-proxy` is v1, `send-proxy-v2` v2). */
  readonly versions?: readonly (1 | 2)[];
}

/** What the header said about a connection. */
export interface ProxiedPeer {
  readonly version: 1 | 2;
  /**
   * `proxy`: relayed for a client, whose address is `remoteAddress`. `local`: the balancer's own
   * connection (v2 LOCAL, v1 UNKNOWN — health checks), whose peer stays the socket's own.
   */
  readonly command: 'proxy' | 'local';
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: 'IPv4' | 'IPv6';
  readonly localAddress?: string;
  readonly localPort?: number;
}

const peers = socketSlot<ProxiedPeer>('tokbind.proxiedPeer');

/** The PROXY protocol header a connection (raw or TLS) arrived with, if any. */
export function getProxiedPeer(socket: Socket): ProxiedPeer | undefined {
  // A TLSSocket made by a tls.Server over an accepted socket keeps it as `_parent`.
  return peers.find(socket);
}

function fail(message: string, cause: Record<string, unknown> = {}): TokenBindingError {
  return new TokenBindingError('ERR_TB_PROXY_PROTOCOL', message, { field: 'proxy_protocol', ...cause });
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array, length = prefix.length): boolean {
  const n = Math.min(length, bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

const V1_PREFIX = new TextEncoder().encode('PROXY ');

/**
 * Frames a PROXY protocol header at the start of `bytes` (all that a connection has sent so far).
 * Returns the header's length once it is complete, 0 while more bytes are needed, and throws a
 * coded error as soon as the bytes cannot be a header (or exceed the caps). Each call looks at a
 * bounded prefix (at most the v1 or v2 cap), so a trickling sender costs O(cap) per chunk.
 */
export function frameProxyProtocolHeader(bytes: Uint8Array, versions: readonly (1 | 2)[] = [1, 2]): number {
  if (bytes.length === 0) return 0;
  const couldBeV2 = versions.includes(2) && startsWith(bytes, V2_SIGNATURE);
  const couldBeV1 = versions.includes(1) && startsWith(bytes, V1_PREFIX);
  if (!couldBeV1 && !couldBeV2) throw fail('connection did not start with a PROXY protocol header', { expected: versions.map((v) => `v${v}`) });
  if (couldBeV2) {
    if (bytes.length < 16) return 0;
    const total = 16 + ((bytes[14]! << 8) | bytes[15]!);
    if (total > PROXY_PROTOCOL_V2_MAX_BYTES) throw fail('PROXY protocol v2 header too large', { expected: PROXY_PROTOCOL_V2_MAX_BYTES, actual: total });
    return bytes.length >= total ? total : 0;
  }
  const limit = Math.min(bytes.length, PROXY_PROTOCOL_V1_MAX_BYTES);
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (bytes[i] === 0x0a) {
      if (bytes[i - 1] !== 0x0d) throw fail('PROXY protocol v1 line does not end in CRLF');
      return i + 1;
    }
  }
  if (bytes.length >= PROXY_PROTOCOL_V1_MAX_BYTES) throw fail('PROXY protocol v1 header too long', { expected: PROXY_PROTOCOL_V1_MAX_BYTES });
  return 0;
}

function port(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw fail(`PROXY protocol ${field} is not a port`, { field: `proxy_protocol.${field}` });
  return value;
}

function ipv6(bytes: readonly number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Canonical text (RFC 5952) through the URL parser: compresses the longest zero run.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/**
 * Parses a complete header (exactly the bytes `frameProxyProtocolHeader` framed) into the peer
 * it names. v1 is parsed by proxy-protocol-js and its addresses and ports checked with node:net;
 * v2 likewise. `PROXY UNKNOWN` (v1) and LOCAL / UNSPEC (v2) give `command: 'local'`.
 *
 * @throws {TokenBindingError} `ERR_TB_PROXY_PROTOCOL` for anything that is not a valid header
 * @example
 * ```ts
 * parseProxyProtocolHeader(Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 51000 8443\r\n'))
 * // { version: 1, command: 'proxy', remoteAddress: '192.0.2.7', remotePort: 51000, … }
 * ```
 */
export function parseProxyProtocolHeader(header: Uint8Array): ProxiedPeer {
  if (startsWith(header, V2_SIGNATURE) && header.length >= 16) {
    let parsed: V2ProxyProtocol;
    try {
      parsed = V2ProxyProtocol.parse(header);
    } catch (err) {
      throw fail(`invalid PROXY protocol v2 header: ${(err as { message?: string }).message ?? String(err)}`);
    }
    const address = parsed.proxyAddress;
    if (parsed.command === Command.LOCAL || parsed.addressFamilyType === AddressFamilyType.UNSPEC) {
      return { version: 2, command: 'local', remoteAddress: '', remotePort: 0, remoteFamily: 'IPv4' };
    }
    if (address instanceof IPv4ProxyAddress) {
      return {
        version: 2,
        command: 'proxy',
        remoteAddress: address.sourceAddress.address.join('.'),
        remotePort: port(address.sourcePort, 'source_port'),
        remoteFamily: 'IPv4',
        localAddress: address.destinationAddress.address.join('.'),
        localPort: port(address.destinationPort, 'destination_port'),
      };
    }
    if (address instanceof IPv6ProxyAddress) {
      return {
        version: 2,
        command: 'proxy',
        remoteAddress: ipv6(address.sourceAddress.address),
        remotePort: port(address.sourcePort, 'source_port'),
        remoteFamily: 'IPv6',
        localAddress: ipv6(address.destinationAddress.address),
        localPort: port(address.destinationPort, 'destination_port'),
      };
    }
    throw fail('PROXY protocol v2 address family not supported (AF_UNIX)', { actual: parsed.addressFamilyType });
  }
  const line = Buffer.from(header.buffer, header.byteOffset, header.length).toString('latin1');
  if (line === 'PROXY UNKNOWN\r\n' || line.startsWith('PROXY UNKNOWN ')) {
    return { version: 1, command: 'local', remoteAddress: '', remotePort: 0, remoteFamily: 'IPv4' };
  }
  let parsed: V1ProxyProtocol;
  try {
    parsed = V1ProxyProtocol.parse(line);
  } catch (err) {
    throw fail(`invalid PROXY protocol v1 header: ${(err as { message?: string }).message ?? String(err)}`);
  }
  const family = parsed.inetProtocol === 'TCP4' ? 4 : parsed.inetProtocol === 'TCP6' ? 6 : 0;
  const source = parsed.source.ipAddress;
  const destination = parsed.destination.ipAddress;
  if (family === 0 || isIP(source) !== family || isIP(destination) !== family || (parsed.data ?? '') !== '') {
    throw fail('invalid PROXY protocol v1 header: addresses do not match the protocol', { field: 'proxy_protocol.address' });
  }
  const decimal = /^(0|[1-9][0-9]{0,4})$/;
  const ports = line.slice(0, -2).split(' ').slice(4);
  if (ports.length !== 2 || !ports.every((p) => decimal.test(p))) throw fail('invalid PROXY protocol v1 header: ports', { field: 'proxy_protocol.port' });
  return {
    version: 1,
    command: 'proxy',
    remoteAddress: source,
    remotePort: port(parsed.source.port, 'source_port'),
    remoteFamily: family === 4 ? 'IPv4' : 'IPv6',
    localAddress: destination,
    localPort: port(parsed.destination.port, 'destination_port'),
  };
}

function reportPeer(socket: Socket, peer: ProxiedPeer): void {
  if (peer.command !== 'proxy') return;
  Object.defineProperties(socket, {
    remoteAddress: { value: peer.remoteAddress, configurable: true },
    remotePort: { value: peer.remotePort, configurable: true },
    remoteFamily: { value: peer.remoteFamily, configurable: true },
  });
}

/**
 * Puts PROXY protocol reading in front of a TLS (or https, or http2 secure) server: returns the
 * `net.Server` to listen on instead of `server`. Each accepted connection must send a complete,
 * valid header within `timeoutMs`; then its socket (and the TLS socket on top of it) reports the
 * client named in the header as its peer, and the connection is handed to `server`. Invalid or
 * slow connections are destroyed; the front server emits `'proxyProtocolError'` with the coded
 * error and the socket's own peer. Closing the front server stops new connections; connections
 * already handed over belong to `server`.
 *
 * @example
 * ```ts
 * const server = createServer({ key, cert }, app)
 * acceptProxyProtocol(server).listen(8443)   // haproxy: server n1 127.0.0.1:8443 send-proxy-v2
 * ```
 */
export function acceptProxyProtocol(server: TlsServer, options: ProxyProtocolOptions = {}): NetServer {
  const timeoutMs = options.timeoutMs ?? PROXY_PROTOCOL_DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new TypeError('proxyProtocol.timeoutMs must be a positive integer');
  const versions = options.versions ?? [1, 2];
  if (!Array.isArray(versions) || versions.length === 0 || !versions.every((v) => v === 1 || v === 2)) {
    throw new TypeError('proxyProtocol.versions must be a non-empty array of 1 and 2');
  }
  // The TLS socket reports the header's client too (req.socket is the TLS socket).
  server.on('secureConnection', (tlsSocket: TLSSocket) => {
    const peer = getProxiedPeer(tlsSocket);
    if (peer !== undefined) reportPeer(tlsSocket, peer);
  });
  const front = new NetServer({ pauseOnConnect: false });
  front.on('connection', (socket: Socket) => {
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => abort(fail('PROXY protocol header not received in time', { expected: timeoutMs })), timeoutMs);
    timer.unref();
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
    };
    const abort = (error: TokenBindingError): void => {
      cleanup();
      front.emit('proxyProtocolError', error, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
      socket.destroy();
    };
    const onError = (): void => cleanup();
    const onEnd = (): void => abort(fail('connection ended before its PROXY protocol header'));
    const onData = (chunk: Buffer): void => {
      // Keep only what can still belong to the header: at most the larger cap.
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      let length: number;
      try {
        length = frameProxyProtocolHeader(received.subarray(0, PROXY_PROTOCOL_V2_MAX_BYTES), versions);
      } catch (err) {
        abort(err as TokenBindingError);
        return;
      }
      if (length === 0) return;
      let peer: ProxiedPeer;
      try {
        peer = parseProxyProtocolHeader(received.subarray(0, length));
      } catch (err) {
        abort(err as TokenBindingError);
        return;
      }
      cleanup();
      socket.pause();
      peers.set(socket, peer);
      reportPeer(socket, peer);
      const rest = received.subarray(length);
      if (rest.length > 0) socket.unshift(rest);
      // The TLS socket takes over the handle; what was already read (and unshifted) it reads
      // from this socket's buffer first. Resuming here would drain that buffer to no one.
      server.emit('connection', socket);
    };
    // A socket handed over after it ended or failed (its 'end' or 'error' already fired): drop it now.
    if (socket.destroyed || socket.readableEnded) {
      abort(fail('connection ended before its PROXY protocol header'));
      return;
    }
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
  });
  return front;
}
