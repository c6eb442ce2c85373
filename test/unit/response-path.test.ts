// The response path's pure parts: server-sent events split across any chunk boundary, MCP listings
// filtered by the decision's instructions (JSON and streamed, fail closed), LLM usage read from JSON
// and streamed answers of both providers, and a streamed body that goes on unchanged when only metered.
import { describe, expect, it } from 'vitest';
import {
  filterListingJson,
  filterListingMessage,
  UnfilterableListingError,
  visibleMatch,
} from '../../authz-server/masking/mcp-listing.ts';
import { AUTHZ_NAMESPACE, planIsEmpty, responsePlanOf } from '../../authz-server/masking/response-plan.ts';
import { parseSseEvent, SseSplitter, withSseData } from '../../authz-server/masking/sse.ts';
import { StreamedBody } from '../../authz-server/masking/streamed-body.ts';
import { UsageMeter } from '../../authz-server/masking/usage-meter.ts';
import type { McpFilterInstruction } from '../../authz-server/pipeline/response-instructions.ts';
import { RESPONSE_PROCESSING_KEYS } from '../../contracts/ext-authz.ts';
import { toStruct } from '../../lib/proto-struct.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

/** Every way to cut `text` in two, and one byte at a time. */
function cuts(text: string): Uint8Array[][] {
  const b = bytes(text);
  const out: Uint8Array[][] = [];
  for (let i = 0; i <= b.length; i++) out.push([b.slice(0, i), b.slice(i)]);
  out.push([...b].map((x) => new Uint8Array([x])));
  return out;
}

describe('server-sent events', () => {
  const stream =
    ': keep-alive\n\nevent: message\nid: 1\ndata: {"a":1}\n\r\n' +
    'data: first line\r\ndata:second é\r\n\r\ndata: {"b":2}\rretry: 10\r\r' +
    'data: unterminated';

  it('splits into the same events wherever the chunks are cut (LF, CRLF, CR; UTF-8 split)', () => {
    for (const chunks of cuts(stream)) {
      const s = new SseSplitter();
      const events = [...chunks.flatMap((c) => s.push(c)), ...s.end()];
      expect(events.map((e) => e.data)).toEqual([null, '{"a":1}', 'first line\nsecond é', '{"b":2}']);
      // The raw text of whole events is kept exactly; the unterminated one is dropped, as clients do.
      expect(events.map((e) => e.raw).join('')).toBe(stream.slice(0, stream.indexOf('data: unterminated')));
    }
  });

  it('rewrites the payload and keeps the other fields in order', () => {
    const raw = 'event: message\nid: 7\ndata: {"x":\ndata: 1}\n\n';
    expect(parseSseEvent(raw).data).toBe('{"x":\n1}');
    expect(withSseData(raw, '{"x":2}')).toBe('event: message\nid: 7\ndata: {"x":2}\n\n');
  });
});

const tools = (names: string[]) => names.map((name) => ({ name, inputSchema: { type: 'object' } }));
const filter = (over: Partial<McpFilterInstruction> = {}): McpFilterInstruction => ({
  method: 'tools/list',
  id: 3,
  visible: {
    tools: ['list_files', 'read_file', 'delete_repo'],
    resources: ['file:///srv/public/*'],
    prompts: ['*'],
  },
  ...over,
});

