/**
 * ClientHello bytes for tests: hand-built ones, and real ones captured from Node's TLS client at
 * test time (then edited: Node's client cannot offer extension 24 itself).
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { ClientHelloReader } from '../../src/tls/client-hello.js';

export type Extension = readonly [type: number, body: Uint8Array];

export interface ClientHelloSpec {
  readonly legacyVersion?: number;
  readonly sessionId?: Uint8Array;
  readonly cipherSuites?: readonly number[];
  readonly compressionMethods?: readonly number[];
  /** `undefined`: no extensions block at all (legal for TLS 1.2). */
  readonly extensions?: readonly Extension[];
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

/** A ClientHello handshake message (msg_type || u24 length || body). */
export function buildClientHello(spec: ClientHelloSpec = {}): Buffer {
  const { legacyVersion = 0x0303, sessionId = new Uint8Array(32).fill(7), cipherSuites = [0x1301, 0xc02b, 0x00ff] } = spec;
  const compression = spec.compressionMethods ?? [0];
  const parts: number[] = [...u16(legacyVersion), ...new Uint8Array(32).fill(0xaa)];
  parts.push(sessionId.length, ...sessionId);
  parts.push(...u16(cipherSuites.length * 2), ...cipherSuites.flatMap(u16));
  parts.push(compression.length, ...compression);
  if (spec.extensions !== undefined) {
    const block = spec.extensions.flatMap(([type, body]) => [...u16(type), ...u16(body.length), ...body]);
    parts.push(...u16(block.length), ...block);
  }
  const n = parts.length;
  return Buffer.from([1, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff, ...parts]);
}

/** Wraps a handshake message in handshake records of at most `fragment` bytes each. */
export function toRecords(message: Uint8Array, fragment = 16384, recordVersion = 0x0301): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < message.length; i += fragment) {
    const piece = message.subarray(i, i + fragment);
    out.push(Buffer.from([22, ...u16(recordVersion), ...u16(piece.length)]), Buffer.from(piece));
  }
  return Buffer.concat(out);
}

/** Offset of the u16 extensions length in a ClientHello handshake message. */
function extensionsOffset(message: Uint8Array): number {
  let p = 4 + 2 + 32;
  p += 1 + message[p]!;
  p += 2 + ((message[p]! << 8) | message[p + 1]!);
  p += 1 + message[p]!;
  return p;
}

/** Inserts an extension first in the extensions block and fixes every length above it. */
export function spliceExtension(message: Uint8Array, type: number, body: Uint8Array): Buffer {
  const at = extensionsOffset(message);
  const ext = Buffer.from([...u16(type), ...u16(body.length), ...body]);
  const out = Buffer.concat([message.subarray(0, at + 2), ext, message.subarray(at + 2)]);
  out.writeUInt16BE(out.readUInt16BE(at) + ext.length, at);
  const length = out.length - 4;
  out[1] = (length >> 16) & 0xff;
  out.writeUInt16BE(length & 0xffff, 2);
  return out;
}

export interface CapturedHello {
  /** The bytes on the wire (records). */
  readonly records: Buffer;
  /** The reassembled handshake message. */
  readonly message: Uint8Array;
}

/** The ClientHello a real Node TLS client sends with these options. */
export async function captureNodeClientHello(options: tls.ConnectionOptions = {}): Promise<CapturedHello> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const captured = new Promise<CapturedHello>((resolve, reject) => {
    server.once('connection', (socket) => {
      const reader = new ClientHelloReader();
      socket.on('data', (chunk: Buffer) => {
        try {
          const message = reader.push(chunk);
          if (message === null) return;
          resolve({ records: Buffer.from(reader.bytes), message: Uint8Array.from(message) });
        } catch (err) {
          reject(err);
        }
        socket.destroy();
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ...options });
  client.on('error', () => {});
  try {
    return await captured;
  } finally {
    client.destroy();
    server.close();
  }
}
