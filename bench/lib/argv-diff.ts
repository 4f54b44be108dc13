// Describes how two QEMU argvs differ, option by option, so the benchmark prints exactly which flags
// the baseline needed changed (nothing is claimed identical that is not).

const NO_VALUE = new Set(['-nodefaults', '-no-user-config', '-no-reboot', '-S', '-snapshot']);
/** Options whose value is a comma-separated property list, compared property by property. */
const PROPS = new Set(['-M', '-machine', '-sandbox']);

type OptVal = [string, string | null];

function pairs(argv: readonly string[]): OptVal[] {
  const out: OptVal[] = [];
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i] as string;
    if (NO_VALUE.has(opt) || i + 1 >= argv.length) out.push([opt, null]);
    else out.push([opt, argv[++i] as string]);
  }
  return out;
}

function byOption(argv: readonly string[]): Map<string, Array<string | null>> {
  const m = new Map<string, Array<string | null>>();
  for (const [opt, val] of pairs(argv)) {
    const vals = m.get(opt) ?? [];
    vals.push(val);
    m.set(opt, vals);
  }
  return m;
}

/**
 * Lists differences between `a` (reference) and `b`. `label(opt, value)` may shorten values (e.g. paths).
 * -append is compared word by word; -M by property.
 */
export function argvDiff(a: readonly string[], b: readonly string[], label: (opt: string, value: string) => string = (_o, v) => v): string[] {
  const A = byOption(a);
  const B = byOption(b);
  const diffs: string[] = [];
  const show = (opt: string, v: string | null | undefined): string => (v === null || v === undefined ? '' : label(opt, v));
  for (const opt of new Set([...A.keys(), ...B.keys()])) {
    const va = A.get(opt) ?? [];
    const vb = B.get(opt) ?? [];
    if (va.length === 0) { for (const v of vb) diffs.push(`added ${opt}${v === null ? '' : ` ${show(opt, v)}`}`); continue; }
    if (vb.length === 0) { for (const v of va) diffs.push(`removed ${opt}${v === null ? '' : ` ${show(opt, v)}`}`); continue; }
    for (let i = 0; i < Math.max(va.length, vb.length); i++) {
      const x = va[i];
      const y = vb[i];
      if (x === y) continue;
      if (x === undefined) { diffs.push(`added ${opt} ${show(opt, y)}`); continue; }
      if (y === undefined) { diffs.push(`removed ${opt} ${show(opt, x)}`); continue; }
      if (x === null || y === null) { diffs.push(`${opt} ${show(opt, x)} → ${show(opt, y)}`); continue; }
      if (opt === '-append') {
        const wa = x.split(' ');
        const wb = y.split(' ');
        const plus = wb.filter((w) => !wa.includes(w));
        const minus = wa.filter((w) => !wb.includes(w));
        diffs.push(`-append: ${[...plus.map((w) => `+${w}`), ...minus.map((w) => `-${w}`)].join(' ')}`);
      } else if (PROPS.has(opt)) {
        const pa = x.split(',');
        const pb = y.split(',');
        const changed: string[] = [];
        for (const p of pb) if (!pa.includes(p)) {
          const key = p.split('=')[0];
          const old = pa.find((q) => q.split('=')[0] === key);
          changed.push(old ? `${old} → ${p}` : `+${p}`);
        }
        for (const p of pa) if (!pb.some((q) => q.split('=')[0] === p.split('=')[0])) changed.push(`-${p}`);
        diffs.push(`${opt} ${changed.join(', ')}`);
      } else {
        diffs.push(`${opt} ${show(opt, x)} → ${show(opt, y)}`);
      }
    }
  }
  return diffs;
}
