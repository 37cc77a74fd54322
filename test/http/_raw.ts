/**
 * Raw HTTP/1.1 over a real TLS socket, for what Node's client will not send the way a test needs
 * (upgrades, CONNECT, chunked bodies with trailers, exact header bytes).
 */
import type { TLSSocket } from 'node:tls';

/** Writes `request` and resolves with everything received until `until` matches or the socket closes. */
export async function raw(socket: TLSSocket, request: string | readonly string[], until: RegExp): Promise<string> {
  let text = '';
  const done = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (until.test(text)) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve());
  });
  for (const part of typeof request === 'string' ? [request] : request) socket.write(part);
  await done;
  return text;
}

/** The EKM of a raw client socket, taken with Node's API (no context). */
export function clientEkm(socket: TLSSocket): Uint8Array {
  const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  return new Uint8Array(exportNoContext.call(socket, 32, 'EXPORTER-Token-Binding'));
}

/** The JSON body of a raw HTTP/1.1 response (content-length or chunked with one chunk). */
export function jsonBody(response: string): unknown {
  const body = response.slice(response.indexOf('\r\n\r\n') + 4);
  const start = body.indexOf('{');
  return JSON.parse(body.slice(start, body.lastIndexOf('}') + 1));
}
