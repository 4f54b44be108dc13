import type { FrontRecord } from '../store/service-types.js';

/**
 * The traffic front of a service (docs/services.md): owns the service's published host ports and spreads
 * connections — and, on HTTP ports, requests — over the replicas in rotation. A plug-in behind this interface
 * (one implementation today: HAProxy from the distribution, driven through its runtime API).
 *
 * Replicas sit in numbered slots (1..slots); a slot's replica is reached on each published guest port through the
 * loopback forward of that replica's VM. The front keeps running when its controller dies (a controller killed
 * mid-rollout must not take the traffic with it): a new controller adopts it from its FrontRecord.
 */
export interface FrontPort {
  hostAddress: string;
  hostPort: number;
  guestPort: number;
  /** http: requests are balanced one by one (a drained replica gets no new request on a kept-alive connection) */
  mode: 'tcp' | 'http';
}

/** Where slot's replica answers, per published guest port (its VM's loopback forward). */
export interface SlotTarget { address: string; ports: Record<number, number>; weight: number; }

export type SlotState = 'ready' | 'drain' | 'maint';

/** Cumulative counters of one slot since the front started (all ports together). */
export interface SlotCounters { connections: number; requests: number; bytesIn: number; bytesOut: number; errors: number; active: number; }

/**
 * One request (HTTP ports) or connection (TCP ports) that ended, from the front's log. `port`: the published host
 * port; `status`: 0 on a TCP port; `totalMs`: HTTP: the request's active time (no keep-alive idle), TCP: the connection's.
 */
export interface FrontRequest { slot: number | null; port: number; status: number; totalMs: number; bytesOut: number; }

export interface Front {
  readonly record: FrontRecord;
  /** set when the front runs but lacks something (an adopted front whose log port could not be bound again) */
  readonly warning: string | null;
  /** points `slot` at a replica (state maint until setState) or, with null, empties it (maint) */
  setTarget(slot: number, target: SlotTarget | null): Promise<void>;
  setState(slot: number, state: SlotState): Promise<void>;
  setWeight(slot: number, weight: number): Promise<void>;
  counters(): Promise<Map<number, SlotCounters>>;
  /** each ended request/connection, as the front logs it (for latency histograms) */
  onRequest(listener: (r: FrontRequest) => void): void;
  /** stops the front process and frees its ports */
  stop(): Promise<void>;
  /** closes this process's side (log socket, admin connections) and leaves the front running */
  detach(): Promise<void>;
}

export interface FrontDriver {
  readonly name: string;
  /** E_FRONT_UNAVAILABLE when the proxy is missing; E_PORT_IN_USE when a host port is taken */
  start(opts: { dir: string; ports: FrontPort[]; slots: number }): Promise<Front>;
  /** the front a dead controller left, if its process still answers on its control channel; else null */
  adopt(record: FrontRecord, opts: { dir: string; ports: FrontPort[]; slots: number }): Promise<Front | null>;
}
