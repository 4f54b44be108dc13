// Describes how two QEMU argvs differ, option by option, so the benchmark prints exactly which flags
// the baseline needed changed (nothing is claimed identical that is not).

const NO_VALUE = new Set(['-nodefaults', '-no-user-config', '-no-reboot', '-S', '-snapshot']);
/** Options whose value is a comma-separated property list, compared property by property. */
const PROPS = new Set(['-M', '-machine', '-sandbox']);

function pairs(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i];
    if (NO_VALUE.has(opt) || i + 1 >= argv.length) out.push([opt, null]);
    else out.push([opt, argv[++i]]);
  }
  return out;
}

function byOption(argv) {
  const m = new Map();
  for (const [opt, val] of pairs(argv)) {
    if (!m.has(opt)) m.set(opt, []);
    m.get(opt).push(val);
  }
  return m;
}

/**
 * Lists differences between `a` (reference) and `b`. `label(opt, value)` may shorten values (e.g. paths).
 * -append is compared word by word; -M by property.
 */
export function argvDiff(a, b, label = (_o, v) => v) {
  const A = byOption(a);
  const B = byOption(b);
  const diffs = [];
  for (const opt of new Set([...A.keys(), ...B.keys()])) {
    const va = A.get(opt) ?? [];
    const vb = B.get(opt) ?? [];
    if (va.length === 0) { for (const v of vb) diffs.push(`added ${opt}${v === null ? '' : ` ${label(opt, v)}`}`); continue; }
    if (vb.length === 0) { for (const v of va) diffs.push(`removed ${opt}${v === null ? '' : ` ${label(opt, v)}`}`); continue; }
    for (let i = 0; i < Math.max(va.length, vb.length); i++) {
      const x = va[i];
      const y = vb[i];
      if (x === y) continue;
      if (x === undefined) { diffs.push(`added ${opt} ${label(opt, y)}`); continue; }
      if (y === undefined) { diffs.push(`removed ${opt} ${label(opt, x)}`); continue; }
      if (opt === '-append') {
        const wa = x.split(' ');
        const wb = y.split(' ');
        const plus = wb.filter((w) => !wa.includes(w));
        const minus = wa.filter((w) => !wb.includes(w));
        diffs.push(`-append: ${[...plus.map((w) => `+${w}`), ...minus.map((w) => `-${w}`)].join(' ')}`);
      } else if (PROPS.has(opt)) {
        const pa = x.split(',');
        const pb = y.split(',');
        const changed = [];
        for (const p of pb) if (!pa.includes(p)) {
          const key = p.split('=')[0];
          const old = pa.find((q) => q.split('=')[0] === key);
          changed.push(old ? `${old} → ${p}` : `+${p}`);
        }
        for (const p of pa) if (!pb.some((q) => q.split('=')[0] === p.split('=')[0])) changed.push(`-${p}`);
        diffs.push(`${opt} ${changed.join(', ')}`);
      } else {
        diffs.push(`${opt} ${label(opt, x)} → ${label(opt, y)}`);
      }
    }
  }
  return diffs;
}
