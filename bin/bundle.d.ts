// Types of bin/bundle.js (plain JavaScript, so that any Node can load it) for the TypeScript that imports it.
export declare const BUNDLE_ROOT: string;
export declare function freshBundle(bundleRoot?: string): string | undefined;
export declare function buildBundle(bundleRoot?: string): Promise<string>;
