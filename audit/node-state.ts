// A node's state directory (the parent of its spool: signing key, embedded database, spool, anchor,
// Envoy bootstrap) made private at start: umask 077 for everything created from now on, the directory
// 0700 and Chaperone's entries in it owner-only; what was open is reported once.
import { basename } from 'node:path';
import type { Logger } from 'pino';
import { securePrivateDir, useOwnerOnlyUmask } from '../store/state-dir.ts';
import { ANCHOR_FILE } from './anchor.ts';

/** Throws StateDirError (ERR_STATE_DIR) when the directory cannot be made private. */
export async function secureNodeState(stateDir: string, spoolDir: string, logger: Logger): Promise<void> {
  useOwnerOnlyUmask();
  const fixed = await securePrivateDir(stateDir, {
    only: ['audit', 'keys', 'envoy', ANCHOR_FILE, basename(spoolDir)],
  });
  if (fixed.length > 0)
    logger.warn(
      { state_dir: stateDir, fixed: fixed.length, examples: fixed.slice(0, 5) },
      'state directory entries were open to other users; narrowed to owner-only',
    );
}
