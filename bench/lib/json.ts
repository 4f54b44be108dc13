/**
 * A value parsed from JSON the benchmarks did not type themselves: result files of earlier runs (possibly
 * written by older versions, so any field may be missing or shaped differently) and the CLI's `--json`
 * output read across a process boundary. Readers check what they use (optional chaining, `?? 'n/a'`).
 * This is the benchmarks' one `any`: the JSON boundary, nowhere else.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- true JSON boundary, see above
export type Json = any;
