// Signed checkpoints over the decision chain. The hash chain shows a record was changed, deleted,
// inserted or reordered — unless someone rewrites every hash after it. A checkpoint (seq, hash) signed
// with Chaperone's key pins the chain at that point: a rewrite then has to forge the signature too.
import { CompactSign, compactVerify, importJWK, type JWK } from 'jose';

export interface Checkpoint {
  seq: number;
  hash: string;
  signature: string;
  key_id: string;
  time: string;
}

export interface CheckpointSigner {
  kid: string;
  signingKey: Parameters<CompactSign['sign']>[0];
  jwks(): { keys: JWK[] };
}

export async function signCheckpoint(
  signer: CheckpointSigner,
  seq: number,
  hash: string,
): Promise<Checkpoint> {
  const time = new Date().toISOString();
  const payload = new TextEncoder().encode(JSON.stringify({ seq, hash, time }));
  const signature = await new CompactSign(payload)
    .setProtectedHeader({ alg: 'ES256', kid: signer.kid })
    .sign(signer.signingKey);
  return { seq, hash, signature, key_id: signer.kid, time };
}

/** Null when the checkpoint's signature is valid for its (seq, hash) under one of the keys, else why not. */
export async function checkCheckpoint(cp: Checkpoint, jwks: { keys: JWK[] }): Promise<string | null> {
  const jwk = jwks.keys.find((k) => k.kid === cp.key_id);
  if (!jwk) return `checkpoint ${cp.seq} is signed with an unknown key ${cp.key_id}`;
  try {
    const { payload } = await compactVerify(cp.signature, await importJWK(jwk, 'ES256'));
    const signed = JSON.parse(new TextDecoder().decode(payload)) as { seq: number; hash: string };
    if (signed.seq !== cp.seq || signed.hash !== cp.hash)
      return `checkpoint ${cp.seq} does not match what was signed`;
    return null;
  } catch {
    return `checkpoint ${cp.seq} has an invalid signature`;
  }
}
