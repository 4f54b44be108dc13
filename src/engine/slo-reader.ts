import type { SloReport, SloWindow } from './slo.js';

/** The figures of docs/slo.md with the current apps and nodes, as GET /v1/slo answers them. */
export interface SloView extends SloReport {
  apps: Array<{ tenant: string; name: string; state: string; node: string; accel: string | null; bootMs: number | null }>;
  nodes: Array<{ name: string; status: string; cordoned?: boolean }>;
}

/** `unikctl status --slo`: the control plane's /v1/slo (remote mode) or the same figures from the local store. */
export interface SloReader {
  slo(q: { window: SloWindow; app?: string }): Promise<SloView>;
}
