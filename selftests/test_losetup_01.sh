#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Unmodified util-linux: losetup -a and -j (LOOP_GET_STATUS64 device/inode), --list --json
# (sysfs attributes), -D (detach all).
. "$(dirname "$0")/lib.sh"

lt_sparse "$LT_WORK/a" 8M
lt_sparse "$LT_WORK/b" 8M
da=$(lt_attach "$LT_WORK/a")
db=$(lt_attach "$LT_WORK/b" -o 4096)
want_a=$(printf '%s: [%04d]:%d (%s)' "$da" "$(stat -c %d "$LT_WORK/a")" "$(stat -c %i "$LT_WORK/a")" "$LT_WORK/a")
losetup -a | grep -qxF "$want_a" || lt_fail "losetup -a: '$want_a' not in: $(losetup -a)"
lt_eq "$(losetup -j "$LT_WORK/b" | cut -d: -f1)" "$db" "losetup -j"
json=$(losetup -l --json "$db")
lt_eq "$(jq -r '.loopdevices[0]."back-file"' <<<"$json")" "$LT_WORK/b" "json back-file"
lt_eq "$(jq -r '.loopdevices[0].offset' <<<"$json")" 4096 "json offset"
lt_eq "$(jq -r '.loopdevices[0].ro' <<<"$json")" false "json ro"
lt_eq "$(jq -r '.loopdevices[0].dio' <<<"$json")" false "json dio"
lt_eq "$(jq -r '.loopdevices[0]."log-sec"' <<<"$json")" 512 "json log-sec"
lt_eq "$(losetup -l -n | wc -l)" 2 "losetup -l lines"
losetup -D
udevadm settle
lt_eq "$(losetup -a)" "" "losetup -a after -D"
exit 0
