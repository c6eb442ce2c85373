// Types for runtime-check.mjs (plain JavaScript: it runs before TypeScript can).
export declare function jsonParseIsSound(): boolean;
