// A verified identity as the authz server's verifier produces it, for suites that build inputs directly.
import type { Identity } from '../../identity/verifier.ts';

export function verifiedIdentity(subject = 'alice', over: Partial<Identity> = {}): Identity {
  const issuer = over.issuer ?? 'https://idp.example.test';
  return {
    issuer,
    subject,
    subject_issuer: issuer,
    audience: ['chaperone'],
    email: null,
    name: null,
    groups: [],
    actor: null,
    token_id: null,
    expires_at: 0,
    claims: {},
    ...over,
  };
}
