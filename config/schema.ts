// The JSON Schema of chaperone.yaml (schemas/config.schema.json, also what editors use) compiled
// once with ajv, and ajv's errors turned into ConfigIssues. Messages come from the schema (`x-hint`
// where a pattern alone would be cryptic) and never quote the offending value.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { PROJECT_ROOT } from '../lib/tools.ts';
import type { ConfigIssue } from './errors.ts';
import { childPath } from './yaml-source.ts';

const SCHEMA_PATH = join(PROJECT_ROOT, 'schemas', 'config.schema.json');

let validator: ValidateFunction | null = null;

function compiled(): ValidateFunction {
  if (validator) return validator;
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictRequired: false });
  // Annotation for our messages; editors ignore unknown keywords.
  ajv.addKeyword({ keyword: 'x-hint', schemaType: 'string' });
  validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object);
  return validator;
}

/** `/targets/1/match` → `targets[1].match` (JSON Pointer segments, digits are indexes). */
export function pointerToPath(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<string>((path, seg) => childPath(path, /^\d+$/.test(seg) ? Number(seg) : seg), '');
}

/**
 * Unknown keys are named only when they look like a key of ours (short, lowercase snake_case): a
 * token pasted at the wrong indentation becomes a key, and must not be echoed.
 */
const echoableKey = (key: string) => /^[a-z][a-z0-9_]{0,31}$/.test(key);

/** `linePath`: where to look the line up when it differs from the path shown. */
function issueOf(e: ErrorObject): { path: string; message: string; linePath?: string } | null {
  const path = pointerToPath(e.instancePath);
  const hint = (e.parentSchema as Record<string, unknown> | undefined)?.['x-hint'];
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      return echoableKey(key)
        ? { path: childPath(path, key), message: `unknown key "${key}"` }
        : {
            path,
            message: 'unknown key (name not shown: it does not look like a key name)',
            linePath: childPath(path, key),
          };
    }
    case 'required':
      return {
        path,
        message: `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`,
      };
    case 'type':
      return { path, message: `must be ${withArticle(String((e.params as { type: string }).type))}` };
    case 'enum':
      return {
        path,
        message: `must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'pattern':
    case 'not':
    case 'format':
      return { path, message: typeof hint === 'string' ? hint : (e.message ?? 'is invalid') };
    case 'if':
    case 'anyOf':
    case 'oneOf':
      // Their branches report the specific problem.
      return null;
    default:
      return { path, message: e.message ?? 'is invalid' };
  }
}

function withArticle(type: string): string {
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

/** Schema problems of a parsed document, deduplicated, in document order of their paths. */
export function schemaIssues(data: unknown, lineOf: (path: string) => number | undefined): ConfigIssue[] {
  const validate = compiled();
  if (validate(data)) return [];
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const e of validate.errors ?? []) {
    const found = issueOf(e);
    if (!found) continue;
    const { linePath, ...issue } = found;
    const line = lineOf(linePath ?? issue.path);
    const key = `${issue.path}\0${issue.message}\0${line}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(line === undefined ? issue : { ...issue, line });
  }
  return issues;
}
