/**
 * What a services' traffic front would feed the control plane's SLO figures: requests per app and tenant,
 * as counts over short intervals (e.g. one call per app every 10 s with the requests served in it). The samples
 * store (slo-samples.ts) keeps them in `slo_requests`; cost per request and requests per second are computed from
 * them. Services run in local mode only so far (their fronts record into the local store, src/engine/local-slo.ts);
 * until the control plane runs them and a front calls `count`, its request figures are null.
 */
export interface RequestCounter {
  /** `n` requests to `app` of `tenant` ('' without tenants) finished by time `at` (ms since the epoch). */
  count(tenant: string, app: string, n: number, at: number): void;
  /** Whether any request source has been attached (the front calls `attach` once when it starts). */
  readonly attached: boolean;
  attach(): void;
}
