// A person is (issuer, subject) wherever Chaperone keeps something per person: the revocation index
// the Check path and the token exchange read, the approval fingerprint and who may read or decide an
// approval request. Two issuers with an "alice" each are two people in every table below.
import { describe, expect, it } from 'vitest';
import type { Role } from '../../api/route.ts';
import { maySee } from '../../api/routes/approvals.ts';
import { personOf, samePerson } from '../../contracts/identity.ts';
import { RevocationIndex } from '../../fleet/agent-registry.ts';
import { type ApprovalRequest, fingerprintOf } from '../../fleet/approval-store.ts';
import { verifiedIdentity } from '../support/identity.ts';

const A = 'https://a.example.test';
const B = 'https://b.example.test';
const NOW_SEC = 1_900_000_000;

/** An agent token's identity: the person of `issuer`, the agent, issued at `iat`. */
function agent(issuer: string, subject: string, name: string, iat: number, tokenId = 'tok') {
  return {
    token_id: tokenId,
    subject,
    subject_issuer: issuer,
    actor: { agent: name },
    claims: { iat },
  };
}

/** A person's own token, issued at `iat`. */
function person(issuer: string, subject: string, iat: number) {
  return { token_id: null, subject, subject_issuer: issuer, actor: null, claims: { iat } };
}

describe('samePerson', () => {
  it.each([
    [{ issuer: A, subject: 'alice' }, { issuer: A, subject: 'alice' }, true],
    [{ issuer: A, subject: 'alice' }, { issuer: B, subject: 'alice' }, false],
    [{ issuer: A, subject: 'alice' }, { issuer: A, subject: 'bob' }, false],
  ])('%o and %o: %s', (x, y, same) => {
    expect(samePerson(x, y)).toBe(same);
  });

  it("names an agent token's person by the person's issuer, not the token's", () => {
    const id = verifiedIdentity('alice', { issuer: 'https://chaperone.example.test', subject_issuer: A });
    expect(personOf(id)).toEqual({ issuer: A, subject: 'alice' });
  });
});

describe('RevocationIndex keys every cutoff by issuer and subject', () => {
  const index = new RevocationIndex({
    token_ids: ['dead'],
    users: [{ issuer: A, subject: 'alice', cutoff: NOW_SEC * 1000 + 500 }],
    agents: [{ issuer: B, subject: 'bob', agent: 'bot', cutoff: NOW_SEC * 1000 }],
  });

  it.each([
    ["A's alice's agent from before her kill switch", agent(A, 'alice', 'x', NOW_SEC - 1), /every agent/],
    ["B's alice's agent of the same second", agent(B, 'alice', 'x', NOW_SEC - 1), null],
    ["A's alice's agent minted after the cutoff's second", agent(A, 'alice', 'x', NOW_SEC + 1), null],
    ["B's bob's bot from before", agent(B, 'bob', 'bot', NOW_SEC - 1), /agent bot/],
    ["A's bob's bot (another person)", agent(A, 'bob', 'bot', NOW_SEC - 1), null],
    ["B's bob's other agent", agent(B, 'bob', 'other', NOW_SEC - 1), null],
    ['a revoked token id, whoever', agent(B, 'carol', 'x', NOW_SEC + 9, 'dead'), /dead was revoked/],
    ["a person's own token is never an agent token to revoke", person(A, 'alice', NOW_SEC - 1), null],
    // A subject matching a key's JSON cannot forge another person.
    ['a subject that looks like a key', agent(A, '","alice', 'x', NOW_SEC - 1), null],
  ])('%s', (_what, identity, expected) => {
    const reason = index.revoked(identity);
    if (expected === null) expect(reason).toBeNull();
    else expect(reason).toMatch(expected);
  });

  it.each([
    ['issued a second before the kill switch', person(A, 'alice', NOW_SEC - 1), true],
    ['issued in the same second (fail closed)', person(A, 'alice', NOW_SEC), true],
    ['issued without iat', { ...person(A, 'alice', 0), claims: {} }, true],
    ['signed in again after it', person(A, 'alice', NOW_SEC + 1), false],
    ["B's alice, whose agents nobody revoked", person(B, 'alice', NOW_SEC - 1), false],
  ])('exchange of a token %s: refused %s', (_what, identity, refused) => {
    expect(index.exchangeRefused(identity) !== null).toBe(refused);
  });

  it('round-trips through JSON as the control plane publishes it', () => {
    const remote = new RevocationIndex(JSON.parse(JSON.stringify(index.list)));
    expect(remote.revoked(agent(A, 'alice', 'x', NOW_SEC - 1))).toMatch(/every agent/);
    expect(remote.revoked(agent(B, 'alice', 'x', NOW_SEC - 1))).toBeNull();
  });
});

describe('approvals', () => {
  const parts = {
    subject: 'alice',
    issuer: A,
    actor: null,
    target: 'demo',
    action: 'DELETE /demo/items/1',
  };

  it("fingerprints differ by the requester's issuer, so a grant matches one person only", () => {
    expect(fingerprintOf({ ...parts, issuer: B })).not.toBe(fingerprintOf(parts));
    expect(fingerprintOf({ ...parts })).toBe(fingerprintOf(parts));
  });

  const request = (over: Partial<ApprovalRequest['requester']> = {}): ApprovalRequest => ({
    id: 'r1',
    fingerprint: 'fp',
    status: 'pending',
    requester: { subject: 'alice', issuer: A, actor: { agent: 'bot' }, ...over },
    target: 'demo',
    method: 'DELETE',
    path: '/demo/items/1',
    body_sha256: null,
    reviewers: ['security'],
    reason: 'r',
    ttl_ms: 1,
    mode: 'once',
    created_at: '',
    decided_at: null,
    decided_by: null,
    expires_at: null,
    uses: 0,
  });
  const none = new Set<Role>();
  const reviewer = new Set<Role>(['reviewer']);

  it.each([
    ["A's alice", verifiedIdentity('alice', { issuer: A }), none, true],
    ["B's alice", verifiedIdentity('alice', { issuer: B }), none, false],
    [
      "A's alice's agent that raised it",
      verifiedIdentity('alice', {
        issuer: 'https://chaperone',
        subject_issuer: A,
        actor: { sub: 'a', agent: 'bot' },
      }),
      none,
      true,
    ],
    [
      "B's alice's agent of the same name",
      verifiedIdentity('alice', {
        issuer: 'https://chaperone',
        subject_issuer: B,
        actor: { sub: 'a', agent: 'bot' },
      }),
      none,
      false,
    ],
    [
      "a reviewer of B in the request's group",
      verifiedIdentity('carol', { issuer: B, groups: ['security'] }),
      reviewer,
      true,
    ],
    [
      "B's alice with the reviewer role but not the group",
      verifiedIdentity('alice', { issuer: B }),
      reviewer,
      false,
    ],
  ])('%s may read it: %s', (_who, who, roles, visible) => {
    expect(maySee(request(), who, roles)).toBe(visible);
  });
});
