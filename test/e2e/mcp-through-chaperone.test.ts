// The official MCP TypeScript SDK, client and server, with Chaperone and Envoy in between: the policy
// sees the MCP tool call (input.protocol) and allows or denies it by tool name and by argument; the
// session plumbing (initialize, tools/list) passes, the listing (a JSON answer) holding only the tools
// the rules name; the denied calls never reach the server. An approval-gated call is answered with a
// URL elicitation (JSON-RPC -32042) and, once a reviewer approves it, goes through on the client's own
// retry (a new JSON-RPC id), exactly once.
import { createServer, type Server } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runCli } from '../support/cli.ts';
import {
  devGatewayYaml,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';

let gw: GatewayProcess;
let upstream: Server;
const executed: string[] = [];

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'files', version: '1.0.0' });
  server.registerTool('list_files', { description: 'list files' }, async () => {
    executed.push('list_files');
    return { content: [{ type: 'text', text: 'a.txt b.txt' }] };
  });
  server.registerTool(
    'read_file',
    { description: 'read a file', inputSchema: { path: z.string() } },
    async ({ path }) => {
      executed.push(`read_file ${path}`);
      return { content: [{ type: 'text', text: `contents of ${path}` }] };
    },
  );
  // On the server, not in any rule: never listed, never called.
  server.registerTool('drop_database', { description: 'drop the database' }, async () => {
    executed.push('drop_database');
    return { content: [{ type: 'text', text: 'dropped' }] };
  });
  server.registerTool(
    'delete_repo',
    { description: 'delete a repository', inputSchema: { name: z.string() } },
    async ({ name }) => {
      executed.push(`delete_repo ${name}`);
      return { content: [{ type: 'text', text: 'deleted' }] };
    },
  );
  return server;
}

beforeAll(async () => {
  const port = await freePort();
  // A stateless streamable-HTTP MCP server: one server + transport per request, JSON responses.
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const server = mcpServer();
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: undefined,
          enableJsonResponse: true,
        });
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
  const extra = `  - name: tools
    upstream: http://127.0.0.1:${port}
    protocol: mcp
    match:
      path_prefix: /mcp
`;
  gw = await startGatewayProcess({ ports: await gatewayPorts(), yaml: (p) => devGatewayYaml(p, extra) });
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  upstream?.close();
});

async function tokenOf(user: string): Promise<string> {
  return ((await (await fetch(`${gw.api}/dev/token?user=${user}`)).json()) as { token: string }).token;
}

/** `sent` collects the JSON-RPC messages the client POSTs (read off the wire, not changed). */
async function connect(user: string, sent: { id?: unknown; method?: string }[] = []): Promise<Client> {
  const token = await tokenOf(user);
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.egress}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    fetch: (url, init) => {
      if (typeof init?.body === 'string') sent.push(JSON.parse(init.body));
      return fetch(url, init);
    },
  });
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

describe('MCP through Chaperone', () => {
  it('allows tools by name and argument and denies the rest before they reach the server', async () => {
    const client = await connect('alice');
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['delete_repo', 'list_files', 'read_file']);

      const ok = await client.callTool({ name: 'read_file', arguments: { path: '/srv/public/a.txt' } });
      expect(ok.content).toEqual([{ type: 'text', text: 'contents of /srv/public/a.txt' }]);

      await expect(
        client.callTool({ name: 'read_file', arguments: { path: '/etc/passwd' } }),
      ).rejects.toThrow(/read_file is confined to \/srv\/public\//);
      // An approval-gated tool call is answered as a URL elicitation naming the approval's status URL.
      const gated = await client.callTool({ name: 'delete_repo', arguments: { name: 'prod' } }).then(
        () => null,
        (e: unknown) => e as UrlElicitationRequiredError,
      );
      expect(gated).toBeInstanceOf(UrlElicitationRequiredError);
      expect(gated?.code).toBe(-32042);
      expect(gated?.message).toMatch(/approval required: deleting a repository needs a security review/);
      expect(gated?.elicitations[0]?.url).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/approvals\/status\?id=[0-9a-f-]{36}$/,
      );
      await expect(client.callTool({ name: 'drop_database', arguments: {} })).rejects.toThrow(
        /may not call the MCP tool drop_database/,
      );
      expect(executed).toEqual(['read_file /srv/public/a.txt']);
    } finally {
      await client.close();
    }
  });

  it('denies a contractor the whole MCP target', async () => {
    await expect(connect('bob')).rejects.toThrow(/bob \(groups contractors\) may not POST \/mcp/);
  });

  it('refuses a JSON-RPC batch before any policy or server sees it', async () => {
    const { token } = (await (await fetch(`${gw.api}/dev/token?user=alice`)).json()) as { token: string };
    const res = await fetch(`${gw.egress}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify([
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'delete_repo', arguments: { name: 'x' } },
        },
      ]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('ERR_PROTOCOL_INVALID');
    expect(executed).not.toContain('delete_repo x');
  });

  it('an approved tool call goes through on the SDK client’s retry (a new JSON-RPC id), once', async () => {
    const sent: { id?: unknown; method?: string }[] = [];
    const client = await connect('alice', sent);
    const call = () => client.callTool({ name: 'delete_repo', arguments: { name: 'legacy', force: true } });
    const approvalOf = (e: unknown) => {
      expect(e).toBeInstanceOf(UrlElicitationRequiredError);
      const id = (e as UrlElicitationRequiredError).elicitations[0]?.elicitationId;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      return id!;
    };
    try {
      const first = approvalOf(
        await call().then(
          () => null,
          (e: unknown) => e,
        ),
      );
      const carol = await tokenOf('carol');
      const approved = await runCli(['approvals', 'approve', first, '--api', gw.api, '--token', carol]);
      expect(approved.code, approved.out).toBe(0);

      const ok = await call();
      expect(ok.content).toEqual([{ type: 'text', text: 'deleted' }]);
      expect(executed.filter((e) => e === 'delete_repo legacy')).toHaveLength(1);
      const ids = sent.filter((m) => m.method === 'tools/call').map((m) => m.id);
      expect(ids).toHaveLength(2);
      expect(ids[1]).not.toEqual(ids[0]);

      // One-time grant: the next retry is a new request for approval, and nothing runs.
      const second = approvalOf(
        await call().then(
          () => null,
          (e: unknown) => e,
        ),
      );
      expect(second).not.toBe(first);
      expect(executed.filter((e) => e === 'delete_repo legacy')).toHaveLength(1);
    } finally {
      await client.close();
    }
  });
});
