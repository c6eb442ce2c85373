// The protocol decoders behind the input builder's hook: `input.protocol` for routes that declare one.
import type { ProtocolHook } from '../input/policy-input.ts';
import { parseGraphql } from './graphql.ts';
import { parseKubernetes } from './kubernetes.ts';
import { parseLlm } from './llm.ts';
import { parseMcp } from './mcp.ts';

export const protocolHook: ProtocolHook = (ctx) => {
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
