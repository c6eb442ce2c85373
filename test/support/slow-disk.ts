// A spool on a disk whose fsyncs wait while a test holds it. Every ALLOW awaits its durable append, so
// holding the disk keeps admitted Checks in flight: a test fills the authz server's admission bound, or
// Envoy's circuit breaker, exactly, then lets them finish.
import { open } from 'node:fs/promises';
import { type AppendHandle, Spool } from '../../audit/spool.ts';

export interface SlowDiskSpool {
  spool: Spool;
  /** From now on, every fsync waits until `release()`. */
  hold(): void;
  /** Lets the held fsyncs (and later ones) complete. Safe to call when nothing is held. */
  release(): void;
}

export async function openSlowDiskSpool(dir: string): Promise<SlowDiskSpool> {
  let diskWait: Promise<void> = Promise.resolve();
  let release: () => void = () => undefined;
  const spool = await Spool.open({
    dir,
    openForAppend: async (path): Promise<AppendHandle> => {
      const fh = await open(path, 'a', 0o600);
      return {
        write: ((...args: Parameters<typeof fh.write>) => fh.write(...args)) as AppendHandle['write'],
        datasync: async () => {
          await diskWait;
          return fh.datasync();
        },
        truncate: (len) => fh.truncate(len),
        close: () => fh.close(),
      };
    },
  });
  return {
    spool,
    hold: () => {
      diskWait = new Promise<void>((r) => {
        release = r;
      });
    },
    release: () => release(),
  };
}
