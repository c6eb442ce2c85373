// google.protobuf.Struct in Envoy resources written as JSON (route metadata, a local reply's
// json_format): every value survives encoding. protobufjs' own struct.proto names Value's fields in
// camelCase, and a value written under another name was dropped — Envoy then saw null.
import { describe, expect, it } from 'vitest';
import { loadEnvoyRoot } from '../../lib/envoy-proto.ts';
import { fromStruct, type StructValue } from '../../lib/proto-struct.ts';
import { encodeProtoJson } from '../../lib/protojson.ts';

describe('encodeProtoJson: Struct values', () => {
  it('keeps strings, numbers, booleans, null, lists and nested objects', () => {
    const root = loadEnvoyRoot();
    const doc = { s: 'ERR_X %REQ(X-REQUEST-ID)%', n: 1048576, b: true, z: null, l: [1, 'a'], o: { k: 'v' } };
    const encoded = encodeProtoJson(root, 'envoy.config.route.v3.Route', {
      name: 'r',
      match: { prefix: '/' },
      direct_response: { status: 200 },
      metadata: { filter_metadata: { chaperone: doc } },
    });
    expect(encoded.ok).toBe(true);
    if (!encoded.ok) return;
    const type = root.lookupType('envoy.config.route.v3.Route');
    const decoded = type.toObject(type.decode(encoded.bytes)) as {
      metadata: { filterMetadata?: Record<string, { fields: Record<string, StructValue> }> } & Record<
        string,
        any
      >;
    };
    const meta = decoded.metadata.filterMetadata ?? decoded.metadata['filter_metadata'];
    expect(fromStruct(meta!['chaperone'])).toEqual(doc);
  });
});
