// Component `telemetry`: Prometheus metrics (when `telemetry.metrics` is configured) and OpenTelemetry
// traces (when the OTEL_* environment asks for them) for the whole gateway. First up, because the authz
// server and the control plane count and trace into what it makes; last down, so spans still buffered
// are exported after everything else stopped. Its gauges read the other components' state through the
// context when Prometheus scrapes, so they answer as those components come up.
import type { HttpApi } from '../../api/http-api.ts';
import { startMetricsListener } from '../../api/metrics-listener.ts';
import { Metrics } from '../../telemetry/metrics.ts';
import { type CheckTracer, startTracing } from '../../telemetry/tracing.ts';
import type { GatewayComponent } from '../component.ts';
import type { GatewayContext } from '../context.ts';

interface AuditNumbers {
  spool?: { pending?: number; pendingSince?: string | null };
  shipper?: { shipped?: number; failures?: number };
  access_logs?: { dropped?: number };
}

/** The audit pipeline's counts, as its status reports them (zeros before it is up). */
function auditNumbers(ctx: GatewayContext): AuditNumbers {
  return (ctx.audit?.status() ?? {}) as AuditNumbers;
}

/** Seconds records have waited in the spool without it emptying (0 when none wait). */
function shipperLag(ctx: GatewayContext): number {
  const since = auditNumbers(ctx).spool?.pendingSince;
  return since ? Math.max(0, (Date.now() - Date.parse(since)) / 1000) : 0;
}

function auditGauges(metrics: Metrics, ctx: GatewayContext): void {
  metrics.gauge(
    'chaperone_audit_spool_pending_records',
    'Decisions durable in the local spool and not yet in the audit store.',
    () => auditNumbers(ctx).spool?.pending ?? 0,
  );
  metrics.gauge(
    'chaperone_audit_shipper_lag_seconds',
    'Seconds decisions have waited in the spool without it emptying: the shipper lag (0: none wait).',
    () => shipperLag(ctx),
  );
  metrics.counterOf(
    'chaperone_audit_shipped_records_total',
    'Decisions the shipper stored in the audit store.',
    () => auditNumbers(ctx).shipper?.shipped ?? 0,
  );
  metrics.counterOf(
    'chaperone_audit_shipper_failures_total',
    'Shipper batches the audit store failed (retried with backoff).',
    () => auditNumbers(ctx).shipper?.failures ?? 0,
  );
  metrics.counterOf(
    'chaperone_access_logs_dropped_total',
    'Envoy access-log entries dropped because the store could not keep up.',
    () => auditNumbers(ctx).access_logs?.dropped ?? 0,
  );
}

function fleetGauges(metrics: Metrics, ctx: GatewayContext): void {
  metrics.gauge(
    'chaperone_approvals_pending',
    'Approval requests waiting for a reviewer (fleet-wide).',
    async () => (ctx.approvals ? ctx.approvals.pendingCount() : 0),
  );
  metrics.gauge(
    'chaperone_agent_tokens_active',
    'Agent tokens issued, unexpired and not revoked (fleet-wide).',
    async () => (ctx.agents ? ctx.agents.activeCount() : 0),
  );
}

function controlPlaneGauges(metrics: Metrics, ctx: GatewayContext): void {
  metrics.gauge('chaperone_xds_streams', 'Envoy ADS streams connected to this control plane.', () =>
    ctx.ads ? ctx.ads.status().streams.length : 0,
  );
  metrics.gauge(
    'chaperone_config_info',
    'The Envoy configuration version served (value 1).',
    () => {
      const version = ctx.ads?.status().version;
      return version ? [{ labels: { version }, value: 1 }] : [];
    },
    ['version'],
  );
  metrics.gauge(
    'chaperone_config_restart_required',
    'Sections of chaperone.yaml edited since start that apply only after a restart.',
    () => ctx.publisher?.status().restart_needed.length ?? 0,
  );
}

export function telemetryComponent(): GatewayComponent<GatewayContext> {
  let listener: HttpApi | null = null;
  let tracer: CheckTracer | null = null;
  return {
    name: 'telemetry',
    async start(ctx) {
      const logger = ctx.logger.child({ component: 'telemetry' });
      tracer = await startTracing({ serviceName: 'chaperone', logger });
      if (tracer) ctx.tracer = tracer;
      const m = ctx.config.telemetry.metrics;
      if (m) {
        const metrics = new Metrics().withProcessMetrics();
        ctx.metrics = metrics;
        auditGauges(metrics, ctx);
        fleetGauges(metrics, ctx);
        controlPlaneGauges(metrics, ctx);
        listener = await startMetricsListener({
          address: m.address,
          tokenFile: m.tokenFile,
          logger,
          render: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
          envoyAdminUrl: () => ctx.envoy?.current()?.adminUrl ?? null,
        });
      }
      ctx.say(
        'telemetry',
        `metrics ${listener ? `${listener.url}/metrics` : 'off'}  traces ${tracer ? 'OTLP' : 'off'}`,
      );
    },
    async stop() {
      await listener?.close();
      await tracer?.shutdown().catch(() => undefined);
    },
    status: () => ({
      telemetry: { metrics: listener ? `${listener.url}/metrics` : null, traces: tracer ? 'otlp' : 'off' },
    }),
  };
}
