// Component `control plane`: one gRPC port for ADS (Envoy's configuration), the access-log service and
// the response-masking ext_proc; then the first snapshot, published from the fleet's targets, and the
// config file watch. Credentials follow the served targets without a restart.
import * as grpc from '@grpc/grpc-js';
import { addAccessLogService } from '../../audit/access-log-service.ts';
import {
  addMaskProcessor,
  type ListingFilteredEvent,
  type MaskEvent,
} from '../../authz-server/masking/mask-processor.ts';
import type { Config } from '../../config/types.ts';
import { ChaperoneError } from '../../contracts/errors.ts';
import { SharedTargets } from '../../fleet/config-revisions.ts';
import { type BoundDataPlane, bindGrpc } from '../../pki/data-plane-listen.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { SHORT_NAME, type TypeUrl } from '../../xds/server/resource-types.ts';
import type { GatewayComponent } from '../component.ts';
import { type AuditRuntime, type GatewayContext, need } from '../context.ts';
import { XdsPublisher } from '../xds-publisher.ts';
import { credentialSpecs } from './authz.ts';

/** What was masked (counts per detector, never values) joins the decision in the audit trail. */
function recordMasking(audit: AuditRuntime) {
  return (m: MaskEvent) =>
    void audit.recordAdmin?.({
      subject: 'chaperone',
      action: 'MASK',
      reason: `masked ${
        Object.entries(m.counts)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ') || 'nothing'
      } in the response to decision ${m.decisionId ?? '?'}`,
      detail: { decision_id: m.decisionId, counts: m.counts, content_type: m.contentType },
    });
}

/** What a filtered MCP listing hid (names and URIs) joins the decision in the audit trail. */
function recordFiltering(audit: AuditRuntime) {
  return (f: ListingFilteredEvent) => {
    const parts = Object.entries(f.hidden).map(
      ([field, names]) => `${names.length} ${field} (${names.join(', ')})`,
    );
    void audit.recordAdmin?.({
      subject: 'chaperone',
      action: 'MCP_FILTER',
      reason: `hid ${parts.join(', ')} from the MCP listing answered to decision ${f.decisionId ?? '?'}`,
      detail: { decision_id: f.decisionId, method: f.method, hidden: f.hidden },
    });
  };
}

function grpcServices(ctx: GatewayContext, ads: AdsServer): grpc.Server {
  const audit = need(ctx, 'audit');
  const server = new grpc.Server();
  ads.addToServer(server);
  addAccessLogService(server, audit.accessLogs, ctx.logger.child({ component: 'als' }));
  addMaskProcessor(server, {
    logger: ctx.logger.child({ component: 'masking' }),
    onMasked: recordMasking(audit),
    onFiltered: recordFiltering(audit),
    ...(ctx.usage ? { usage: ctx.usage } : {}),
  });
  return server;
}

/** The publisher, following the fleet's targets; the first snapshot must translate or start-up fails. */
async function publishFirst(ctx: GatewayContext, ads: AdsServer, bound: BoundDataPlane): Promise<void> {
  const { config, logger } = ctx;
  const authz = need(ctx, 'authz');
  const onServed = (served: Config) => {
    authz.credentials
      .replace(credentialSpecs(served))
      .catch((err: unknown) =>
        logger.error(
          { err: err instanceof Error ? err.message : String(err) },
          'credentials of the new targets rejected; the previous ones stay in force',
        ),
      );
  };
  const publisher = new XdsPublisher(ads, logger.child({ component: 'config' }), onServed, ctx.metrics);
  ctx.publisher = publisher;
  // Targets are the fleet's: this node's file joins the revisions in the store, newer ones from other
  // control planes are served as they arrive.
  const fleet = await SharedTargets.open(need(ctx, 'audit').state, config.targets, {
    logger: logger.child({ component: 'config' }),
    onRevision: (r) => publisher.publishRevision(r),
  });
  ctx.fleet = fleet.shared;
  publisher.joinFleet(fleet.shared);
  const first = publisher.publish({ ...config, targets: fleet.revision.targets });
  if (!first.ok)
    throw new ChaperoneError(
      'ERR_TRANSLATE',
      `config cannot be translated to Envoy resources:\n  ${first.errors.join('\n  ')}`,
    );
  if (ctx.options.configPath) await publisher.watchFile(ctx.options.configPath);
  ctx.say(
    'control plane',
    `${bound.address}${bound.tls ? ' (mutual TLS)' : ''}  ADS + access logs + ext_proc, config ${first.version?.slice(0, 12)} (revision ${fleet.revision.revision})`,
  );
}

export function controlPlaneComponent(): GatewayComponent<GatewayContext> {
  let ctx: GatewayContext | null = null;
  let server: grpc.Server | null = null;
  let bound: BoundDataPlane | null = null;
  return {
    name: 'control plane',
    async start(c) {
      ctx = c;
      const ads = new AdsServer(c.logger.child({ component: 'xds' }));
      c.ads = ads;
      const metrics = c.metrics;
      if (metrics) {
        const count = (kind: 'push' | 'ack' | 'nack') => (e: { nodeId: string; typeUrl: string }) =>
          metrics.xds(kind, e.nodeId, SHORT_NAME[e.typeUrl as TypeUrl] ?? e.typeUrl);
        ads.on('push', count('push'));
        ads.on('ack', count('ack'));
        ads.on('nack', count('nack'));
      }
      server = grpcServices(c, ads);
      // ADS, the access logs and ext_proc answer Envoy only: a 0600 socket, or TLS with a client certificate.
      bound = await bindGrpc(server, {
        address: c.config.controlPlane.xdsAddress,
        tls: c.dataPlaneTls?.server ?? null,
        component: 'control plane (ADS + ALS)',
        override: 'control_plane.xds_address',
      });
      await publishFirst(c, ads, bound);
    },
    async stop() {
      ctx?.publisher?.close();
      const s = server;
      if (!s) return;
      await new Promise<void>((resolve) => {
        s.tryShutdown(() => resolve());
        setTimeout(() => s.forceShutdown(), 2000).unref();
      });
      await bound?.release();
    },
    status: () => {
      if (!ctx?.ads) return null;
      const config = ctx.publisher?.status();
      const fleet = ctx.fleet?.status();
      return {
        xds: {
          ...ctx.ads.status(),
          current_streams: ctx.ads.currentCount(),
          ...(config ? { config: { ...config, ...(fleet ? { fleet } : {}) } } : {}),
        },
      };
    },
  };
}
