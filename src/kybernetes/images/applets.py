"""Shell wrappers that put right what Debian's busybox-static gets wrong, for the busybox image.

The image's applets are symlinks to `/bin/busybox`; an applet listed in `APPLET_WRAPPERS` is a
script instead, which fixes its arguments and then runs `/bin/busybox APPLET`.

`wget`: Debian builds busybox 1.35 without FEATURE_WGET_TIMEOUT, yet its wget keeps `-T` in its
option string with nowhere to store the value: `wget -T 5 URL` writes through a NULL pointer while
parsing options and dies of SIGSEGV (exit 139, whatever the URL), and `--timeout=5` is refused as
unknown. The Kubernetes tutorials use both (`wget -T 2 -qO- http://web`, `wget --spider
--timeout=1 nginx`). The wrapper takes the timeout out of the arguments (`-T N`, `-TN`, `-qT N`,
`--timeout=N`, `--timeout N`) and bounds the whole run by it with busybox's `timeout`; as wget
does, it then says "download timed out" and exits 1. It bounds the whole download rather than each
network read, which for the short requests these commands make is the same thing. The signal is
SIGINT, not TERM, because ash reports a child killed by TERM with a stray "Terminated" line.

`nslookup`: busybox's own resolver applies resolv.conf's search list only to names without a dot,
so the documentation's check `nslookup kubernetes.default` asks for `kubernetes.default.` alone and
fails in a pod, where every other program (glibc's res_search) tries `kubernetes.default.<search>`
first because the name has fewer dots than `ndots`. The wrapper does what the system resolver does:
for a name with fewer dots than ndots (from /etc/resolv.conf, default 1) and no trailing dot, it
tries each search domain quietly and prints the first answer found; otherwise, or when none
answers, it runs busybox's nslookup on the name as given.

Both wrappers serve commands run directly (`kubectl run ... -- nslookup kubernetes.default`, `kubectl
exec ... -- wget ...`); busybox's own sh, built standalone by Debian, runs its applets itself.
"""

from __future__ import annotations

WGET = b"""#!/bin/sh
# wget with a working -T/--timeout: see kybernetes.images.applets.
secs=
value_next=
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1
  shift
  n=$((n - 1))
  if [ -n "$value_next" ]; then
    value_next=
    set -- "$@" "$arg"
    continue
  fi
  case $arg in
    --) set -- "$@" --
        while [ "$n" -gt 0 ]; do set -- "$@" "$1"; shift; n=$((n - 1)); done
        break ;;
    --timeout=*) secs=${arg#--timeout=}; continue ;;
    --timeout) secs=$1; shift; n=$((n - 1)); continue ;;
    --output-document|--output-file|--directory-prefix|--proxy|--user-agent|--tries|--header|\
    --post-data|--post-file) value_next=1 ;;
    --*) ;;
    -?*)
      # A group of short options: flags (c q S s), then at most one that takes a value (O o P Y U
      # t, or n with an optional attached one), attached or as the next argument. -T's value is
      # taken out; the rest is kept as it was.
      rest=${arg#-}
      kept=
      while [ -n "$rest" ]; do
        c=${rest%"${rest#?}"}
        rest=${rest#?}
        case $c in
          T) if [ -n "$rest" ]; then secs=$rest; else secs=$1; shift; n=$((n - 1)); fi
             rest= ;;
          [OoPYUt]) kept=$kept$c$rest; [ -z "$rest" ] && value_next=1; rest= ;;
          n) kept=$kept$c$rest; rest= ;;
          *) kept=$kept$c ;;
        esac
      done
      [ -n "$kept" ] && set -- "$@" "-$kept"
      continue ;;
  esac
  set -- "$@" "$arg"
done
if [ -z "$secs" ]; then
  exec /bin/busybox wget "$@"
fi
case $secs in
  ''|*[!0-9]*) echo "wget: invalid number '$secs'" >&2; exit 1 ;;
esac
/bin/busybox timeout -s INT "$secs" /bin/busybox wget "$@"
code=$?
if [ "$code" -eq 130 ]; then
  echo "wget: download timed out" >&2
  exit 1
fi
exit "$code"
"""

NSLOOKUP = b"""#!/bin/sh
# nslookup that walks resolv.conf's search list as the system resolver does: see kybernetes.images.applets.
name=
for arg in "$@"; do
  case $arg in -*) ;; *) name=$arg; break ;; esac
done
case $name in ''|*.) exec /bin/busybox nslookup "$@" ;; esac
ndots=1
search=
while read -r key rest; do
  case $key in
    search|domain) search=$rest ;;
    options) for o in $rest; do case $o in ndots:*) ndots=${o#ndots:} ;; esac; done ;;
  esac
done < /etc/resolv.conf 2>/dev/null
case $ndots in ''|*[!0-9]*) ndots=1 ;; esac
dots=$(printf '%s' "$name" | tr -cd . | wc -c)
# busybox nslookup with the name replaced by $1 (the other arguments as given).
as_name() {
  target=$1
  shift
  n=$#
  while [ "$n" -gt 0 ]; do
    a=$1
    shift
    n=$((n - 1))
    if [ "$a" = "$name" ]; then set -- "$@" "$target"; else set -- "$@" "$a"; fi
  done
  /bin/busybox nslookup "$@"
}
if [ "$dots" -gt 0 ] && [ "$dots" -lt "$ndots" ]; then
  for domain in $search; do
    if out=$(as_name "$name.$domain" "$@" 2>&1); then
      printf '%s\n' "$out"
      exit 0
    fi
  done
fi
exec /bin/busybox nslookup "$@"
"""

APPLET_WRAPPERS: dict[str, bytes] = {"wget": WGET, "nslookup": NSLOOKUP}
"""Applet name -> the script installed as /bin/APPLET in its place."""
