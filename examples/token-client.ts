/**
 * The client side of token-bound access tokens: tokbind's fetch gets a token bound to its Token
 * Binding key, or to its DPoP key, from the example token endpoint (examples/token-server.ts)
 * and presents it; the DPoP key lives in the same key store as the Token Binding keys.
 *
 * In your application: `import { DpopSigner, TokenBindingDispatcher, tokbindFetch } from 'tokbind'`.
 */
import { DpopSigner, MemoryKeyStore, TokenBindingDispatcher, tokbindFetch, type TokenBindingKeyStore } from '../src/index.js';

export interface CallResult {
  readonly status: number;
  readonly body: unknown;
}

/** Gets a token bound the way `kind` says and calls GET /api/me with it. */
export async function callApi(baseUrl: string, kind: 'tbh' | 'jkt', options: { ca: string; keyStore?: TokenBindingKeyStore }): Promise<{ token: string; me: CallResult }> {
  const keyStore = options.keyStore ?? new MemoryKeyStore();
  const dispatcher = new TokenBindingDispatcher({ keyStore, connect: { ca: options.ca } });
  try {
    const dpop = kind === 'jkt' ? await DpopSigner.fromKeyStore(keyStore) : undefined;
    // The token request carries a DPoP proof (no access token yet) or just our Token Binding.
    const issued = await tokbindFetch(`${baseUrl}/token`, { dispatcher, method: 'POST', ...(dpop ? { dpop } : {}) });
    const { access_token: token } = (await issued.json()) as { access_token: string };
    const res = await tokbindFetch(`${baseUrl}/api/me`, { dispatcher, accessToken: token, ...(dpop ? { dpop } : {}) });
    return { token, me: { status: res.status, body: await res.json() } };
  } finally {
    await dispatcher.close();
  }
}

/** Presents `token` from another client (its own keys): what a thief who copied it gets. */
export async function callAsThief(baseUrl: string, token: string, kind: 'tbh' | 'jkt', options: { ca: string }): Promise<{ status: number; challenge: string | null }> {
  const keyStore = new MemoryKeyStore();
  const dispatcher = new TokenBindingDispatcher({ keyStore, connect: { ca: options.ca } });
  try {
    const dpop = kind === 'jkt' ? await DpopSigner.fromKeyStore(keyStore) : undefined;
    const res = await tokbindFetch(`${baseUrl}/api/me`, { dispatcher, accessToken: token, ...(dpop ? { dpop } : {}) });
    await res.body?.cancel();
    return { status: res.status, challenge: res.headers.get('www-authenticate') };
  } finally {
    await dispatcher.close();
  }
}
