// `startGatewayProcess` again on fresh ports when the ones picked were taken before the gateway (or its
// Envoy) bound them: another suite's process, or an outgoing connection's ephemeral port, got there
// first on a busy machine.
import { type GatewayProcess, startGatewayProcess } from './gateway-process.ts';

export async function startGatewayOnFreePorts(
  opts: Omit<Parameters<typeof startGatewayProcess>[0] & object, 'ports'> = {},
  attempts = 4,
): Promise<GatewayProcess> {
  for (let i = 1; ; i++) {
    try {
      return await startGatewayProcess(opts);
    } catch (err) {
      if (i >= attempts || !(err instanceof Error) || !/already in use/i.test(err.message)) throw err;
    }
  }
}
