// The gateway as a list of components started in order by one small runner: each component starts
// (reading what the earlier ones put into the shared context), reports its status, and stops. If one
// fails to start, the ones already running are stopped in reverse order before the error is rethrown;
// stopping the whole list goes in reverse too, so the audit spool (first up) is flushed last.
import type { Logger } from 'pino';

export interface GatewayComponent<Ctx> {
  /** Shown in logs and in docs/architecture.md's start order. */
  readonly name: string;
  /** Starts the component; throws to abort the start-up (everything started before is rolled back). */
  start(ctx: Ctx): Promise<void>;
  /** Stops what `start` started; called once, in reverse start order. */
  stop(): Promise<void>;
  /** This component's sections of /status (merged in start order), or null when it has none. */
  status(): Record<string, unknown> | null;
}

export interface RunningComponents {
  /** The names of the components that are running, in start order. */
  names(): string[];
  /** Every running component's status sections, merged in start order. */
  status(): Record<string, unknown>;
  /** Stops every running component in reverse order; a failing stop is logged and the rest go on. */
  stop(): Promise<void>;
}

/**
 * Starts `components` in order against `ctx`. Returns at once with the running set, which grows as each
 * start resolves (so status composed during start-up shows what is up); `started` settles when all are.
 */
export function runComponents<Ctx>(
  components: readonly GatewayComponent<Ctx>[],
  ctx: Ctx,
  logger: Logger,
): { running: RunningComponents; started: Promise<void> } {
  const up: GatewayComponent<Ctx>[] = [];
  const stopAll = async () => {
    for (const c of up.splice(0).reverse()) {
      try {
        await c.stop();
      } catch (err) {
        logger.error(
          { component: c.name, err: err instanceof Error ? err.message : String(err) },
          'stop failed',
        );
      }
    }
  };
  const running: RunningComponents = {
    names: () => up.map((c) => c.name),
    status: () => Object.assign({}, ...up.map((c) => c.status() ?? {})) as Record<string, unknown>,
    stop: stopAll,
  };
  const started = (async () => {
    for (const c of components) {
      try {
        await c.start(ctx);
      } catch (err) {
        // A component that failed half-way may hold resources: give it its own stop first.
        await c.stop().catch(() => undefined);
        await stopAll();
        throw err;
      }
      up.push(c);
    }
  })();
  return { running, started };
}
