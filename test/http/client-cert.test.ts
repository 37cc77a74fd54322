import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { TokenBindingError } from '../../src/errors.js';
import {
  MAX_CLIENT_CERT_BYTES,
  clientCertificateFromTrustedProxy,
  formatClientCertHeader,
  parseClientCertHeader,
} from '../../src/http/client-cert.js';
import { createTestCertificate, testCertificate } from '../_tls.js';

const der = new Uint8Array(new X509Certificate(testCertificate.cert).raw);

test('Client-Cert: format and parse round-trip a real certificate (RFC 9440 §2.2 sf-binary)', (t) => {
  const value = formatClientCertHeader(der);
  t.regex(value, /^:[A-Za-z0-9+/]+={0,2}:$/);
  t.deepEqual(parseClientCertHeader(value), der);
  t.deepEqual(parseClientCertHeader(` ${value} `), der, 'OWS around a field value is not part of it');
  t.deepEqual(parseClientCertHeader(value.replace(/=+:$/, ':')), der, 'missing padding is accepted (RFC 8941 §4.2.7)');
  t.deepEqual(parseClientCertHeader(':AA:'), Uint8Array.of(0));
  t.throws(() => formatClientCertHeader(new Uint8Array()), { instanceOf: TypeError });
});

test('Client-Cert: anything but one canonical sf-binary is refused with ERR_TB_FORWARDED_CLIENT_CERT', (t) => {
  const b64 = Buffer.from(der).toString('base64');
  const bad = [
    b64, // no colons
    `:${b64}`,
    `:${b64}:, :${b64}:`, // a list
    ':AB==:', // non-zero trailing bits: not canonical
    ':AAA==:', // stray padding
    `:${b64}A:`, // a dangling character
    `:${b64.slice(0, 10)} ${b64.slice(10)}:`,
    '::',
    `:${Buffer.alloc(MAX_CLIENT_CERT_BYTES + 3).toString('base64')}:`,
    `:${b64.replace(/\+/g, '-')}:`.includes('-') ? `:${b64.replace(/\+/g, '-')}:` : ':-_-_:',
  ];
  for (const value of bad) {
    const error = t.throws(() => parseClientCertHeader(value), { instanceOf: TokenBindingError }, value.slice(0, 40));
    t.is(error?.code, 'ERR_TB_FORWARDED_CLIENT_CERT');
  }
});

async function backend(handler: http.RequestListener): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

function get(port: number, headers: http.OutgoingHttpHeaders): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

test('clientCertificateFromTrustedProxy: the header only from a trusted peer; repeated or malformed from it is an error', async (t) => {
  const trusted = clientCertificateFromTrustedProxy({ addresses: ['127.0.0.1'] });
  const other = clientCertificateFromTrustedProxy({ addresses: ['10.0.0.0/8'] });
  const server = await backend((req, res) => {
    const answer = (f: typeof trusted): string => {
      try {
        const got = f(req);
        return got === null ? 'null' : Buffer.from(got).toString('base64').slice(0, 16);
      } catch (err) {
        return (err as TokenBindingError).code;
      }
    };
    res.end(JSON.stringify({ trusted: answer(trusted), other: answer(other) }));
  });
  t.teardown(() => server.close());
  const prefix = Buffer.from(der).toString('base64').slice(0, 16);
  t.deepEqual(JSON.parse(await get(server.port, { 'client-cert': formatClientCertHeader(der) })), { trusted: prefix, other: 'null' });
  t.deepEqual(JSON.parse(await get(server.port, {})), { trusted: 'null', other: 'null' });
  t.deepEqual(JSON.parse(await get(server.port, { 'Client-Cert': [formatClientCertHeader(der), formatClientCertHeader(der)] })), {
    trusted: 'ERR_TB_FORWARDED_CLIENT_CERT',
    other: 'null',
  });
  t.deepEqual(JSON.parse(await get(server.port, { 'client-cert': 'garbage' })), { trusted: 'ERR_TB_FORWARDED_CLIENT_CERT', other: 'null' });
});

test('clientCertificateFromTrustedProxy: a direct TLS client is judged by its own certificate, never by a header it sends', async (t) => {
  const client = await createTestCertificate({ commonName: 'client', altNames: ['client.test'] });
  const clientDer = new Uint8Array(new X509Certificate(client.cert).raw);
  const fromSocket = clientCertificateFromTrustedProxy({ addresses: ['10.0.0.0/8'] });
  const server = https.createServer({ key: testCertificate.key, cert: testCertificate.cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const got = fromSocket(req);
    res.end(got === null ? 'null' : Buffer.from(got).toString('base64'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, ca: testCertificate.ca, servername: 'localhost', key: client.key, cert: client.cert, headers: { 'client-cert': formatClientCertHeader(der) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  t.is(body, Buffer.from(clientDer).toString('base64'));
});
