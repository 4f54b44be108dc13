/**
 * The error taxonomy. Every error a user can cause or fix is a UserError with a stable code; the CLI's
 * central handler prints what failed, why and how to fix it, and the API returns the same codes.
 */
export const ERROR_CODES = {
  E_USAGE: 'invalid command line',
  E_NO_PACK: 'no build pack matches the directory',
  E_UNIKYAML_INVALID: 'unik.yaml is invalid',
  E_DOCKERFILE_ROOTFS: 'a Dockerfile is not a root filesystem',
  E_PROCFILE_INVALID: 'the Procfile command cannot run without a shell or names nothing in the image',
  E_LOCK_REQUIRED: 'a release build needs a lock file',
  E_TOOLCHAIN_MISSING: 'a build toolchain is not installed',
  E_BUILD_FAILED: 'the application build failed',
  E_ARTIFACT_MISSING: 'the build did not produce the declared artifact',
  E_NOT_ELF: 'the file is not an x86-64 ELF executable',
  E_LIBRARY_MISSING: 'a shared library of the closure was not found',
  E_INVALID_NAME: 'invalid deployment name',
  E_NAME_TAKEN: 'the deployment name is in use',
  E_INVALID_PORT: 'invalid port mapping',
  E_PORT_IN_USE: 'a host port is already in use',
  E_INVALID_ARGUMENT: 'invalid argument',
  E_PACKAGE_NOT_FOUND: 'no package, project or binary matches the reference',
  E_PACKAGE_INVALID: 'the package is damaged or incomplete',
  E_UNKNOWN_APP: 'no deployment has that name',
  E_KERNEL_MISSING: 'the unikctl kernel is not built',
  E_INIT_MISSING: 'the guest init is not built',
  E_TOOL_MISSING: 'a host tool is not installed',
  E_QEMU_FAILED: 'QEMU could not start the VM',
  E_BOOT_TIMEOUT: 'the VM did not start the app in time',
  E_APP_START_FAILED: 'the guest init could not start the app',
  E_APP_CRASHED: 'the app was killed by a signal',
  E_GUEST_CRASHED: 'the guest kernel crashed or reset',
  E_KVM_UNAVAILABLE: 'KVM was requested but is not usable',
  E_CMDLINE_TOO_LONG: 'the run configuration does not fit on the kernel command line',
  E_IDEMPOTENCY_CONFLICT: 'the idempotency key was used for a different request',
  E_STATE: 'the local state store failed',
  E_CANCELLED: 'the operation was cancelled',
  E_NOT_IMPLEMENTED: 'not implemented yet',
  E_DEPLOY_FAILED: 'the deployment failed',
  E_TRANSIENT: 'a temporary failure; the operation is retried',
  E_NOT_FOUND: 'no such API resource',
  E_VALIDATION: 'the request does not match the API schema',
  E_BAD_JSON: 'the request body is not valid JSON',
  E_UNAUTHENTICATED: 'no credentials',
  E_TOKEN_INVALID: 'the token is not valid',
  E_TOKEN_EXPIRED: 'the token has expired',
  E_TOKEN_NOT_YET_VALID: 'the token is not valid yet',
  E_FORBIDDEN: 'the token lacks the needed scope',
  E_AUTH_CONFIG: 'the auth configuration is invalid',
  E_UPLOAD_TOO_LARGE: 'the upload exceeds a size limit',
  E_UPLOAD_UNSAFE_PATH: 'the upload holds a path outside its root',
  E_UPLOAD_UNSAFE_LINK: 'the upload holds a link outside its root',
  E_UPLOAD_UNSAFE_ENTRY: 'the upload holds a device or other special file',
  E_UPLOAD_CORRUPT: 'the upload is truncated or not a tar archive',
  E_UPLOAD_DIGEST_MISMATCH: 'the upload does not match its declared sha256',
  E_UNKNOWN_ARTIFACT: 'no uploaded artifact has that id',
  E_NO_CAPACITY: 'no node can run the deployment now',
  E_UNKNOWN_NODE: 'no node has that name',
  E_CONTROL_PLANE_UNREACHABLE: 'the control plane did not answer',
  E_INTERNAL: 'internal error',
  E_SANDBOX_UNAVAILABLE: 'this host cannot sandbox remote builds',
  E_BUILD_LIMIT: 'the build exceeded its memory, time or disk limit',
  E_NODE_IDENTITY: 'a node acted under another node\'s name, or joined with a name another node holds',
  E_REQUEST_TIMEOUT: 'the client sent the request too slowly',
  E_ARTIFACT_IN_USE: 'the artifact is used by a queued or running deployment',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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
