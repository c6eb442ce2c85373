// Strict proto3-JSON → protobuf encoding for Envoy resources written as JSON/YAML (the shape Envoy's
// own config files use: proto field names or their camelCase JSON names, `@type` inside Any, "1s"
// durations, plain values for wrappers, JSON for Struct). protobufjs' fromObject does none of this
// mapping and silently drops unknown keys; this walker maps every field and reports each unknown key,
// wrong type, bad enum value or oneof conflict with its path, so a bad resource is never published.
import type protobuf from 'protobufjs';

export interface ProtoJsonError {
  path: string;
  message: string;
}

export type EncodeResult = { ok: true; bytes: Uint8Array } | { ok: false; errors: ProtoJsonError[] };

const WRAPPERS = new Set([
  '.google.protobuf.DoubleValue',
  '.google.protobuf.FloatValue',
  '.google.protobuf.Int64Value',
  '.google.protobuf.UInt64Value',
  '.google.protobuf.Int32Value',
  '.google.protobuf.UInt32Value',
  '.google.protobuf.BoolValue',
  '.google.protobuf.StringValue',
  '.google.protobuf.BytesValue',
]);

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Walker {
  readonly errors: ProtoJsonError[] = [];
  constructor(private readonly root: protobuf.Root) {}

  private err(path: string, message: string): undefined {
    this.errors.push({ path: path || '(root)', message });
    return undefined;
  }

  /** Converts JSON for message `type` into a protobufjs plain object (snake_case keys). */
  message(type: protobuf.Type, json: unknown, path: string): Record<string, unknown> | undefined {
    const special = this.wellKnown(type, json, path);
    if (special !== null) return special;
    if (!isObject(json)) return this.err(path, `expected an object for ${type.fullName.slice(1)}`);
    const out: Record<string, unknown> = {};
    const byJsonName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) byJsonName.set(camel(f.name), f);
    const oneofSeen = new Map<string, string>();
    for (const [key, value] of Object.entries(json)) {
      const fieldPath = path ? `${path}.${key}` : key;
      const field = type.fields[key] ?? byJsonName.get(key);
      if (!field) {
        this.err(fieldPath, `unknown field "${key}" in ${type.fullName.slice(1)}`);
        continue;
      }
      if (value === null) continue;
      if (field.partOf) {
        const prev = oneofSeen.get(field.partOf.name);
        if (prev)
          this.err(
            fieldPath,
            `only one of ${prev} and ${field.name} may be set (oneof ${field.partOf.name})`,
          );
        oneofSeen.set(field.partOf.name, field.name);
      }
      out[field.name] = this.field(field, value, fieldPath);
    }
    return out;
  }

  private field(field: protobuf.Field, value: unknown, path: string): unknown {
    field.resolve();
    if (field.map) {
      if (!isObject(value)) return this.err(path, 'expected an object (map)');
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.single(field, v, `${path}.${k}`);
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) return this.err(path, 'expected an array');
      return value.map((v, i) => this.single(field, v, `${path}[${i}]`));
    }
    return this.single(field, value, path);
  }

  private single(field: protobuf.Field, value: unknown, path: string): unknown {
    const rt = field.resolvedType;
    if (rt && 'fieldsArray' in rt) return this.message(rt as protobuf.Type, value, path);
    if (rt && 'values' in rt) {
      const en = rt as protobuf.Enum;
      if (typeof value === 'string' && value in en.values) return en.values[value];
      if (typeof value === 'number' && Object.values(en.values).includes(value)) return value;
      return this.err(path, `invalid value ${JSON.stringify(value)} for enum ${en.fullName.slice(1)}`);
    }
    return this.scalar(field.type, value, path);
  }

  private scalar(type: string, value: unknown, path: string): unknown {
    switch (type) {
      case 'string':
        return typeof value === 'string' ? value : this.err(path, 'expected a string');
      case 'bool':
        return typeof value === 'boolean' ? value : this.err(path, 'expected a boolean');
      case 'bytes':
        return typeof value === 'string'
          ? Buffer.from(value, 'base64')
          : this.err(path, 'expected base64 bytes');
      case 'double':
      case 'float':
        if (typeof value === 'number') return value;
        if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return Number(value);
        return this.err(path, 'expected a number');
      default: {
        // integer types; 64-bit ones may be strings in proto3 JSON
        const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
        if (typeof n !== 'number' || !Number.isInteger(n))
          return this.err(path, `expected an integer (${type})`);
        if (type.startsWith('u') && n < 0) return this.err(path, `expected a non-negative integer (${type})`);
        return n;
      }
    }
  }

  /** Proto3 JSON mappings of well-known types; null when `type` is not one. */
  private wellKnown(
    type: protobuf.Type,
    json: unknown,
    path: string,
  ): Record<string, unknown> | undefined | null {
    const name = type.fullName;
    if (WRAPPERS.has(name)) {
      const inner = type.fields['value']!;
      return { value: this.scalar(inner.type, json, path) };
    }
    switch (name) {
      case '.google.protobuf.Duration': {
        const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
        if (!m) return this.err(path, 'expected a duration like "1.5s"');
        const sign = m[1] ? -1 : 1;
        return { seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
      }
      case '.google.protobuf.Timestamp': {
        const ms = typeof json === 'string' ? Date.parse(json) : Number.NaN;
        if (Number.isNaN(ms)) return this.err(path, 'expected an RFC 3339 timestamp');
        return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
      }
      case '.google.protobuf.Empty':
        return isObject(json) && Object.keys(json).length === 0 ? {} : this.err(path, 'expected {}');
      case '.google.protobuf.Struct':
        return isObject(json) ? this.struct(json) : this.err(path, 'expected an object (Struct)');
      case '.google.protobuf.Value':
        return this.value(json);
      case '.google.protobuf.ListValue':
        return Array.isArray(json)
          ? { values: json.map((v) => this.value(v)) }
          : this.err(path, 'expected an array');
      case '.google.protobuf.FieldMask':
        return typeof json === 'string'
          ? { paths: json.split(',').filter(Boolean) }
          : this.err(path, 'expected a string');
      case '.google.protobuf.Any':
        return this.any(json, path);
      default:
        return null;
    }
  }

  private struct(obj: Record<string, unknown>): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) fields[k] = this.value(v);
    return { fields };
  }

  private valueFieldNames: Map<string, string> | null = null;

  /**
   * A field of google.protobuf.Value by its proto name, as the loaded type names it: protobufjs' own
   * struct.proto (which the loader uses) names them in camelCase, and fromObject drops any other key.
   */
  private valueField(protoName: string): string {
    if (!this.valueFieldNames) {
      const type = this.root.lookupType('google.protobuf.Value');
      this.valueFieldNames = new Map(type.fieldsArray.map((f) => [camel(f.name), f.name]));
    }
    return this.valueFieldNames.get(camel(protoName)) ?? protoName;
  }

  private value(v: unknown): Record<string, unknown> {
    if (v === null || v === undefined) return { [this.valueField('null_value')]: 0 };
    if (typeof v === 'number') return { [this.valueField('number_value')]: v };
    if (typeof v === 'string') return { [this.valueField('string_value')]: v };
    if (typeof v === 'boolean') return { [this.valueField('bool_value')]: v };
    if (Array.isArray(v)) return { [this.valueField('list_value')]: { values: v.map((x) => this.value(x)) } };
    return { [this.valueField('struct_value')]: this.struct(v as Record<string, unknown>) };
  }

  private any(json: unknown, path: string): Record<string, unknown> | undefined {
    if (!isObject(json) || typeof json['@type'] !== 'string') return this.err(path, 'Any needs an "@type"');
    const typeUrl = json['@type'];
    const typeName = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    let inner: protobuf.Type;
    try {
      inner = this.root.lookupType(typeName);
    } catch {
      return this.err(`${path}.@type`, `unknown type ${typeName}`);
    }
    const { '@type': _drop, ...rest } = json;
    // Well-known types inside Any carry their JSON form under "value".
    const isWellKnown = inner.fullName.startsWith('.google.protobuf.') && 'value' in rest;
    const converted = this.message(inner, isWellKnown ? rest['value'] : rest, path);
    if (!converted) return undefined;
    try {
      return { type_url: typeUrl, value: inner.encode(inner.fromObject(converted)).finish() };
    } catch (err) {
      return this.err(path, `cannot encode ${typeName}: ${(err as Error).message}`);
    }
  }
}

/** Encodes `json` as message `typeName` (e.g. 'envoy.config.cluster.v3.Cluster'), strictly. */
export function encodeProtoJson(root: protobuf.Root, typeName: string, json: unknown): EncodeResult {
  const type = root.lookupType(typeName);
  const walker = new Walker(root);
  const converted = walker.message(type, json, '');
  if (walker.errors.length > 0 || !converted) return { ok: false, errors: walker.errors };
  try {
    return { ok: true, bytes: type.encode(type.fromObject(converted)).finish() };
  } catch (err) {
    return { ok: false, errors: [{ path: '(root)', message: (err as Error).message }] };
  }
}
