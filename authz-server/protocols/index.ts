// The protocol decoders behind the input builder's hook: `input.protocol` for routes that declare one.
// Protocols whose requests are JSON documents (MCP, LLM APIs, GraphQL POST) take their body as
// application/json only: a body in another type (none, text/plain, text/json, form) is what a server
// may still parse while the policy would see nothing, so it is refused (ERR_BODY_CONTENT_TYPE).
import type { ProtocolContext, ProtocolHook, ProtocolOutcome } from '../input/policy-input.ts';
import { parseGraphql } from './graphql.ts';
import { parseKubernetes } from './kubernetes.ts';
import { parseLlm } from './llm.ts';
import { parseMcp } from './mcp.ts';

const JSON_BODY_PROTOCOLS = new Set(['mcp', 'llm', 'graphql']);

function refuseOtherBodies(ctx: ProtocolContext): ProtocolOutcome | null {
  if (!ctx.bodyPresent || !JSON_BODY_PROTOCOLS.has(ctx.name)) return null;
  if (ctx.bodyMediaType === 'application/json') return null;
  return {
    ok: false,
    code: 'ERR_BODY_CONTENT_TYPE',
    reason: `a ${ctx.name} request body must be application/json, not ${ctx.bodyMediaType ?? 'undeclared'}`,
  };
}

export const protocolHook: ProtocolHook = (ctx) => {
  const refused = refuseOtherBodies(ctx);
  if (refused) return refused;
  switch (ctx.name) {
    case 'mcp':
      return parseMcp(ctx);
    case 'llm':
      return parseLlm(ctx);
    case 'kubernetes':
      return parseKubernetes(ctx);
    case 'graphql':
      return parseGraphql(ctx);
    default:
      // A declared protocol without a decoder is refused: its policy would judge a partial picture.
      return {
        ok: false,
        code: 'ERR_PROTOCOL_INVALID',
        reason: `protocol "${ctx.name}" is not supported by this authz server`,
      };
  }
};
