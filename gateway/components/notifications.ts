// Component `notifications`: the upkeep of approval requests. Expires requests pending longer than
// `approvals.pending_ttl`, and delivers approval events (requested, decided, expired, revoked) from the
// outbox to `notifications.sinks` — woken by every approval change notice and once a second for
// retries. Every control plane of a fleet runs one; they share the work through the outbox's row
// claims (FOR UPDATE SKIP LOCKED), and expire requests under row locks, so nothing happens twice.
import { NotificationWorker } from '../../fleet/notification-worker.ts';
import { NotificationOutbox } from '../../fleet/notifications-outbox.ts';
import type { GatewayComponent } from '../component.ts';
import { type GatewayContext, need } from '../context.ts';

/** Retries come due on this beat; a change notice wakes the worker at once. */
const TICK_MS = 1000;
/** Pending requests are checked against their TTL this often. */
const EXPIRY_EVERY_MS = 5000;
const PRUNE_EVERY_MS = 3.6e6;

export function notificationsComponent(): GatewayComponent<GatewayContext> {
  let worker: NotificationWorker | null = null;
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  return {
    name: 'notifications',
    async start(ctx) {
      const { config, logger } = ctx;
      const { state } = need(ctx, 'audit');
      const approvals = need(ctx, 'approvals');
      const log = logger.child({ component: 'notifications' });
      const outbox = new NotificationOutbox(state.sql, state.node);
      ctx.outbox = outbox;
      const w = new NotificationWorker({
        outbox,
        config: config.notifications,
        consoleUrl: (id) => `${config.controlPlane.issuer}/console/approval?id=${encodeURIComponent(id)}`,
        logger: log,
      });
      worker = w;
      const guarded = (what: string, fn: () => Promise<unknown>) => () => {
        if (stopped) return;
        fn().catch((err: unknown) =>
          log.error(
            { err: err instanceof Error ? err.message : String(err) },
            `${what} failed; retried on the next beat`,
          ),
        );
      };
      const deliver = guarded('notification delivery', () => w.tick());
      const expire = guarded('pending approval expiry', () =>
        approvals.expirePending(config.approvals.pendingTtlMs),
      );
      state.on('approval', deliver);
      timers.push(setInterval(deliver, TICK_MS), setInterval(expire, EXPIRY_EVERY_MS));
      timers.push(
        setInterval(
          guarded('outbox pruning', () => outbox.prune()),
          PRUNE_EVERY_MS,
        ),
      );
      for (const t of timers) t.unref();
      expire();
      deliver();
      const sinks = config.notifications.sinks.map((s) => `${s.name} (${s.type})`).join(', ') || 'no sinks';
      ctx.say(
        'notifications',
        `${sinks}; pending approvals expire after ${config.approvals.pendingTtlMs / 60_000} min`,
      );
    },
    async stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
    },
    status: () => (worker ? { notifications: worker.status() } : null),
  };
}
