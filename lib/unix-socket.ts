// Unix domain sockets for the data-plane services: the socket lives in a directory only the gateway's
// user may enter (0700) and is itself 0600, so another local user cannot connect (connect(2) needs write
// permission on the socket file; the directory closes the window between bind and chmod). A socket file
// left by a killed run is removed — after checking nobody still answers on it.
import { chmod, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { PortInUseError } from './ports.ts';

export const SOCKET_DIR_MODE = 0o700;
export const SOCKET_MODE = 0o600;

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Creates the socket's directory 0700 (tightening one we own), and removes a stale socket file. */
export async function claimSocketPath(path: string, component: string, override: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: SOCKET_DIR_MODE });
  const d = await stat(dir);
  if (typeof process.getuid === 'function' && d.uid === process.getuid() && (d.mode & 0o077) !== 0)
    await chmod(dir, SOCKET_DIR_MODE);
  const existing = await lstat(path).catch(() => null);
  if (!existing) return;
  if (!existing.isSocket())
    throw new PortInUseError({ component, host: path, port: 0, override }, 'is not a socket');
  if (await answers(path)) throw new PortInUseError({ component, host: path, port: 0, override });
  await unlink(path);
}

/** After bind: only the owner may connect. */
export async function restrictSocket(path: string): Promise<void> {
  await chmod(path, SOCKET_MODE);
}

/** Removes the socket file a server leaves behind when it closes (grpc-js and Envoy do not). */
export async function releaseSocketPath(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}
