import type { PortMapping } from '../util/port.js';

/**
 * The admission checks of a control plane whose VMs run on its own host, so that a deploy this host cannot run is
 * refused before the 202. A control plane with a fleet of agents has none (null): its scheduler weighs each node.
 */
export interface HostAdmission {
  /** the most memory one VM may ask for (the host's RAM) */
  maxMemoryMiB: number;
  /** refuses host ports this host cannot bind (taken, or an address it does not have) */
  checkPorts(ports: PortMapping[]): Promise<void>;
  /** refuses a deploy while the disk holding the node's state is full */
  requireSpace(): void;
}
