/**
 * What the services' traffic front (issue 13, not built yet) feeds the SLO figures: requests per app and tenant,
 * as counts over short intervals (e.g. one call per app every 10 s with the requests served in it). The samples
 * store (slo-samples.ts) keeps them in `slo_requests`; cost per request and requests per second are computed from
 * them. Until a front calls `count`, every request figure is null ("no request data (needs services)").
 */
export interface RequestCounter {
  /** `n` requests to `app` of `tenant` ('' without tenants) finished by time `at` (ms since the epoch). */
  count(tenant: string, app: string, n: number, at: number): void;
  /** Whether any request source has been attached (the front calls `attach` once when it starts). */
  readonly attached: boolean;
  attach(): void;
}
