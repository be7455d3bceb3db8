// Types of bin/runtime.js (plain JavaScript, so that any Node can load it) for the TypeScript that imports it.
export declare const MINIMUM: readonly [number, number];
export declare const TARGET_MAJOR: number;
export declare const NODE_FLAGS: readonly string[];
export declare function isSupported(version: string): boolean;
export declare function supportedRuntime(env?: NodeJS.ProcessEnv, stderr?: NodeJS.WritableStream): string;
export declare function runOn(
  binary: string,
  script: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
  nodeFlags?: readonly string[],
): void;
export declare function delegate(script: string, args: readonly string[], nodeFlags?: readonly string[]): void;
