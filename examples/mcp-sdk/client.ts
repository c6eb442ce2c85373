// An MCP client (the official TypeScript SDK) behind Chaperone with nothing configured but the MCP URL:
// the gateway's 401 names its OAuth 2.0 Protected Resource Metadata (RFC 9728); the SDK's auth() reads
// it, finds the issuer, registers itself (RFC 7591), sends the person to log in (authorization code +
// PKCE, with the MCP URL as the RFC 8707 resource) and retries with the token. The listing it gets
// holds only the tools the policy lets this person use; a tool call that needs a human's approval is
// answered with a URL elicitation (MCP 2025-11-25, error -32042) pointing at the approval, and the
// same call goes through once a reviewer approved it.
//
//   ./chaperone up --dev --config chaperone.yaml   # an MCP target with `mcp.resource` (docs/agents.md)
//   npx tsx examples/mcp-sdk/client.ts http://127.0.0.1:10000/mcp read_file '{"path":"/srv/public/a.txt"}'
//
// Follow the printed URL to log in (the dev issuer lets you pick a demo user); test/e2e/mcp-authorization
// runs this client through Envoy.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import { type CallToolResult, UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';

/** Keeps what the SDK's OAuth flow needs for one run in memory (a real host keeps it in its keychain). */
export class MemoryOAuthProvider implements OAuthClientProvider {
  private info: OAuthClientInformationMixed | undefined;
  private saved: OAuthTokens | undefined;
  private verifier = '';
  /** Where the person must go to log in (set when the SDK asks for a login). */
  authorizationUrl: URL | null = null;

  constructor(
    readonly redirectUrl: string,
    private readonly name = 'chaperone-mcp-example',
  ) {}

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.name,
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

export interface ConnectOptions {
  /** The MCP endpoint through the gateway, e.g. http://127.0.0.1:10000/mcp. */
  url: string;
  /** Where the login redirects back to (a loopback URL this process listens on). */
  redirectUrl: string;
  /** Takes the person through the login at `authorizationUrl`; resolves with the authorization code. */
  login(authorizationUrl: URL): Promise<string>;
  provider?: MemoryOAuthProvider;
  fetch?: typeof fetch;
}

/** Connects, logging in first when the gateway answers 401 (the SDK's discovery does the rest). */
export async function connectWithLogin(
  o: ConnectOptions,
): Promise<{ client: Client; provider: MemoryOAuthProvider }> {
  const provider = o.provider ?? new MemoryOAuthProvider(o.redirectUrl);
  const transport = () =>
    new StreamableHTTPClientTransport(new URL(o.url), {
      authProvider: provider,
      ...(o.fetch ? { fetch: o.fetch } : {}),
    });
  const first = transport();
  const client = new Client({ name: 'chaperone-mcp-example', version: '1.0.0' });
  try {
    await client.connect(first);
    return { client, provider };
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || !provider.authorizationUrl) throw err;
  }
  await first.finishAuth(await o.login(provider.authorizationUrl));
  const again = new Client({ name: 'chaperone-mcp-example', version: '1.0.0' });
  await again.connect(transport());
  return { client: again, provider };
}

/** The approval a gated call waits for, as the gateway's URL elicitation names it. */
export interface PendingApproval {
  approvalId: string;
  url: string;
  message: string;
}

/**
 * Calls a tool; when the gateway asks for a human's approval (URLElicitationRequiredError), shows it
 * with `onApproval` — which resolves once the person says it was approved — and calls again.
 */
export async function callWithApproval(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  onApproval: (pending: PendingApproval) => Promise<void>,
): Promise<CallToolResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await client.callTool({ name, arguments: args })) as CallToolResult;
    } catch (err) {
      if (!(err instanceof UrlElicitationRequiredError) || attempt > 0) throw err;
      const [e] = err.elicitations;
      if (!e) throw err;
      await onApproval({ approvalId: e.elicitationId, url: e.url, message: e.message });
    }
  }
}

/** The login as a person does it: the URL opens in a browser, the code comes back to a loopback port. */
async function browserLogin(): Promise<{
  redirectUrl: string;
  login: (u: URL) => Promise<string>;
  close(): void;
}> {
  let deliver: (code: string) => void = () => undefined;
  const code = new Promise<string>((r) => {
    deliver = r;
  });
  const server = createServer((req, res) => {
    const got = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('code');
    res.end(got ? 'Signed in: you can close this tab.' : 'No code in this request.');
    if (got) deliver(got);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    redirectUrl: `http://127.0.0.1:${port}/callback`,
    login: async (url) => {
      process.stdout.write(`Log in: ${url.href}\n`);
      return code;
    },
    close: () => server.close(),
  };
}

async function main(): Promise<void> {
  const [url = 'http://127.0.0.1:10000/mcp', tool, json = '{}'] = process.argv.slice(2);
  const browser = await browserLogin();
  try {
    const { client } = await connectWithLogin({
      url,
      redirectUrl: browser.redirectUrl,
      login: browser.login,
    });
    const { tools } = await client.listTools();
    process.stdout.write(`tools you may use: ${tools.map((t) => t.name).join(', ')}\n`);
    if (tool) {
      const result = await callWithApproval(client, tool, JSON.parse(json), async (p) => {
        process.stdout.write(`${p.message}\npress Enter once it is approved…\n`);
        await new Promise((r) => process.stdin.once('data', r));
      });
      process.stdout.write(`${JSON.stringify(result.content)}\n`);
    }
    await client.close();
  } finally {
    browser.close();
    process.stdin.unref?.();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
