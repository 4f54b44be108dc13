/**
 * The error taxonomy: ONE table. Every code says what failed (summary), the HTTP status the API answers with,
 * whose fault it is and whether retrying can help. The HTTP mapping (src/controlplane/http.ts), the queue's retry
 * policy (src/controlplane/queue.ts) and the upload codes (src/controlplane/artifacts.ts) are derived from it,
 * so a new code is one line here:
 *
 *   E_SOMETHING: user(400, 'what the user got wrong'),       // never retried
 *   E_OTHER: platform(503, 'what broke on our side'),        // retried with backoff
 *   E_THIRD: platform(500, 'ours, but a retry cannot help', false),
 *
 * Every error a user can cause or fix is a UserError with a stable code; the CLI's central handler prints what
 * failed, why and how to fix it, and the API returns the same codes.
 */
export type Fault = 'user' | 'platform';

export interface ErrorSpec {
  readonly summary: string;
  /** the HTTP status when an API request fails with this code */
  readonly status: number;
  /** user: bad input or a fix the user must make; platform: the host, VMM, store or control plane failed */
  readonly fault: Fault;
  /** whether the queue retries an operation that failed with it (a retry really runs the work again) */
  readonly retryable: boolean;
}

/** The user's fault: retrying the same request gives the same answer, so it never is. */
const user = (status: number, summary: string): ErrorSpec => ({ summary, status, fault: 'user', retryable: false });
/** The platform's fault: retried unless the failure is one a retry cannot fix (a missing kernel, a bad config). */
const platform = (status: number, summary: string, retryable = true): ErrorSpec => ({ summary, status, fault: 'platform', retryable });

