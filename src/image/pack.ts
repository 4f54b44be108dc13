import type { RootfsBuilder } from './rootfs.js';
import type { UnikYaml } from './unikyaml.js';
import type { RunConfig } from './image.js';

export type BuildMode = 'release' | 'debug';

export interface BuildContext {
  dir: string;
  mode: BuildMode;
  /** DIR/.unikctl/cache: dependency and tool caches kept between builds (BLD-5). */
  cacheDir: string;
  /** scratch space for this build (removed afterwards) */
  workDir: string;
  config: UnikYaml | null;
  env: NodeJS.ProcessEnv;
  /** progress and tool output, one line at a time */
  log(line: string): void;
  warn(message: string): void;
}

export interface PackArtifact { path: string; size: number; }

export interface PackResult {
  run: Partial<RunConfig> & { command: string[] };
  /** run.command already applies unik.yaml's run.command (the pack translated it, e.g. a python console-script
   * name into the interpreter's argv): it is not replaced by unik.yaml's again */
  commandFromConfig?: boolean;
  toolchain: Record<string, string>;
  /** digests of the inputs that determine the build (lock files, sources) */
  inputs: Record<string, string>;
  artifacts: PackArtifact[];
  /**
   * Programs a Procfile command may start with (`node`, `python`, `gunicorn`, the binary's name) and the guest
   * argv prefix that runs each in this image.
   */
  programs?: Record<string, string[]>;
  /** project-relative files the pack placed elsewhere in the guest (target/app.jar → /app/app.jar) */
  paths?: Record<string, string>;
}

/** A build pack: recognizes a project and turns it into a root filesystem (BLD-1). */
export interface Pack {
  name: string;
  /** what detection looks for, for error messages */
  markers: string;
  detect(dir: string, config: UnikYaml | null): boolean;
  build(ctx: BuildContext, rootfs: RootfsBuilder): Promise<PackResult>;
}
