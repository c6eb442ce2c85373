// Bounds on what a protocol decoder will read, checked before any other work on a request: one place,
// each with the reason for its value. A request beyond a bound is refused (ERR_PROTOCOL_LIMIT), never
// decoded in part. They are constants today; the config will be able to override them per target.

export const GRAPHQL_LIMITS = {
  /** Bytes of the `query` text. Hand-written operations are a few KiB; persisted queries are smaller. */
  maxQueryBytes: 32 * 1024,
  /** Lexical tokens (graphql-js `parse` stops at this count): bounds parse time and AST size. */
  maxTokens: 5_000,
  /** Nested selection sets, fragments expanded: `a { b { c } }` is 3. Real clients stay below 10. */
  maxDepth: 15,
  /** Aliased fields, fragments expanded: aliases are how one request runs a field hundreds of times. */
  maxAliases: 50,
  /**
   * Field selections after every fragment spread is expanded, over all operations of the document:
   * a fragment that spreads another twice, ten levels deep, is 1,024 copies from ~300 bytes.
   */
  maxExpandedFields: 2_000,
  /** Operations in one document (only one runs; the others are parsed and validated by the server). */
  maxOperations: 20,
} as const;

export type GraphqlLimits = { readonly [K in keyof typeof GRAPHQL_LIMITS]: number };
