// The path the upstream will see, which is what a protocol view must judge: the client's path with the
// route's prefix rewrite applied (`/openai/chat/completions` under `/openai/` → `/v1/` is the upstream's
// `/v1/chat/completions`). Segments as the input builder split them (percent-decoded per segment).
import type { ProtocolContext } from '../input/policy-input.ts';

export function upstreamSegments(ctx: Pick<ProtocolContext, 'parsedPath' | 'rewrite'>): readonly string[] {
  if (!ctx.rewrite) return ctx.parsedPath;
  const { pathPrefix: prefix, prefixRewrite: rewrite } = ctx.rewrite;
  const path = `/${ctx.parsedPath.join('/')}`;
  if (!path.startsWith(prefix)) return ctx.parsedPath;
  const rewritten = `${rewrite}${path.slice(prefix.length)}`.replace(/^\/+/, '');
  return rewritten.split('/');
}
