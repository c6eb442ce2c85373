// A fake LLM provider on loopback that answers like the real APIs, usage included: OpenAI chat
// completions (JSON, or server-sent chunks with the final `usage` chunk when the request asks for
// `stream_options.include_usage`) and Anthropic messages (JSON, or the message_start / deltas /
// message_delta event sequence). Each answer reports `input + output` tokens as configured; streamed
// answers space their events out, like a model that thinks. It keeps the requests it received.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeLlmOptions {
  input: number;
  output: number;
  /** Between two streamed events. Default 0. */
  eventDelayMs?: number;
}

export interface FakeLlm {
  url: string;
  requests: { path: string; headers: IncomingMessage['headers']; body: any }[];
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeLlm(o: FakeLlmOptions): Promise<FakeLlm> {
  const requests: FakeLlm['requests'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null;
      requests.push({ path: req.url ?? '', headers: req.headers, body });
      const send = req.url?.endsWith('/messages') ? anthropic : openaiChat;
      void send(body, res, o).catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

type Res = ServerResponse;
const WORDS = ['Hello', ' from', ' the', ' fake', ' model.'];

async function events(res: Res, list: unknown[], delayMs: number, done?: string): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const e of list) {
    const [event, data] = Array.isArray(e) ? e : [null, e];
    res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
    if (delayMs) await sleep(delayMs);
  }
  if (done) res.write(`data: ${done}\n\n`);
  res.end();
}

async function openaiChat(body: any, res: Res, o: FakeLlmOptions): Promise<void> {
  const usage = { prompt_tokens: o.input, completion_tokens: o.output, total_tokens: o.input + o.output };
  const base = { id: 'chatcmpl-fake', object: 'chat.completion', created: 1_800_000_000, model: body.model };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ...base,
        choices: [
          { index: 0, message: { role: 'assistant', content: WORDS.join('') }, finish_reason: 'stop' },
        ],
        usage,
      }),
    );
    return;
  }
  const chunk = (delta: object, finish: string | null = null) => ({
    ...base,
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, finish_reason: finish }],
    ...(body.stream_options?.include_usage ? { usage: null } : {}),
  });
  const list: unknown[] = [
    chunk({ role: 'assistant', content: '' }),
    ...WORDS.map((w) => chunk({ content: w })),
  ];
  list.push(chunk({}, 'stop'));
  if (body.stream_options?.include_usage)
    list.push({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  await events(res, list, o.eventDelayMs ?? 0, '[DONE]');
}

async function anthropic(body: any, res: Res, o: FakeLlmOptions): Promise<void> {
  const message = { id: 'msg_fake', type: 'message', role: 'assistant', model: body.model };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ...message,
        content: [{ type: 'text', text: WORDS.join('') }],
        stop_reason: 'end_turn',
        usage: { input_tokens: o.input, output_tokens: o.output },
      }),
    );
    return;
  }
  await events(
    res,
    [
      [
        'message_start',
        {
          type: 'message_start',
          message: { ...message, content: [], usage: { input_tokens: o.input, output_tokens: 1 } },
        },
      ],
      [
        'content_block_start',
        { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      ],
      ...WORDS.map((w) => [
        'content_block_delta',
        { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } },
      ]),
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      [
        'message_delta',
        { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: o.output } },
      ],
      ['message_stop', { type: 'message_stop' }],
    ],
    o.eventDelayMs ?? 0,
  );
}
