// google.protobuf.Struct ⇄ JSON for messages decoded/encoded by proto-loader, which does not map
// Struct to JSON by itself (ext_authz dynamic metadata out, filter metadata in).

export interface StructMessage {
  fields: Record<string, ValueMessage>;
}
type ValueMessage =
  | { nullValue: 'NULL_VALUE' }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: StructMessage }
  | { listValue: { values: ValueMessage[] } };

function toValue(v: unknown, depth: number): ValueMessage {
  if (depth > 32) return { stringValue: '[depth limit]' };
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  switch (typeof v) {
    case 'number':
      return { numberValue: v };
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'object':
      if (Array.isArray(v)) return { listValue: { values: v.map((x) => toValue(x, depth + 1)) } };
      return { structValue: toStruct(v as Record<string, unknown>, depth + 1) };
    default:
      return { stringValue: String(v) };
  }
}

export function toStruct(obj: Record<string, unknown>, depth = 0): StructMessage {
  const fields: Record<string, ValueMessage> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v, depth);
  return { fields };
}

export type StructValue = {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, StructValue> };
  listValue?: { values?: StructValue[] };
};

function fromValue(v: StructValue | undefined): unknown {
  if (!v) return null;
  if (v.structValue) return fromStruct(v.structValue);
  if (v.listValue) return (v.listValue.values ?? []).map(fromValue);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return null;
}

export function fromStruct(s: { fields?: Record<string, StructValue> } | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}
