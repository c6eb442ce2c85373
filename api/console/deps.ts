// What the console's pages read and change: the same stores the JSON API uses (approvals, the agent
// registry, the audit trail, /status), the session store and the sign-in, and the notification outbox.
import type { AgentRegistry } from '../../fleet/agent-registry.ts';
import type { ApprovalStore } from '../../fleet/approval-store.ts';
import type { NotificationOutbox } from '../../fleet/notifications-outbox.ts';
import type { AdminAudit } from '../routes/approvals.ts';
import type { AuditTrail } from '../routes/audit.ts';
import type { SessionStore } from './sessions.ts';
import type { ConsoleSignIn } from './sign-in.ts';

export interface ConsoleDeps {
  sessions: SessionStore;
  signIn: ConsoleSignIn;
  approvals: ApprovalStore;
  agents: AgentRegistry;
  /** The audit store's read side; without it the decision pages say the trail is not available. */
  trail?: AuditTrail;
  /** Verifies the trail against keys and anchors kept outside the database (audit/trust.ts). */
  verifyTrail?: () => Promise<unknown>;
  outbox?: NotificationOutbox;
  /** Every component's status (what /status answers). */
  status: () => Record<string, unknown>;
  recordAdmin?: AdminAudit;
  /** Dev mode: demo users the sign-in page offers (sent to the dev issuer as login_hint). */
  devUsers?: readonly string[];
  /** At most this many live tails at once (each holds a connection). Default 16. */
  maxStreams?: number;
}
