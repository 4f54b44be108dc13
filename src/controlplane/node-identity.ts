/**
 * Node identity (CP-6 hardening). One shared node token used to do everything: any holder could register under any
 * name (and receive that node's deploys and secrets), call agents directly and download every artifact. Now:
 *
 *  - the operator's **join token** (`unikctld serve --join-token`) does one thing: `POST /v1/nodes/join` for a name
 *    nobody holds. The answer carries two fresh secrets, handed out once:
 *  - the **node credential** (`unikn_<name>.<secret>`): the agent presents it to the control plane; it names its node,
 *    so register, heartbeat and artifact downloads act as that node only. The control plane stores its SHA-256.
 *  - the **agent key**: the control plane presents it to that node's agent, which accepts nothing else; the agent
 *    stores its SHA-256. A node's credential therefore opens no agent, and the join token opens neither.
 *
 * Join tokens rather than mutual TLS: agents already run over plain HTTP in development and behind the operator's own
 * CA in production; a CA, certificate issuance and rotation for every agent would be a much larger operator burden
 * than one secret for the first start, and the per-node secrets give the same "a node acts only as itself" property.
 * Removing a node (`DELETE /v1/nodes/{name}`) deletes its identity: its credential stops working at once, on every
 * replica, because credentials are checked against the shared store on each request.
 */
import { randomBytes } from 'node:crypto';
import { UserError } from '../errors.js';
import { bearerValue, generateToken, hashToken, invalidToken, matchesHash } from './auth.js';
import type { NodeInput, NodeRecord, NodeStore } from './node-store.js';

/** `unikn_<node name>.<43 base64url chars>`: the name says which stored hash to compare against. */
const CREDENTIAL_RE = /^unikn_([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.([A-Za-z0-9_-]{43})$/;
const CREDENTIAL_HINT = 'the agent keeps its credential in DATA/node-identity.json; a removed node joins again under a new identity (delete that file, start the agent with --join-token)';

export interface JoinResult { node: NodeRecord; credential: string; agentKey: string; }

export class NodeAuthenticator {
  private readonly joinSha256: string | null;

  constructor(private readonly store: NodeStore, joinToken: string | null) {
    // only the hash is kept, like every other token
    this.joinSha256 = joinToken ? hashToken(joinToken) : null;
  }

  /** Node credentials have their own prefix, so a route open to nodes and to users knows which check applies. */
  static isNodeCredential(authorizationHeader: string | undefined): boolean {
    return /^\s*bearer\s+unikn_/i.test(authorizationHeader ?? '');
  }

  /** ApiAuthError (401) unless the header carries the join token. */
  checkJoinToken(authorizationHeader: string | undefined): void {
    const value = bearerValue(authorizationHeader);
    if (!this.joinSha256) throw invalidToken('this control plane accepts no node joins', { hint: 'start unikctld serve with --join-token (or UNIKCTLD_JOIN_TOKEN)' });
    if (!matchesHash(value, this.joinSha256)) throw invalidToken('invalid join token', { hint: 'start the agent with the join token unikctld serve was given (--join-token)' });
  }

  /** Creates the node with fresh credentials; E_NODE_NAME_TAKEN (409) when another node holds the name. */
  async join(n: NodeInput): Promise<JoinResult> {
    const credential = `unikn_${n.name}.${randomBytes(32).toString('base64url')}`;
    const agentKey = generateToken();
    const node = await this.store.join(n, { credentialSha256: hashToken(credential), agentKey });
    return { node, credential, agentKey };
  }

  /** The name of the node whose credential the header carries; ApiAuthError (401) for anything else. */
  async authenticateNode(authorizationHeader: string | undefined): Promise<string> {
    const value = bearerValue(authorizationHeader);
    const name = CREDENTIAL_RE.exec(value)?.[1];
    const identity = name ? await this.store.identity(name) : null;
    if (!name || !identity || !matchesHash(value, identity.credentialSha256)) {
      throw invalidToken('invalid node credential: unknown, replaced, or its node was removed', { hint: CREDENTIAL_HINT });
    }
    return name;
  }
}

/** E_NODE_IDENTITY (403) when a node names another node in its request. */
export function requireSameNode(authenticated: string | null, claimed: string): void {
  if (authenticated !== claimed) {
    throw new UserError('E_NODE_IDENTITY', `the credential of node ${authenticated ?? '(none)'} cannot act as node ${claimed}`,
      { hint: 'an agent registers, heartbeats and fetches artifacts only under the name it joined with' });
  }
}
