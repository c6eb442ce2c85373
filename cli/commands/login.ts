// `chaperone login`: OpenID Connect authorization code flow with PKCE (RFC 7636) and a loopback
// redirect (RFC 8252), via openid-client. The browser signs in at the identity provider; the token
// lands in the user's cache, where `chaperone agent token`, `approvals` and `agents` find it.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { saveToken, tokenCachePath } from '../auth/token-cache.ts';
import { DEV_DEFAULTS } from '../dev/dev-config.ts';
import { action, CliError, EXIT } from '../exit.ts';

interface LoginOptions {
  issuer: string;
  clientId: string;
  scope: string;
  resource?: string;
  loginHint?: string;
  browser: boolean;
  timeout: string;
}

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', () => undefined); // no browser: the printed URL is enough
  child.unref();
}

/**
 * The first request to /callback whose `state` is ours. Any other request to the loopback port — a
 * wrong or missing state, another path — is answered 400/404 and ignored: another local process cannot
 * end the login (or plant its own code) by racing the browser to the callback.
 */
function awaitCallback(server: Server, redirectUri: string, state: string, timeoutMs: number): Promise<URL> {
  return new Promise<URL>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new CliError('ERR_API_UNAUTHENTICATED', 'no sign-in within the time limit', EXIT.auth)),
      timeoutMs,
    );
    server.on('request', (req, res) => {
      const got = new URL(req.url ?? '/', redirectUri);
      if (got.pathname !== '/callback') {
        res.writeHead(404).end();
        return;
      }
      if (got.searchParams.get('state') !== state) {
        res
          .writeHead(400, { 'content-type': 'text/plain' })
          .end('Not the sign-in this CLI is waiting for.\n');
        return;
      }
      res
        .writeHead(200, { 'content-type': 'text/plain' })
        .end('Signed in to Chaperone; you can close this tab.\n');
      clearTimeout(timer);
      server.removeAllListeners('request');
      resolve(got);
    });
  });
}

export async function login(
  o: LoginOptions,
  onUrl: (url: string) => void,
): Promise<{ subject: string; expiresAt: number }> {
  const issuer = new URL(o.issuer);
  const insecure =
    issuer.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname);
  // Loopback redirect on a port of our own; the provider accepts any port for a native client.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  try {
    const config = await oidc.discovery(issuer, o.clientId, { redirect_uris: [redirectUri] }, oidc.None(), {
      ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: o.scope,
      state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...(o.resource ? { resource: o.resource } : {}),
      ...(o.loginHint ? { login_hint: o.loginHint } : {}),
    });
    const callback = awaitCallback(server, redirectUri, state, Number(o.timeout) * 1000);
    onUrl(url.href);
    const tokens = await oidc.authorizationCodeGrant(
      config,
      await callback,
      { pkceCodeVerifier: verifier, expectedState: state },
      o.resource ? { resource: o.resource } : undefined,
    );
    const claims = decodeJwt(tokens.access_token);
    const expiresAt = claims.exp ?? Math.floor(Date.now() / 1000) + (tokens.expires_in ?? 3600);
    const subject = claims.sub ?? '?';
    await saveToken({ issuer: o.issuer, subject, access_token: tokens.access_token, expires_at: expiresAt });
    return { subject, expiresAt };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description('sign in with your identity provider (authorization code + PKCE); caches your token')
    .option('--issuer <url>', 'the OIDC issuer', `http://127.0.0.1:${DEV_DEFAULTS.idpPort}`)
    .option('--client-id <id>', 'the public client registered for the CLI', 'chaperone-dev-cli')
    .option('--scope <s>', 'scopes', 'openid email profile')
    .option(
      '--resource <uri>',
      'resource indicator for the access token audience',
      `urn:chaperone:audience:${DEV_DEFAULTS.audience}`,
    )
    .option(
      '--login-hint <user>',
      'who is signing in (the dev issuer signs this demo user in without a form)',
    )
    .option('--no-browser', 'only print the sign-in URL')
    .option('--timeout <s>', 'seconds to wait for the sign-in', '300')
    .action(
      action('login', async (o: LoginOptions) => {
        const { subject, expiresAt } = await login(o, (url) => {
          process.stderr.write(`Sign in at:\n  ${url}\n`);
          if (o.browser) openBrowser(url);
        });
        process.stderr.write(
          `logged in as ${subject}; token cached in ${tokenCachePath()} until ${new Date(expiresAt * 1000).toISOString()}\n`,
        );
      }),
    );
}
