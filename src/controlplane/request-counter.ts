/**
 * What the services' traffic fronts feed the control plane's SLO figures (through RequestFeed, request-feed.ts):
 * requests per app and tenant, as counts over short intervals (one call per app every 10 s with the requests served
 * in it). The samples store (slo-samples.ts) keeps them in `slo_requests`; cost per request and requests per second
 * are computed from them. Until a source attaches (a service is seen), every request figure is null. (Local mode
 * reads its fronts' requests from the local store instead: src/engine/local-slo.ts.)
 */
export interface RequestCounter {
  /** `n` requests to `app` of `tenant` ('' without tenants) finished by time `at` (ms since the epoch). */
  count(tenant: string, app: string, n: number, at: number): void;
  /** Whether any request source has been attached (the front calls `attach` once when it starts). */
  readonly attached: boolean;
  attach(): void;
}