describe('MCP listings', () => {
  it('keeps only the visible tools of the answer to the filtered request', () => {
    const msg = {
      jsonrpc: '2.0',
      id: 3,
      result: { tools: tools(['drop_database', 'list_files', 'read_file']) },
    };
    const out = filterListingMessage(msg, filter());
    expect(out.changed).toBe(true);
    expect((out.message as any).result.tools.map((t: any) => t.name)).toEqual(['list_files', 'read_file']);
    expect(out.hidden).toEqual({ tools: ['drop_database'] });
  });

  it('leaves other messages alone: another id, an error, a notification, a server request', () => {
    for (const msg of [
      { jsonrpc: '2.0', id: 4, result: { tools: tools(['drop_database']) } },
      { jsonrpc: '2.0', id: 3, error: { code: -32601, message: 'no' } },
      { jsonrpc: '2.0', method: 'notifications/tools/list_changed' },
      { jsonrpc: '2.0', id: 9, method: 'sampling/createMessage', params: {} },
    ])
      expect(filterListingMessage(msg, filter())).toEqual({ message: msg, hidden: {}, changed: false });
  });

  it('filters resources by URI prefix, templates by uriTemplate, prompts by name', () => {
    const res = filterListingMessage(
      {
        jsonrpc: '2.0',
        id: 'r',
        result: {
          resources: [{ uri: 'file:///srv/public/a' }, { uri: 'file:///etc/passwd' }, { name: 'no uri' }],
        },
      },
      filter({ method: 'resources/list', id: 'r' }),
    );
    expect((res.message as any).result.resources).toEqual([{ uri: 'file:///srv/public/a' }]);
    expect(res.hidden).toEqual({ resources: ['file:///etc/passwd', '(unnamed)'] });
    const tpl = filterListingMessage(
      {
        jsonrpc: '2.0',
        id: 1,
        result: {
          resourceTemplates: [{ uriTemplate: 'file:///srv/public/{x}' }, { uriTemplate: 'db://{t}' }],
        },
      },
      filter({ method: 'resources/templates/list', id: 1 }),
    );
    expect((tpl.message as any).result.resourceTemplates).toEqual([
      { uriTemplate: 'file:///srv/public/{x}' },
    ]);
    const prompts = filterListingMessage(
      { jsonrpc: '2.0', id: 1, result: { prompts: [{ name: 'a' }] } },
      filter({ method: 'prompts/list', id: 1 }),
    );
    expect(prompts.changed).toBe(true);
    expect((prompts.message as any).result.prompts).toEqual([{ name: 'a' }]);
  });

  it('on the GET stream (no method) filters any result that holds a listing', () => {
    const out = filterListingMessage(
      { jsonrpc: '2.0', id: 99, result: { tools: tools(['x', 'read_file']), nextCursor: 'c' } },
      filter({ method: null, id: null }),
    );
    expect((out.message as any).result).toEqual({ tools: tools(['read_file']), nextCursor: 'c' });
  });

  it('matches names exactly, `*` for all, and a trailing `*` as a prefix', () => {
    expect(visibleMatch(['read_file'], 'read_file')).toBe(true);
    expect(visibleMatch(['read_file'], 'read_files')).toBe(false);
    expect(visibleMatch(['*'], 'anything')).toBe(true);
    expect(visibleMatch(['file:///srv/*'], 'file:///srv/a/b')).toBe(true);
    expect(visibleMatch(['file:///srv/*'], 'file:///etc')).toBe(false);
    expect(visibleMatch([], 'x')).toBe(false);
  });

  it('refuses what it cannot read: broken JSON, a batch, a list that is not an array', () => {
    expect(() => filterListingJson('{"jsonrpc":"2.0","id":3,', filter())).toThrow(UnfilterableListingError);
    expect(() => filterListingJson('[]', filter())).toThrow(/batch/);
    expect(() =>
      filterListingJson(JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: { a: 1 } } }), filter()),
    ).toThrow(/not an array/);
    // Passed on as parsed: a duplicate key cannot be read another way by the client.
    const twice = '{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"drop_database"}]},"id":3}';
    expect(JSON.parse(filterListingJson(twice, filter()).body)).toEqual({
      jsonrpc: '2.0',
      id: 3,
      result: { tools: [] },
    });
    expect(filterListingJson(twice, filter()).body).not.toContain('drop_database');
    expect(() =>
      new StreamedBody({ sse: true, filter: filter(), meter: null, maxJsonBytes: 0 }).push(
        bytes('data: [{"id":3}]\n\n'),
        true,
      ),
    ).toThrow(/batch/);
  });

  it('rewrites a streamed listing event by event, across any chunk boundary', () => {
    const answer = { jsonrpc: '2.0', id: 3, result: { tools: tools(['drop_database', 'read_file']) } };
    const stream = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: {} })}\n\nevent: message\ndata: ${JSON.stringify(answer)}\n\n`;
    for (const chunks of cuts(stream).filter((_, i) => i % 7 === 0)) {
      const body = new StreamedBody({ sse: true, filter: filter(), meter: null, maxJsonBytes: 1024 });
      let out = '';
      const hidden: string[] = [];
      chunks.forEach((c, i) => {
        const r = body.push(c, i === chunks.length - 1);
        out += r.body ?? '';
        hidden.push(...(r.hidden?.tools ?? []));
      });
      expect(hidden).toEqual(['drop_database']);
      const events = out
        .split('\n\n')
        .filter(Boolean)
        .map((e) => parseSseEvent(`${e}\n\n`));
      expect(JSON.parse(events[1]!.data!).result.tools.map((t: any) => t.name)).toEqual(['read_file']);
      expect(events[0]!.raw).toContain('notifications/message');
    }
  });
});

describe('LLM usage', () => {
  const meterOf = (docs: unknown[]) => {
    const m = new UsageMeter();
    for (const d of docs) m.observe(d);
    return m.tokens();
  };

  it('reads a JSON answer of each API', () => {
    expect(meterOf([{ usage: { prompt_tokens: 11, completion_tokens: 9, total_tokens: 20 } }])).toBe(20);
    expect(meterOf([{ usage: { input_tokens: 30, output_tokens: 12, total_tokens: 42 } }])).toBe(42);
    expect(
      meterOf([
        {
          usage: {
            input_tokens: 5,
            output_tokens: 7,
            cache_read_input_tokens: 100,
            cache_creation_input_tokens: 3,
          },
        },
      ]),
    ).toBe(115);
    expect(meterOf([{ choices: [] }])).toBeNull();
  });

  it('reads streamed answers: OpenAI chat final chunk, Responses completed, Anthropic start + deltas', () => {
    const sse = (events: unknown[]) => {
      const m = new UsageMeter();
      for (const e of events) m.observeEventData(typeof e === 'string' ? e : JSON.stringify(e));
      return m.tokens();
    };
    expect(
      sse([
        { choices: [{ delta: { content: 'hi' } }], usage: null },
        { choices: [], usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 } },
        '[DONE]',
      ]),
    ).toBe(6);
    expect(
      sse([
        { type: 'response.created', response: { usage: null } },
        {
          type: 'response.completed',
          response: { usage: { input_tokens: 8, output_tokens: 5, total_tokens: 13 } },
        },
      ]),
    ).toBe(13);
    expect(
      sse([
        { type: 'message_start', message: { usage: { input_tokens: 25, output_tokens: 1 } } },
        { type: 'content_block_delta', delta: { text: 'x' } },
        { type: 'message_delta', usage: { output_tokens: 15 } },
        { type: 'message_stop' },
      ]),
    ).toBe(40);
    expect(sse(['not json', { type: 'ping' }])).toBeNull();
  });

  it('a metered JSON body streams through unchanged and is read at its end, bounded', () => {
    const text = JSON.stringify({
      id: 'x',
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    });
    const body = new StreamedBody({ sse: false, filter: null, meter: new UsageMeter(), maxJsonBytes: 1024 });
    for (const c of cuts(text)[10]!) expect(body.push(c, false)).toEqual({ body: null, hidden: null });
    expect(body.finish()).toBe(3);
    const big = new StreamedBody({ sse: false, filter: null, meter: new UsageMeter(), maxJsonBytes: 8 });
    big.push(bytes(text), true);
    expect(big.finish()).toBeNull();
  });

  it('a metered event stream goes on unchanged chunk by chunk', () => {
    const body = new StreamedBody({ sse: true, filter: null, meter: new UsageMeter(), maxJsonBytes: 0 });
    expect(body.push(bytes('data: {"usage":{"total_tokens":'), false)).toEqual({ body: null, hidden: null });
    expect(body.push(bytes('9}}\n\ndata: [DONE]\n\n'), true)).toEqual({ body: null, hidden: null });
    expect(body.finish()).toBe(9);
  });
});

describe('the response plan (ext_authz dynamic metadata)', () => {
  const plan = (md: Record<string, unknown>) =>
    responsePlanOf({ filterMetadata: { [AUTHZ_NAMESPACE]: toStruct(md) } });

  it('reads each instruction the contract names, and nothing without them', () => {
    expect([...RESPONSE_PROCESSING_KEYS].sort()).toEqual(['masks', 'mcp_filter', 'usage']);
    expect(planIsEmpty(plan({ decision_id: 'd' }))).toBe(true);
    expect(planIsEmpty(responsePlanOf(undefined))).toBe(true);
    expect(plan({ masks: { detectors: ['email'] } }).masks).toEqual({ detectors: ['email'] });
    expect(plan({ mcp_filter: { method: 'tools/list', id: 3, visible: { tools: ['a'] } } }).filter).toEqual({
      method: 'tools/list',
      id: 3,
      visible: { tools: ['a'] },
    });
    const usage = {
      target: 'llm',
      issuer: 'https://i',
      subject: 'alice',
      agent: null,
      provider: 'openai',
      api: 'responses',
    };
    expect(plan({ usage }).usage).toEqual(usage);
    // Malformed instructions are not instructions.
    expect(planIsEmpty(plan({ mcp_filter: { visible: 'all' }, usage: { target: 1 } }))).toBe(true);
  });
});
