// How an Envoy reaches Chaperone's own services — the authz cluster (over CDS) and the control-plane
// cluster (in the bootstrap) — built in one place: a Unix socket address, or a TCP address with mutual
// TLS whose certificates Envoy reads from SDS files (re-read when the control plane renews them).
import type { DataPlaneAddress } from '../../lib/data-plane-address.ts';
import type { IrDataPlaneTls, IrEndpoint } from '../ir/types.ts';
import { TLS_TRANSPORT_SOCKET, UPSTREAM_TLS_TYPE } from './envoy-names.ts';

/** Secret names inside the SDS files (what the files declare and the clusters ask for). */
export const SDS_SECRET = {
  certificate: 'chaperone_data_plane_client',
  validation: 'chaperone_data_plane_ca',
} as const;

/** Where the control plane writes Envoy's SDS files, under `data_plane.tls.dir`. */
export function envoyTlsFiles(tlsDir: string, serverUri: string): IrDataPlaneTls {
  return {
    certificateSds: `${tlsDir}/envoy/client-certificate.sds.json`,
    validationSds: `${tlsDir}/envoy/ca.sds.json`,
    serverUri,
  };
}

export function endpointOf(a: DataPlaneAddress): IrEndpoint {
  return a.kind === 'unix' ? { pipe: a.path } : { host: a.host, port: a.port };
}

/** An Envoy core.v3.Address. */
export function envoyAddress(e: IrEndpoint, pipeMode?: number): Record<string, unknown> {
  if ('pipe' in e) return { pipe: { path: e.pipe, ...(pipeMode === undefined ? {} : { mode: pipeMode }) } };
  return { socket_address: { address: e.host, port_value: e.port } };
}

function sdsFile(name: string, path: string): Record<string, unknown> {
  return { name, sds_config: { path_config_source: { path }, resource_api_version: 'V3' } };
}

/** UpstreamTlsContext: Envoy's certificate, the CA, and the server role required in the peer's SAN. */
export function dataPlaneTlsSocket(tls: IrDataPlaneTls): Record<string, unknown> {
  return {
    name: TLS_TRANSPORT_SOCKET,
    typed_config: {
      '@type': UPSTREAM_TLS_TYPE,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [sdsFile(SDS_SECRET.certificate, tls.certificateSds)],
        combined_validation_context: {
          default_validation_context: {
            match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: tls.serverUri } }],
          },
          validation_context_sds_secret_config: sdsFile(SDS_SECRET.validation, tls.validationSds),
        },
      },
    },
  };
}

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** The SDS file with Envoy's client certificate (a DiscoveryResponse-shaped document Envoy reads). */
export function certificateSdsDocument(certPem: string, keyPem: string): Record<string, unknown> {
  return {
    resources: [
      {
        '@type': SECRET_TYPE,
        name: SDS_SECRET.certificate,
        tls_certificate: {
          certificate_chain: { inline_string: certPem },
          private_key: { inline_string: keyPem },
        },
      },
    ],
  };
}

/** The SDS file with the CA every data-plane server certificate must chain to. */
export function validationSdsDocument(caPem: string): Record<string, unknown> {
  return {
    resources: [
      {
        '@type': SECRET_TYPE,
        name: SDS_SECRET.validation,
        validation_context: { trusted_ca: { inline_string: caPem } },
      },
    ],
  };
}
