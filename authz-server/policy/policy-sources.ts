// Where the enforced policy comes from, decided once at start and then followed:
// - a bundle server (`bundle_url`), polled the OPA way (bundle-service.ts);
// - else, on a shared store, the fleet's active published revision (fleet/policy-revisions.ts): each
//   activation is announced by NOTIFY, read once, verified and swapped in;
// - the node's own `dir`/`bundle` until the fleet source delivers a policy (and for good when there is
//   none). Once a fleet source serves, the node's own source is no longer watched.
// Every refusal (bad bundle, bad signature, unreachable source) keeps the last good policy serving and
// is logged with its code and in `status()`.
import type { Logger } from 'pino';
import type { BundleServiceConfig, BundleSigningConfig } from '../../config/types.ts';
import { ChaperoneError } from '../../contracts/errors.ts';
import {
  type PolicyActivation,
  PolicyRevisionFollower,
  PolicyRevisionStore,
  parseRevisionId,
} from '../../fleet/policy-revisions.ts';
import type { SharedState } from '../../fleet/shared-state.ts';
import { type BundleVerification, resolveVerification } from './bundle-keys.ts';
import { BundleService } from './bundle-service.ts';
import { type PolicySource, PolicyStore } from './policy-store.ts';

export interface PolicySourcesOptions {
  /** The node's own source. */
  local: PolicySource;
  watch: boolean;
  signing?: BundleSigningConfig | null;
  bundleService?: BundleServiceConfig | null;
  /** The shared store: follow the fleet's published revisions. */
  fleet?: SharedState | null;
  /** Shadow mode: a candidate — a directory, a bundle, or a published revision (`r7`). */
  shadow?: PolicySource | { kind: 'revision'; revision: string; entrypoint: string } | null;
  logger: Logger;
  /** Called after every load of the enforcing policy (metrics: reloads and failures). */
  onReload?: (ok: boolean) => void;
}

export interface PolicySources {
  policy: PolicyStore;
  shadow: PolicyStore | null;
  status(): Record<string, unknown>;
  close(): void;
}

/** Serves each activation in order; a newer one waiting makes an older one moot. */
function storeFollower(policy: PolicyStore, state: SharedState, logger: Logger) {
  const store = new PolicyRevisionStore(state);
  let latest = 0;
  let chain: Promise<void> = Promise.resolve();
  const serve = async (a: PolicyActivation): Promise<void> => {
    if (a.seq < latest) return;
    const origin = `store ${a.id}`;
    let bytes: Buffer | null;
    try {
      bytes = await store.bundle(a.revision);
    } catch (err) {
      policy.reportSourceError(
        origin,
        `cannot read ${a.id} from the store: ${err instanceof Error ? err.message : String(err)}`,
      );
      // Retried while it is still the newest activation.
      setTimeout(() => a.seq === latest && onActive(a), 2000).unref();
      return;
    }
    if (!bytes) return policy.reportSourceError(origin, `${a.id} is not in the store`);
    if (await policy.offer({ bytes, revision: a.id, origin })) {
      policy.unwatch();
      logger.info(
        { policy_revision: a.id, reason: a.reason, by: a.activatedBy },
        'serving the fleet policy revision',
      );
    }
  };
  const onActive = (a: PolicyActivation) => {
    latest = Math.max(latest, a.seq);
    chain = chain.then(() => serve(a));
  };
  return {
    open: async () => {
      const follower = await PolicyRevisionFollower.open(state, onActive);
      await chain;
      return follower;
    },
  };
}

function newStore(
  source: PolicySource,
  verification: BundleVerification | null,
  logger: Logger,
  role: 'policy' | 'shadow',
  onReload?: (ok: boolean) => void,
) {
  const label = role === 'shadow' ? 'shadow policy' : 'policy';
  return new PolicyStore(
    source,
    {
      onLoaded: (s) => {
        onReload?.(true);
        logger.info(
          { [`${role}_revision`]: s.revision, origin: s.origin, verified_by: s.verifiedBy },
          `${label} loaded`,
        );
      },
      onError: (e) => {
        onReload?.(false);
        logger.error({ code: e.code, origin: e.origin, errors: e.errors }, `${label}: ${e.message}`);
      },
    },
    { verification },
  );
}

async function openShadow(o: PolicySourcesOptions, verification: BundleVerification | null) {
  const s = o.shadow;
  if (!s) return null;
  if (s.kind !== 'revision') {
    const shadow = newStore(s, verification, o.logger, 'shadow');
    if (!(await shadow.reload()))
      throw missing(`shadow policy could not be loaded: ${shadow.lastError()?.message}`);
    await shadow.watch();
    return shadow;
  }
  const n = parseRevisionId(s.revision);
  if (n === null) throw missing(`shadow revision ${JSON.stringify(s.revision)} is not a revision id like r7`);
  if (!o.fleet) throw missing('a shadow revision needs the shared store (--store)');
  const bytes = await new PolicyRevisionStore(o.fleet).bundle(n);
  if (!bytes) throw missing(`shadow revision r${n} is not in the store`);
  const shadow = newStore(
    { kind: 'offered', path: `store r${n}`, entrypoint: s.entrypoint },
    verification,
    o.logger,
    'shadow',
  );
  if (!(await shadow.offer({ bytes, revision: `r${n}`, origin: `store r${n}` })))
    throw missing(`shadow policy could not be loaded: ${shadow.lastError()?.message}`);
  return shadow;
}

const missing = (message: string) => new ChaperoneError('ERR_POLICY_MISSING', message);

export async function openPolicySources(o: PolicySourcesOptions): Promise<PolicySources> {
  // A key that cannot be read stops the start: a node must never run believing it verifies.
  const verification = o.signing ? resolveVerification(o.signing) : null;
  const policy = newStore(o.local, verification, o.logger, 'policy', o.onReload);
  let service: BundleService | null = null;
  let follower: PolicyRevisionFollower | null = null;
  if (o.bundleService) {
    const cfg = o.bundleService;
    service = new BundleService({
      url: cfg.url,
      token: cfg.token,
      minDelayMs: cfg.minDelaySec * 1000,
      maxDelayMs: cfg.maxDelaySec * 1000,
      onBundle: async (bytes, origin) => {
        const served = await policy.offer({ bytes, origin });
        if (served) policy.unwatch();
        return served;
      },
      onError: (origin, message) => policy.reportSourceError(origin, message),
      logger: o.logger,
    });
    await service.pollOnce();
  } else if (o.fleet) {
    follower = await storeFollower(policy, o.fleet, o.logger).open();
  }
  if (!policy.current()) {
    const fleetError = policy.lastError();
    if (fleetError)
      o.logger.warn(
        { origin: fleetError.origin },
        'serving the local policy until the fleet source delivers one',
      );
    if (!(await policy.reload())) {
      const why = [fleetError?.message, policy.lastError()?.message].filter(Boolean).join('; ');
      throw missing(why || 'policy could not be loaded');
    }
    if (o.watch) await policy.watch();
  }
  service?.start();
  let shadow: PolicyStore | null;
  try {
    shadow = await openShadow(o, verification);
  } catch (err) {
    service?.stop();
    policy.close();
    throw err;
  }
  return {
    policy,
    shadow,
    status: () => ({
      ...policy.status(),
      ...(service ? { bundle_service: service.status() } : {}),
      ...(follower ? { fleet_active: follower.active()?.id ?? null } : {}),
      ...(shadow ? { shadow: shadow.status() } : {}),
    }),
    close: () => {
      service?.stop();
      policy.close();
      shadow?.close();
    },
  };
}
