#!/usr/bin/env bash
# Build the unikctl guest kernel (a PVH vmlinux) from Debian's linux-source-6.1.
# Usage: kernel/build.sh release|debug [--print-dir]
# Output: $KERNEL_DIR/<variant>-<hash>/{vmlinux,config,build.json}; <hash> covers the config
# fragments, the patches in kernel/patches and the source version, so an unchanged kernel is never rebuilt.
set -euo pipefail
variant=${1:?usage: build.sh release|debug [--print-dir]}
case "$variant" in release|debug) ;; *) echo "unknown variant: $variant" >&2; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
home=${UNIKCTL_HOME:-$HOME/.local/state/unikctl}
kdir=${UNIKCTL_KERNEL_DIR:-$home/kernels}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "E_KERNEL_SOURCE: $tarball missing: apt-get install linux-source-6.1" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
# keep in sync with src/kernel/kernel.ts (kernelConfigHash)
patches=$(find "$here/patches" -maxdepth 1 -name '*.patch' 2>/dev/null | LC_ALL=C sort)
# the source tree is patched once per patch set; an empty set keeps the pristine tree's name
phash=$( { for p in $patches; do basename "$p"; cat "$p"; done; } | sha256sum | cut -c1-12)
hash=$( { printf 'unikctl-kernel-v1\n%s\n%s\n' "$variant" "$srcver"; cat "$here/config/base.config"; printf '\n--\n'; cat "$here/config/$variant.config";
          for p in $patches; do printf '\n-- patch %s\n' "$(basename "$p")"; cat "$p"; done; } | sha256sum | cut -c1-16)
out="$kdir/$variant-$hash"
if [ "${2:-}" = "--print-dir" ]; then echo "$out"; exit 0; fi
if [ -f "$out/vmlinux" ]; then echo "kernel $variant cached: $out" >&2; exit 0; fi

mkdir -p "$kdir/src" "$kdir/build"
exec 9>"$kdir/.lock-$variant"; flock 9
[ -f "$out/vmlinux" ] && { echo "kernel $variant cached: $out" >&2; exit 0; }

tree=$srcver; [ -n "$patches" ] && tree="$srcver-p$phash"
src="$kdir/src/$tree/linux-source-6.1"
if [ ! -f "$src/.unikctl-extracted" ]; then
  exec 8>"$kdir/.lock-src"; flock 8
  if [ ! -f "$src/.unikctl-extracted" ]; then
    echo "extracting $tarball ..." >&2
    rm -rf "$kdir/src/$tree"; mkdir -p "$kdir/src/$tree"
    tar -xJf "$tarball" -C "$kdir/src/$tree"
    for p in $patches; do
      echo "applying $(basename "$p")" >&2
      patch -s -p1 -d "$src" < "$p" || { echo "E_KERNEL_PATCH: $(basename "$p") does not apply to linux-source-6.1 $srcver" >&2; exit 1; }
    done
    touch "$src/.unikctl-extracted"
  fi
  flock -u 8
fi

obj="$kdir/build/$variant"; [ -n "$patches" ] && obj="$obj-p$phash"  # kept between builds: a changed fragment rebuilds incrementally
mkdir -p "$obj"
start=$(date +%s)
echo "configuring kernel $variant ($hash) ..." >&2
make -s -C "$src" O="$obj" ARCH=x86 tinyconfig >/dev/null
cat "$here/config/base.config" "$here/config/$variant.config" > "$obj/unikctl.fragment"
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$obj/unikctl.fragment" >/dev/null
make -s -C "$src" O="$obj" ARCH=x86 olddefconfig >/dev/null
# every option of the fragment must have taken effect: a silent drop means a broken kernel
bad=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue;; esac
  opt=${line%%=*}; val=${line#*=}
  if [ "$val" = n ]; then
    grep -qx "$opt=y" "$obj/.config" && { echo "config: $opt should be off" >&2; bad=1; }
  else
    grep -qx "$opt=$val" "$obj/.config" || { echo "config: $opt=$val did not take ($(grep -E "^(# )?$opt[= ]" "$obj/.config" || echo absent))" >&2; bad=1; }
  fi
done < "$obj/unikctl.fragment"
[ $bad = 0 ] || { echo "E_KERNEL_CONFIG: the config fragment does not apply cleanly" >&2; exit 1; }

echo "building kernel $variant with $(nproc) jobs (takes several minutes once; cached afterwards) ..." >&2
make -s -C "$src" O="$obj" ARCH=x86 -j"$(nproc)" vmlinux >"$obj/build.log" 2>&1 || { tail -n 40 "$obj/build.log" >&2; echo "E_KERNEL_BUILD: see $obj/build.log" >&2; exit 1; }

tmp="$out.tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
if [ "$variant" = release ]; then strip -o "$tmp/vmlinux" "$obj/vmlinux"; else cp "$obj/vmlinux" "$tmp/vmlinux"; fi
cp "$obj/.config" "$tmp/config"
printf '{"variant":"%s","hash":"%s","source":"linux-source-6.1 %s","seconds":%d,"size":%d}\n' \
  "$variant" "$hash" "$srcver" $(( $(date +%s) - start )) "$(stat -c %s "$tmp/vmlinux")" > "$tmp/build.json"
rm -rf "$out"; mv "$tmp" "$out"

echo "kernel $variant built: $out ($(stat -c %s "$out/vmlinux") bytes)" >&2