export const ERROR_CODES = {
  E_USAGE: user(400, 'invalid command line'),
  E_NO_PACK: user(400, 'no build pack matches the directory'),
  E_UNIKYAML_INVALID: user(400, 'unik.yaml is invalid'),
  E_PROCFILE_INVALID: user(400, 'the Procfile command cannot run without a shell or names nothing in the image'),
  E_DOCKERFILE_ROOTFS: user(400, 'a Dockerfile is not a root filesystem'),
  E_LOCK_REQUIRED: user(400, 'a release build needs a lock file'),
  E_TOOLCHAIN_MISSING: user(400, 'a build toolchain is not installed'),
  E_BUILD_FAILED: user(422, 'the application build failed'),
  E_ARTIFACT_MISSING: user(422, 'the build did not produce the declared artifact'),
  E_ENTRY_AMBIGUOUS: user(422, 'the project has several runnable programs and unik.yaml does not say which'),
  E_NOT_ELF: user(400, 'the file is not an x86-64 ELF executable'),
  E_LIBRARY_MISSING: user(422, 'a shared library of the closure was not found'),
  E_INVALID_NAME: user(400, 'invalid deployment name'),
  E_NAME_TAKEN: user(409, 'the deployment name is in use'),
  E_INVALID_PORT: user(400, 'invalid port mapping'),
  E_PORT_IN_USE: user(409, 'a host port is already in use'),
  E_INVALID_ARGUMENT: user(400, 'invalid argument'),
  E_INVALID_DURATION: user(400, 'a duration is not a number with a unit (500ms, 2s, 1m30s, 1h)'),
  E_INVALID_CHECK: user(400, 'invalid health check (deploy --check or unik.yaml check:)'),
  E_INVALID_REPLICAS: user(400, 'the replica count is not an integer from 1 to 64'),
  E_INVALID_ROLLOUT: user(400, 'invalid rollout settings (strategy, max surge/unavailable, canary, deadlines)'),
  E_PACKAGE_NOT_FOUND: user(404, 'no package, project or binary matches the reference'),
  E_PACKAGE_INVALID: user(400, 'the package is damaged or incomplete'),
  E_UNKNOWN_APP: user(404, 'no deployment has that name'),
  E_KERNEL_MISSING: platform(500, 'the unikctl kernel is not built', false),
  E_INIT_MISSING: platform(500, 'the guest init is not built', false),
  E_TOOL_MISSING: platform(500, 'a host tool is not installed', false),
  E_QEMU_FAILED: platform(500, 'QEMU could not start the VM'),
  E_BOOT_TIMEOUT: platform(504, 'the VM did not start the app in time'),
  E_APP_START_FAILED: user(422, 'the guest init could not start the app'),
  E_APP_EXITED: user(422, 'the app exited with a non-zero code'),
  E_APP_CRASHED: user(422, 'the app was killed by a signal'),
  E_NOT_LISTENING: user(422, 'the app runs but nothing listens on a published guest port'),
  E_LISTENING_LOCALHOST_ONLY: user(422, 'the app listens on a published guest port on 127.0.0.1/::1 only, unreachable from outside the VM'),
  E_GUEST_CRASHED: platform(500, 'the guest kernel crashed or reset'),
  E_SUPERVISOR_LOST: platform(500, 'the process supervising the VM died'),
  E_KVM_UNAVAILABLE: platform(500, 'KVM was requested but is not usable', false),
  E_CMDLINE_TOO_LONG: user(400, 'the run configuration does not fit on the kernel command line'),
  E_IDEMPOTENCY_CONFLICT: user(409, 'the idempotency key was used for a different request'),
  E_STATE: platform(500, 'the local state store failed'),
  E_CANCELLED: user(409, 'the operation was cancelled'),
  E_ROLLOUT_IN_PROGRESS: user(409, 'a rollout of the app is in progress'),
  E_ROLLOUT_FAILED: user(422, 'the new version did not become healthy; the rollout failed'),
  E_CHECK_FAILED: user(422, 'a replica failed its health check'),
  E_PORTS_CHANGED: user(409, 'a new version of a service must publish the same ports'),
  E_NOT_IMPLEMENTED: platform(501, 'not implemented yet', false),
  E_DEPLOY_FAILED: platform(500, 'the deployment failed for an unrecorded reason', false),
  E_TRANSIENT: platform(503, 'a temporary failure; the operation is retried'),
  E_NOT_FOUND: user(404, 'no such API resource'),
  E_VALIDATION: user(400, 'the request does not match the API schema'),
  E_BAD_JSON: user(400, 'the request body is not valid JSON'),
  E_UNAUTHENTICATED: user(401, 'no bearer credential was sent'),
  E_TOKEN_INVALID: user(401, 'the token is unknown, malformed or has a bad signature'),
  E_TOKEN_EXPIRED: user(401, 'the token has expired'),
  E_TOKEN_NOT_YET_VALID: user(401, 'the token is not valid yet'),
  E_FORBIDDEN: user(403, 'the token lacks the scope the request needs'),
  E_AUTH_CONFIG: platform(500, 'the control-plane auth configuration is invalid', false),
  E_UPLOAD_TOO_LARGE: user(413, 'the upload or its extracted content exceeds the size or entry limit'),
  E_UPLOAD_UNSAFE_PATH: user(400, 'the archive has an absolute path or a path with ..'),
  E_UPLOAD_UNSAFE_LINK: user(400, 'the archive has a symlink escaping its root, a hard link, or an entry below a symlink'),
  E_UPLOAD_UNSAFE_ENTRY: user(400, 'the archive has a device, FIFO, unsupported or conflicting entry'),
  E_UPLOAD_CORRUPT: user(400, 'the upload is empty, truncated or not a (gzip\'d) tar archive'),
  E_UPLOAD_DIGEST_MISMATCH: user(400, 'the uploaded bytes do not match the expected sha256'),
  E_UNKNOWN_ARTIFACT: user(404, 'no uploaded artifact has that id'),
  E_NO_CAPACITY: platform(503, 'no node can run the deployment now'),
  E_UNKNOWN_NODE: user(404, 'no node has that name'),
  E_CONTROL_PLANE_UNREACHABLE: platform(502, 'the control plane did not answer'),
  E_INTERNAL: platform(500, 'internal error'),
  E_SANDBOX_UNAVAILABLE: platform(500, 'this host cannot sandbox the builds clients send', false),
  E_BUILD_LIMIT: user(422, 'the build exceeded its memory, time or disk limit'),
  E_NODE_IDENTITY: user(403, 'a node credential was used to act as another node'),
  E_QUOTA_EXCEEDED: user(403, "the request would take the tenant past its quota or a per-VM limit"),
  E_TENANT_REQUIRED: user(403, 'tenants are on and this credential names none'),
  E_TENANT_UNKNOWN: user(403, 'the credential names a tenant the control plane does not declare'),
  E_PORT_NOT_ALLOWED: user(403, "a host port outside the tenant's allowed range"),
  E_TENANT_CONFIG: platform(500, 'the tenants file is invalid', false),
  E_NODE_NAME_TAKEN: user(409, 'another node has already joined with that name'),
  E_REQUEST_TIMEOUT: user(408, 'the client sent the request too slowly'),
  E_ARTIFACT_IN_USE: user(409, 'the artifact is used by a queued or running deployment'),
  E_FRONT_UNAVAILABLE: platform(500, 'the traffic front of a service (HAProxy) is not installed or did not start', false),
  E_TENANT_ISOLATION: platform(500, 'this node cannot isolate a tenant\'s VMs (needs root, useradd and the cpu and memory cgroups)', false),
  E_DISK_FULL: platform(507, 'the disk holding the unikctl state is full', false),
  E_SIGNATURE_MISSING: user(403, 'the trust policy requires a signed image and the image has no signature'),
  E_SIGNATURE_INVALID: user(422, 'the image signature does not verify, or the signed content was changed'),
  E_SIGNATURE_UNTRUSTED: user(403, 'the image is signed by a key the trust policy does not trust'),
  E_ARTIFACT_TAMPERED: user(422, 'an image file does not match the digest its signed manifest records'),
  E_PROVENANCE_MISMATCH: user(422, 'the signed provenance is about another image or a builder the policy does not accept'),
  E_TRUST_CONFIG: user(400, 'the trust policy or a signing key file is invalid'),
} as const satisfies Record<`E_${string}`, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether a string (e.g. a code read back from a store or an API answer) is a code of the table. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** The table's entry of a code; a code this version does not know (a newer peer's) is an unexpected platform failure. */
export function errorSpec(code: string): ErrorSpec {
  return isErrorCode(code) ? ERROR_CODES[code] : ERROR_CODES.E_INTERNAL;
}

export class UserError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}), ...(this.details ? { details: this.details } : {}) };
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** Wraps anything thrown into a UserError so callers always have a code to report. */
export function toUserError(e: unknown): UserError {
  if (e instanceof UserError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new UserError('E_INTERNAL', message, { cause: e, hint: 'rerun with --verbose (or UNIKCTL_DEBUG=1) for a stack trace and report it' });
}
