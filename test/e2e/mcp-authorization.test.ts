// The MCP SDK client through real Envoy with nothing but the MCP URL: the gateway's 401 names its
// Protected Resource Metadata (RFC 9728), which names the dev issuer; the SDK's auth() registers the
// client (RFC 7591), a person picks a demo user at the dev issuer's sign-in page, and the token it gets
// carries the MCP URL as its audience (RFC 8707). The listing (answered by the server as a
// text/event-stream) holds only the tools the policy lets alice use, and the audit trail records what
// was hidden; a gated tool call is a URL elicitation naming the approval, and the same call succeeds
// once a reviewer approved it. A token for the MCP target is refused at another target.
import { createServer, type Server } from 'node:http';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  callWithApproval,
  connectWithLogin,
  type MemoryOAuthProvider,
} from '../../examples/mcp-sdk/client.ts';
import { runCli } from '../support/cli.ts';
import { devBrowserLogin } from '../support/dev-browser.ts';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
let upstream: Server;
let mcpUrl: string;
const executed: string[] = [];
const REDIRECT = 'http://127.0.0.1:1/callback';

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'files', version: '1.0.0' });
  const tool = (name: string, schema: Record<string, z.ZodType> = {}) =>
    server.registerTool(name, { description: name, inputSchema: schema }, async (args) => {
      executed.push(`${name} ${JSON.stringify(args)}`);
      return { content: [{ type: 'text', text: `${name} done` }] };
    });
  tool('list_files');
  tool('read_file', { path: z.string() });
  tool('delete_repo', { name: z.string() });
  tool('drop_database');
  tool('exfiltrate', { to: z.string() });
  return server;
}

beforeAll(async () => {
  const port = await freePort();
  // Stateless streamable HTTP, answering every POST as a text/event-stream (the SDK server's default).
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const server = mcpServer();
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
        res.on('close', () => {
          void transport.close();
          void server.close();
        });
        await server.connect(transport);
        const text = Buffer.concat(chunks).toString('utf8');
        await transport.handleRequest(req, res, text ? JSON.parse(text) : undefined);
      })();
    });
  });
  await new Promise<void>((r) => upstream.listen(port, '127.0.0.1', () => r()));
  const ports = await gatewayPorts();
  mcpUrl = `http://127.0.0.1:${ports.listener}/mcp`;
  const extra = `  - name: tools
    upstream: http://127.0.0.1:${port}
    protocol: mcp
    match:
      path_prefix: /mcp
    mcp:
      resource: ${mcpUrl}
      scopes: [openid, profile]
`;
  gw = await startGatewayProcess({ ports, yaml: (p) => devGatewayYaml(p, extra) });
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  upstream?.close();
});

let alice: { client: Client; provider: MemoryOAuthProvider } | null = null;

async function aliceClient() {
  alice ??= await connectWithLogin({
    url: mcpUrl,
    redirectUrl: REDIRECT,
    login: (url) => devBrowserLogin(url, 'alice', REDIRECT),
  });
  return alice;
}

describe('MCP authorization discovery, filtered listings and approvals through Chaperone', () => {
  it('answers 401 naming the resource metadata, which names the dev issuer', async () => {
    const res = await fetch(mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(401);
    const metadataUrl = `http://127.0.0.1:${gw.ports.listener}/.well-known/oauth-protected-resource/mcp`;
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${metadataUrl}"`);
    const metadata = await fetch(metadataUrl);
    expect(metadata.status).toBe(200);
    expect(metadata.headers.get('access-control-allow-origin')).toBe('*');
    expect(await metadata.json()).toEqual({
      resource: mcpUrl,
      authorization_servers: [`http://127.0.0.1:${gw.ports.idp}`],
      bearer_methods_supported: ['header'],
      scopes_supported: ['openid', 'profile'],
    });
  });

  it('the SDK client discovers the issuer, registers, logs alice in and lists only her tools', async () => {
    const { client, provider } = await aliceClient();
    // The token was issued for this MCP target (RFC 8707), by the issuer the metadata named.
    const token = provider.tokens()!.access_token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
    expect(claims).toMatchObject({ aud: mcpUrl, sub: 'alice', iss: `http://127.0.0.1:${gw.ports.idp}` });
    expect(provider.clientInformation()?.client_id).toBeTruthy();

    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['delete_repo', 'list_files', 'read_file']);
    const ok = await client.callTool({ name: 'read_file', arguments: { path: '/srv/public/a.txt' } });
    expect(ok.content).toEqual([{ type: 'text', text: 'read_file done' }]);
    // What was hidden is in the audit trail, next to the decision.
    const carol = await devToken(gw, 'carol');
    await waitFor(
      async () => {
        const { rows } = (await (
          await apiFetch(gw, carol, '/audit/decisions?decision=admin&limit=50')
        ).json()) as { rows: { method: string; input: { hidden?: { tools?: string[] } } }[] };
        return rows.some(
          (r) =>
            r.method === 'MCP_FILTER' &&
            JSON.stringify(r.input?.hidden?.tools?.sort()) ===
              JSON.stringify(['drop_database', 'exfiltrate']),
        );
      },
      { what: 'the MCP_FILTER record', timeoutMs: 15_000 },
    );
  });

  it('a gated call is a URL elicitation naming the approval; the same call succeeds once approved', async () => {
    const { client } = await aliceClient();
    const refused = await client.callTool({ name: 'delete_repo', arguments: { name: 'legacy' } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(UrlElicitationRequiredError);
    const [elicitation] = (refused as UrlElicitationRequiredError).elicitations;
    expect(elicitation).toMatchObject({
      mode: 'url',
      url: expect.stringMatching(/\/approvals\/status\?id=[0-9a-f-]{36}$/),
    });
    expect(elicitation!.message).toMatch(/deleting a repository needs a security review/);
    expect(executed.filter((e) => e.startsWith('delete_repo'))).toEqual([]);

    const carol = await devToken(gw, 'carol');
    const result = await callWithApproval(client, 'delete_repo', { name: 'legacy' }, async (pending) => {
      expect(pending.url).toBe(elicitation!.url);
      const approved = await runCli([
        'approvals',
        'approve',
        pending.approvalId,
        '--api',
        gw.api,
        '--token',
        carol,
      ]);
      expect(approved.code, approved.out).toBe(0);
    });
    expect(result.content).toEqual([{ type: 'text', text: 'delete_repo done' }]);
    expect(executed.filter((e) => e.startsWith('delete_repo'))).toEqual(['delete_repo {"name":"legacy"}']);
  });

  it('a token issued for the MCP target is refused at another target (RFC 8707)', async () => {
    const { provider } = await aliceClient();
    const res = await fetch(`${gw.egress}/demo/items`, {
      headers: { authorization: `Bearer ${provider.tokens()!.access_token}` },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(
      /^Bearer error="invalid_token", error_description="the token was issued for another resource/,
    );
    // The gateway's own tokens (aud: chaperone) still reach both.
    const own = await devToken(gw, 'alice');
    expect(
      (await fetch(`${gw.egress}/demo/items`, { headers: { authorization: `Bearer ${own}` } })).status,
    ).toBe(200);
  });
});
